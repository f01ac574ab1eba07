"""A TCP forwarder in a thread of its own: a stand-in for a load balancer in front of
several hosts, or for a network between the app and its database that we can cut."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from tests.support.ports import listening_socket


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self._sock = listening_socket()  # bound now: the port is ours until stop()
        self.port = int(self._sock.getsockname()[1])
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._cut = False

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def switch(self, target: tuple[str, int]) -> None:
        """New connections go to ``target``; open ones are closed (their host went away)."""
        self.target = target
        self._call(self._close_all())

    def cut(self) -> None:
        """Close every connection and refuse new ones: the network is down."""
        self._cut = True
        self._call(self._close_all())

    def restore(self) -> None:
        self._cut = False

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()
        await self._close_all()

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)
