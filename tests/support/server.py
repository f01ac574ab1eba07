"""A real `authdemo run` process on a free port, for browser and multi-process tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.idom_client import SERVED_UI
from tests.support.ports import address_in_use, free_port, listens

READY_POLL = 0.02
"""Seconds between readiness probes: a refused connection costs microseconds, and a
server is ready about 0.7 s after it starts."""


def start_all(
    servers: Sequence[ServerProcess],
    timeout: float = 30.0,
    *,
    meanwhile: Callable[[], object] | None = None,
) -> None:
    """Start ``servers`` together and wait until each serves. ``meanwhile`` (say,
    creating the test's users) runs once while they start, which takes most of a second
    for each; if it fails, they are killed."""
    offsets = [server._spawn() for server in servers]
    try:
        if meanwhile is not None:
            meanwhile()
        for server, offset in zip(servers, offsets, strict=True):
            server._ready(timeout, offset)
    except BaseException:
        for server in servers:
            server.kill()
        raise


class PortTaken(Exception):
    """The server could not bind the port it was given."""


class ServerProcess:
    def __init__(
        self,
        db_url: str,
        log_path: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        ui: str | None = None,
    ) -> None:
        self.db_url = db_url
        self.log_path = log_path
        self.port = port or free_port()
        self._port_chosen = port is None
        """Ours to change while it has never served: a start that finds it taken moves."""
        self.workers = workers
        self.env = env or {}
        self.ui = ui or self.env.get("AUTHDEMO_UI") or "idom"
        """The UI library it serves (AUTHDEMO_UI); its clients speak that protocol."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self, timeout: float = 30.0, *, meanwhile: Callable[[], object] | None = None
    ) -> ServerProcess:
        """Start it and wait until it serves (see :func:`start_all`)."""
        start_all([self], timeout, meanwhile=meanwhile)
        return self

    def _spawn(self) -> int:
        """Launch the process; the offset of its log where this start's lines begin."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {
            **os.environ,
            "AUTHDEMO_DATABASE_URL": self.db_url,
            **self.env,
            "AUTHDEMO_UI": self.ui,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "authdemo",
                "run",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers die with it
        )
        log.close()
        SERVED_UI[self.base_url] = self.ui
        return start

    def _ready(self, timeout: float, log_start: int) -> None:
        for _ in range(5):
            try:
                self._wait_ready(timeout, log_start)
            except PortTaken:
                # Someone outside this run bound the port since free_port() saw it free.
                self.port = free_port()
                log_start = self._spawn()
                continue
            self._port_chosen = False  # it served here: restarts come back to this port
            return
        raise RuntimeError(f"server found its port taken five times:\n{self.log()}")

    def _wait_ready(self, timeout: float, log_start: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                if self._port_chosen and address_in_use(self.log_since(log_start)):
                    raise PortTaken
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base_url + "/_authdemo/static/app.css", timeout=1):
                    pass
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(READY_POLL)
                continue
            if listens(self.process.pid, self.port):
                if self._workers_ready(log_start):
                    return
                time.sleep(READY_POLL)  # one worker answers; the others still start
                continue
            # Someone else answers on our port: ours is failing to bind it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(max(1.0, deadline - time.monotonic()))
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def _workers_ready(self, log_start: int) -> bool:
        """Every worker serves, not only the first: until then the kernel hands every
        connection to the ones that do. With several workers Sanic's main process only
        manages them; each worker process logs "Worker ready [pid]" once it serves."""
        return self.workers == 1 or self.log_since(log_start).count("Worker ready") >= self.workers

    def log_since(self, offset: int) -> str:
        return self.log_path.read_bytes()[offset:].decode(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Graceful: SIGTERM to the whole process group, SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """``kill -9`` of the server and its workers."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(15)
