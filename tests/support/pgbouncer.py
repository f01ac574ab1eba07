"""A real PgBouncer in transaction mode, on a free port, in front of the test PostgreSQL.

Debian's ``pgbouncer`` package (``.ci/run`` installs it); tests that need it skip when the
binary is missing. The config is generated: every database name is passed through to the
server the test URL names (``* = host=… port=…``), trust authentication, and a small
server pool so that a test can see it is never exceeded.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.ports import address_in_use, free_port, listens

SKIP_REASON = "PgBouncer variant: needs the pgbouncer binary (apt-get install pgbouncer)"


def binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


class PgBouncer:
    def __init__(self, server_url: str, *, pool_size: int = 10, port: int | None = None) -> None:
        server = make_url(server_url)
        self.server_host = server.host or "127.0.0.1"
        self.server_port = server.port or 5432
        self.user = server.username or "postgres"
        self.pool_size = pool_size
        self.port = port or free_port()
        self._port_chosen = port is None
        """Ours to change until it has served: a first start that finds it taken moves."""
        self.dir = Path(tempfile.mkdtemp(prefix="authdemo-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` through this PgBouncer."""
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        config = self.dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.server_host} port={self.server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 2000\n"
            f"max_db_connections = {self.pool_size}\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
            f"pidfile = {self.dir / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits\n"
            "server_reset_query = DISCARD ALL\n"
            "server_reset_query_always = 1\n"
        )
        return config

    def start(self, timeout: float = 10.0) -> PgBouncer:
        for _ in range(5):
            if self._start(timeout):
                self._port_chosen = False  # restarts come back to this port
                return self
            # Someone outside this run bound the port since free_port() saw it free.
            self.port = free_port()
        raise RuntimeError(f"pgbouncer found its port taken five times:\n{self.log()}")

    def _start(self, timeout: float) -> bool:
        """Started (True), or its port was taken and it may move (False)."""
        path = binary()
        assert path is not None, SKIP_REASON
        config = self._write_config()
        command = [path, str(config)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            user = "postgres" if _user_exists("postgres") else "nobody"
            command[1:1] = ["-u", user]
            os.chmod(self.dir, 0o777)
            for each in self.dir.iterdir():
                os.chmod(each, 0o644)
        refused_before = self._bind_refusals()
        log = (self.dir / "stdout.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if self._port_chosen and self._bind_refusals() > refused_before:
                    return False
                raise RuntimeError(f"pgbouncer exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            if listens(self.process.pid, self.port):
                return True
            # Another process answers on our port: this PgBouncer is failing to bind it.
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not start:\n{self.log()}")

    def stop(self) -> None:
        """Immediate shutdown (SIGTERM): every client and server connection is dropped."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _bind_refusals(self) -> int:
        return sum(address_in_use(line) for line in self.log().splitlines())

    def log(self) -> str:
        return "".join(
            p.read_text(errors="replace")
            for p in (self.dir / "stdout.log", self.dir / "pgbouncer.log")
            if p.exists()
        )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
