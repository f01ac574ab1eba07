"""One PostgreSQL listener per host, relayed to the host's workers over a local socket.

``authdemo run --workers N`` on PostgreSQL holds the host's only ``LISTEN`` connection
(``db.notify.PostgresNotifications``) in its main process, the one that supervises the
N workers (``HostListener``), and repeats what it hears, one line each, to every worker
connected to its Unix socket:

- ``L``: listening (sent after ``LISTEN`` took effect, and to each worker as it
  connects): read everything not seen yet, then rely on notifications;
- ``D``: not listening: read the outbox every ``AUTHDEMO_BROADCAST_POLL``;
- ``N<id>``: broadcast row ``<id>`` was committed: read now.

A worker whose link to the relay breaks (the host is stopping, or its listener failed)
acts as on ``D`` and connects again; the ``L`` it gets then makes it catch up. Nothing
is ever read from the relay but "when to look": the outbox table stays the truth, and
each worker's follower reads it without gaps (``broadcast``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from typing import Any

from .config import Settings
from .db.engine import is_sqlite
from .db.notify import ChangeFeedTarget, PostgresNotifications

log = logging.getLogger(__name__)

RELAY_ENV = "AUTHDEMO_HOST_RELAY"
"""Set by the main process for the workers it starts: the relay's socket. Not a setting."""
STARTUP_GRACE = 10.0
"""Seconds a starting worker waits for the listener's socket before it warns."""
RESTART_GRACE = 3.0
"""Seconds a worker that lost the listener's socket retries before it warns."""
MAX_BACKLOG = 1024 * 1024
"""Bytes a worker may leave unread before the relay drops it (it reconnects and
catches up from the table, so dropping loses nothing)."""


class RelayServer:
    """The listener's side: a ``ChangeFeedTarget`` that repeats to every worker."""

    def __init__(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()
        self._listening = False

    def notified(self, row_id: int | None) -> None:
        self._send(b"N%d\n" % row_id if row_id is not None else b"N\n")

    def listening(self, on: bool) -> None:
        self._listening = on
        self._send(b"L\n" if on else b"D\n")

    @property
    def workers(self) -> int:
        return len(self._writers)

    def _send(self, line: bytes) -> None:
        for writer in tuple(self._writers):
            if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
                log.warning("a worker stopped reading the relay; dropping it")
                self._writers.discard(writer)
                writer.close()
            elif not writer.is_closing():
                writer.write(line)

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"L\n" if self._listening else b"D\n")
        self._writers.add(writer)
        try:
            while await reader.read(256):  # workers say nothing; EOF: it went away
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass  # cancelled: the listener is stopping, and so is this handler
        finally:
            self._writers.discard(writer)
            writer.close()

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()


async def serve_host_listener(
    listen_url: str, path: str, *, keepalive: float = 5.0, retry: float = 1.0
) -> None:
    """Listen on PostgreSQL and relay to the workers connected at ``path``, until cancelled."""
    relay = RelayServer()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a listener process that was killed
    server = await asyncio.start_unix_server(relay.serve_client, path)
    try:
        await PostgresNotifications(listen_url, relay, keepalive=keepalive, retry=retry).run()
    finally:
        server.close()
        relay.close()


class HostListener:
    """``serve_host_listener`` on a thread of its own, in ``authdemo run``'s main process.

    The main process only supervises the workers, so the listener lives exactly as long
    as the host does: no process of its own that could die while the host stays up.
    """

    def __init__(self, listen_url: str, path: str) -> None:
        self._listen_url = listen_url
        self.path = path
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="authdemo-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(serve_host_listener(self._listen_url, self.path))
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout)


class RelayClient:
    """A worker's side: feeds what the host's listener relays to ``target``."""

    def __init__(self, path: str, target: ChangeFeedTarget, *, retry: float = 0.2) -> None:
        self._path = path
        self._target = target
        self._retry = retry

    async def run(self) -> None:
        failing = False
        listening = False
        # At start the listener process may not have made its socket yet: no warning
        # unless that lasts (the worker reads the outbox often meanwhile).
        patience = asyncio.get_running_loop().time() + STARTUP_GRACE
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self._path)
                try:
                    if failing:
                        log.warning("following the host's listener again")
                        failing = False
                    while line := await reader.readline():
                        kind, rest = line[:1], line[1:].strip()
                        if kind == b"N":
                            self._target.notified(int(rest) if rest.isdigit() else None)
                        elif kind in (b"L", b"D"):
                            listening = kind == b"L"
                            self._target.listening(listening)
                finally:
                    writer.close()
                # Lost: when the host stops, its listener may go a moment before this
                # worker does; say so only if it lasts.
                patience = asyncio.get_running_loop().time() + RESTART_GRACE
                raise ConnectionError("the host's listener went away")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if listening:
                    listening = False
                    self._target.listening(False)  # read often until it is back
                if not failing and asyncio.get_running_loop().time() >= patience:
                    log.warning("cannot follow the host's listener: %s", error)
                    failing = True
                await asyncio.sleep(self._retry)


def install_host_listener(app: Any, settings: Settings) -> None:
    """Several workers on PostgreSQL (``authdemo run --workers N``, ``sanic app:app
    --workers N``): the main process listens for the host and relays to its workers.

    Sanic runs ``main_process_start`` before it starts the workers, which inherit the
    relay's path from the environment (``relay_path``); with one worker, and in tests
    that serve an app in-process, there is no main process event and each app listens
    for itself."""
    running: list[tuple[HostListener, str]] = []

    @app.main_process_start  # type: ignore[untyped-decorator]
    def start_host_listener(app: Any) -> None:
        if app.state.workers <= 1 or is_sqlite(settings.database_url):
            return
        directory = tempfile.mkdtemp(prefix="authdemo-")
        listener = HostListener(settings.listener_url, os.path.join(directory, "listen.sock"))
        listener.start()
        os.environ[RELAY_ENV] = listener.path
        running.append((listener, directory))

    @app.main_process_stop  # type: ignore[untyped-decorator]
    def stop_host_listener(_: Any) -> None:
        while running:
            listener, directory = running.pop()
            listener.stop()
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(RELAY_ENV, None)


def relay_path() -> str | None:
    """In a worker: the socket of the host's listener, if the main process runs one."""
    return os.environ.get(RELAY_ENV) or None
