"""The ports the tests' servers listen on: a block per pytest process (serial, or each
xdist worker) below the kernel's ephemeral range, and servers that move to another port
when theirs was taken in between, rather than passing for ready because someone else
answers there."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ports
from tests.support.db import migrate, sqlite_url
from tests.support.pgbouncer import SKIP_REASON as PGBOUNCER_SKIP_REASON
from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import binary as pgbouncer_binary
from tests.support.server import ServerProcess


def test_each_worker_draws_from_its_own_block_below_the_ephemeral_range() -> None:
    blocks = [ports.block(ports.worker_slot(w), 32_768) for w in (None, "gw0", "gw1", "gw7")]
    assert all(b is not None and b.stop <= 32_768 for b in blocks)
    seen: set[int] = set()
    for each in blocks:
        assert each is not None and not seen & set(each)
        seen |= set(each)
    # No room below a configured ephemeral range: the kernel's choice, as before.
    assert ports.block(0, 20_500) is None


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "BLOCK", 3)
    picker = ports.Ports("gw40", 32_768)  # 20,123 to 20,125: a block nobody draws from
    assert picker.range is not None
    held = []
    for port in list(picker.range)[:2]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
        held.append(sock)
    try:
        assert {picker.take() for _ in range(5)} == {picker.range[2]}
    finally:
        for sock in held:
            sock.close()


def test_ports_are_walked_in_order_so_a_released_one_is_not_reused_soon() -> None:
    picker = ports.Ports("gw41", 32_768)
    taken = [picker.take() for _ in range(20)]
    assert len(set(taken)) == 20


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"not authdemo")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def someone_else_serving() -> Iterator[int]:
    """An HTTP server of another process's making, on a port of our block."""
    server = http.server.HTTPServer(("127.0.0.1", ports.free_port()), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path) -> None:
    migrate(sqlite_url(tmp_path / "db.sqlite"))
    server = ServerProcess(sqlite_url(tmp_path / "db.sqlite"), tmp_path / "server.log")
    with someone_else_serving() as taken:
        server.port = taken  # what a race with another process amounts to
        server.start()
        try:
            assert server.port != taken
            assert server.process is not None
            assert ports.listens(server.process.pid, server.port)
            server.stop()
            server.start()  # a restart comes back where it served
            assert ports.listens(server.process.pid, server.port)
        finally:
            server.stop()


def test_a_server_given_a_taken_port_says_it_could_not_start(tmp_path: Path) -> None:
    migrate(sqlite_url(tmp_path / "db.sqlite"))
    with someone_else_serving() as taken:
        server = ServerProcess(
            sqlite_url(tmp_path / "db.sqlite"), tmp_path / "server.log", port=taken
        )
        try:
            with pytest.raises(RuntimeError, match="server exited early"):
                server.start(timeout=20)
        finally:
            server.stop()  # had it passed for ready, it would be serving by now


def test_a_pgbouncer_whose_port_was_taken_meanwhile_starts_on_another() -> None:
    if pgbouncer_binary() is None:
        pytest.skip(PGBOUNCER_SKIP_REASON)
    bouncer = PgBouncer("postgresql://postgres@127.0.0.1:5432/unused")
    with someone_else_serving() as taken:
        bouncer.port = taken
        try:
            bouncer.start()
            assert bouncer.port != taken
            assert bouncer.process is not None
            assert ports.listens(bouncer.process.pid, bouncer.port)
        finally:
            bouncer.close()
