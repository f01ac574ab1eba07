"""Ports for the servers the tests start, so that two of them never race for one.

``bind(0)`` picks a port from the kernel's ephemeral range and forgets it at once: until
the server binds it, another pytest-xdist worker's ``bind(0)``, or the local end of any
outgoing connection (taken from that same range), may take it. So each pytest process
draws from a block of its own *below* the ephemeral range — one block for the serial run,
one for each worker ``gw0``, ``gw1``, … — and walks it in order, checking that each port
is free before handing it out. Walking in order also keeps a port that was just released
(PgBouncer or a server stopped, to be started again on the same port) from being handed
out again soon. A process outside this run could still bind the port in between; the
servers the tests start most often then start again on another one
(``ServerProcess``, ``PgBouncer``), and in-process servers bind before they are handed
the socket (``listening_socket``).
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

FIRST = 20_000
"""The lowest port handed out; blocks of ``BLOCK`` follow, up to the ephemeral range."""
BLOCK = 1_000


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux: 32768 unless configured)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    except OSError:
        return 32_768
    return int(text.split()[0])


def worker_slot(worker: str | None) -> int:
    """0 for a serial run, n + 1 for the xdist worker ``gw<n>``."""
    found = re.fullmatch(r"gw(\d+)", worker or "")
    return int(found.group(1)) + 1 if found else 0


def block(slot: int, low: int) -> range | None:
    """The ports of ``slot``, below ``low`` (None: no room there, use the kernel's)."""
    blocks = (low - FIRST) // BLOCK
    if blocks < 1:
        return None
    start = FIRST + (slot % blocks) * BLOCK
    return range(start, start + BLOCK)


def is_free(port: int) -> bool:
    """Nothing listens on or holds ``port`` of the loopback now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _walk(ports: range) -> Iterator[int]:
    # A random start: two serial runs of two checkouts at once do not walk in step.
    start = random.randrange(len(ports))
    for i in itertools.count(start):
        yield ports[i % len(ports)]


class Ports:
    def __init__(self, worker: str | None, low: int) -> None:
        self.range = block(worker_slot(worker), low)
        self._next = _walk(self.range) if self.range is not None else None

    def take(self) -> int:
        if self._next is None:
            return _kernel_port()
        assert self.range is not None
        for _ in range(len(self.range)):
            port = next(self._next)
            if is_free(port):
                return port
        raise RuntimeError(f"no free port in {self.range.start}-{self.range.stop - 1}")


def _kernel_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_ports: Ports | None = None


def free_port() -> int:
    """A port of this pytest process's block that is free now."""
    global _ports
    if _ports is None:
        _ports = Ports(os.environ.get("PYTEST_XDIST_WORKER"), ephemeral_low())
    return _ports.take()


def listening_socket() -> socket.socket:
    """A loopback TCP socket already bound (and listening) on a port of our block."""
    for _ in range(20):
        port = free_port()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            sock.close()
            if error.errno == errno.EADDRINUSE:
                continue  # taken since it was checked: another one
            raise
        sock.listen(100)
        return sock
    raise RuntimeError("no free port could be bound in 20 tries")


def address_in_use(log: str) -> bool:
    """A server's log says it could not bind its port."""
    return "address already in use" in log.lower() or "errno 98" in log.lower()


def listens(pid: int, port: int) -> bool:
    """Process ``pid`` holds the listening socket of ``port`` (not someone else: a
    server that could not bind its port must not pass for ready because another
    process answers there)."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return f"pid={pid}," in out
