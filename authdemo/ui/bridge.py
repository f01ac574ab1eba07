"""Our own Sanic ⇄ IDOM (or ReactPy) bridge: the client's files, and one websocket per
page view.

idom's bundled Sanic adapter reads ``request.app._asgi_app.transport``, which does not
exist on Sanic's own server, so the page never renders; this replaces it. ReactPy 1.1's
adapter runs there but drops websockets under concurrent connects. Both libraries speak
the same protocol (``layout-update`` out, ``layout-event`` in) and ship the same kind of
client (``index.html`` + ``assets/``), under ``/_idom`` or ``/_reactpy``: ``ui``
(see ``ui.py``) says which.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.exceptions import NotFound, WebsocketClosed
from sanic.response import HTTPResponse
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from ..http.headers import SECURITY_HEADERS, EncodedHeaders, PreparedResponse, encode_headers
from .library import UiLibrary, library, use_library

log = logging.getLogger(__name__)

IDOM_CLIENT_DIR = library("idom").client_dir
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/_authdemo/static"
_HASHED = re.compile(r"\.[0-9a-f]{8,}\.(js|css|map|svg|woff2?)$")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

RootConstructor = Callable[[], Any]

PAGE_HEAD = (
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    "    <title>{title}</title>\n"
    '    <link rel="icon" href="/_authdemo/static/favicon.svg" type="image/svg+xml">'
)
STYLESHEET = '\n    <link rel="stylesheet" href="/_authdemo/static/app.css">'


@dataclass(frozen=True)
class ViewConnection:
    """What the bridge needs for one websocket: the root to render, and two hooks."""

    root: Any
    """The root component instance of this connection's layout."""
    before_event: Callable[[], Awaitable[bool]]
    """Awaited before each UI event; False drops the event (auth checks run here)."""
    close: Callable[[], None]
    """Called once the websocket is gone."""


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    headers: EncodedHeaders


def load_static_dir(
    directory: Path, security: Mapping[str, str] = SECURITY_HEADERS
) -> dict[str, StaticFile]:
    """Read the regular files directly inside ``directory`` into memory.

    Requests are answered from this table by exact name, so no path a client sends is
    ever joined onto the file system: ``..``, encoded slashes, sibling folders and
    symlinks leading out simply are not keys.
    """
    files: dict[str, StaticFile] = {}
    root = directory.resolve()
    for path in sorted(directory.iterdir()):
        if path.is_symlink() or not path.is_file() or path.resolve().parent != root:
            continue
        content_type = _TYPES.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        cache = "public, max-age=31536000, immutable" if _HASHED.search(path.name) else "no-cache"
        headers = {"content-type": content_type, "cache-control": cache}
        files[path.name] = StaticFile(path.read_bytes(), encode_headers(headers, security))
    return files


def index_html(
    title: str = "authdemo", *, stylesheet: bool = True, ui: UiLibrary | None = None
) -> str:
    """The UI library's page (IDOM's by default), with our head: ``title`` (escaped),
    the icon, and ``app.css`` unless ``stylesheet`` is False (an app that brings its own
    styles)."""
    template = ((ui or library()).client_dir / "index.html").read_text()
    head = PAGE_HEAD.format(title=html.escape(title)) + (STYLESHEET if stylesheet else "")
    return template.format(__head__=head)


LOOK_AGAIN_AFTER = 0.5
"""Seconds after a connection is lost that ``release_when_lost`` looks for its stuck
data tasks a second time."""


def release_when_lost(ws: WebsocketImplProtocol) -> None:
    """Let go of everything Sanic keeps of this connection once its TCP connection is
    lost, so that a closed websocket is freed at once and quietly.

    Three things of Sanic's (25.12) outlive a closed websocket:

    - the HTTP timeout check it scheduled before the upgrade: ``HttpProtocol.close()``
      cancels it, but ``WebSocketProtocol.close()`` does not call that once the
      connection is a websocket, so the loop's timer held the closed connection (its
      protocol, websocket, frames and layout leftovers) until it fired, half the
      shortest of Sanic's timeouts later: some thousands of closed connections under a
      steady stream of connects (row 8 of the Performance page). For a websocket the
      check has nothing left to do.
    - the tasks that feed frames that arrived after the handler stopped reading (say a
      client's events in flight when the server closed): Sanic starts one per read with
      ``asyncio.create_task`` and keeps none; each waits for its message to be fetched,
      which can no longer happen. When the connection is freed they are freed with it,
      still pending, and asyncio logs "Task was destroyed but it is pending!" for each.
      They are cancelled here instead, once no more data can come.
    - the abort Sanic schedules, ``close_timeout`` (10 s) later, when it ends a handler
      that still ran when the connection was lost (a race the handler's teardown often
      loses): that timer's context held the request and its ``ctx``. The timeout is set
      to 0 here, as nothing is left to wait for, so the abort comes at once.
    """
    lost = ws.connection_lost_waiter
    if lost is None:  # set by the handshake, which every handler of Sanic's runs after
        return

    def cancel_stuck() -> None:
        # A data task stuck on a message nobody fetches holds (or waits for) this lock;
        # only then is it worth looking through the loop's tasks for this connection's.
        if ws.process_event_mutex.locked():
            for task in asyncio.all_tasks():
                coro = task.get_coro()
                frame = getattr(coro, "cr_frame", None)
                if frame is not None and frame.f_locals.get("self") is ws:
                    task.cancel()

    def release(_: object) -> None:
        ws.close_timeout = 0  # the abort of a handler still running: at once
        timer = getattr(ws.io_proto, "_callback_check_timeouts", None)
        if timer is not None:  # asyncio's or uvloop's TimerHandle
            timer.cancel()
        cancel_stuck()
        # A data task that had not reached the lock yet (still in its send step when
        # the connection went) may take it after this: look once more, a little later.
        lost.get_loop().call_later(LOOK_AGAIN_AFTER, cancel_stuck)

    lost.add_done_callback(release)


def install_bridge(
    app: Sanic[Any, Any],
    connect: Callable[[Request], ViewConnection],
    *,
    handshake: Callable[[Request], Awaitable[HTTPResponse | None]] | None = None,
    events_per_second: int = 20,
    security: Mapping[str, str] = SECURITY_HEADERS,
    ui: UiLibrary | None = None,
) -> None:
    """Add the UI library's client files (``ui``, IDOM's by default), our static files
    and the websocket route to ``app``.

    ``handshake`` runs before a websocket is accepted and may refuse it by returning a
    response; ``connect`` is called for each accepted one. The bridge itself knows
    nothing about authentication; the page (index.html) is the app's to serve.
    ``security`` is the headers every file is served with.
    """
    ui = ui or library()
    assets = load_static_dir(ui.client_dir / "assets", security)
    static = load_static_dir(STATIC_DIR, security)

    def serve_from(table: dict[str, StaticFile]) -> Callable[..., Any]:
        async def handler(request: Request, name: str) -> HTTPResponse:
            found = table.get(name)
            if found is None:
                raise NotFound("Not found")
            return PreparedResponse(found.body, found.headers)

        return handler

    app.add_route(serve_from(assets), f"{ui.url_prefix}/assets/<name:str>", name="ui_assets")
    app.add_route(serve_from(static), f"{STATIC_PREFIX}/<name:str>", name="authdemo_static")

    async def stream(request: Request, ws: WebsocketImplProtocol, path: str = "") -> None:
        # Everything this connection renders, handles and runs is made by ``ui``.
        release_when_lost(ws)
        with use_library(ui):
            await serve(request, ws, path)

    async def serve(request: Request, ws: WebsocketImplProtocol, path: str) -> None:
        view = connect(request)
        connection = ui.Connection(
            scope={"type": "websocket", "path": request.path, "client": request.client_ip},
            location=ui.Location(
                pathname="/" + path,
                search=f"?{request.query_string}" if request.query_string else "",
            ),
            carrier=request,
        )
        layout = ui.Layout(ui.ConnectionContext(view.root, value=connection))

        async def send(message: Any) -> None:
            await ws.send(json.dumps(message, separators=(",", ":")))

        budget = EventBudget(events_per_second, burst=2 * events_per_second)
        over_budget_logged = False  # once per connection: a flood must not flood the log

        async def recv() -> Any:
            nonlocal over_budget_logged
            while True:
                data = await ws.recv()
                if data is None:
                    raise PeerGone()
                message = parse_event(data)
                if message is None:
                    continue
                verdict = budget.admit()
                if verdict is Verdict.CLOSE:  # not a burst: a flood
                    log.warning("closing a websocket that floods events")
                    await ws.close(code=1008, reason="too many events")
                    raise PeerGone()
                if verdict is Verdict.DROP:
                    if not over_budget_logged:
                        over_budget_logged = True
                        log.info("events dropped: over the connection's event budget")
                    continue
                if await view.before_event():
                    return message
                log.info("event dropped: sent from a view of an earlier sign-in state")

        try:
            await ui.serve_layout(layout, send, recv)
        except* (PeerGone, ConnectionClosed, WebsocketClosed):
            pass  # the peer went away, or broke the protocol and was closed: both normal
        finally:
            view.close()

    # In a blueprint of their own, so that the handshake check runs for these routes only.
    stream_path = f"{ui.url_prefix}/stream"
    websockets = Blueprint(f"ui_stream_{id(app)}")
    websockets.add_websocket_route(stream, stream_path, name="ui_stream")
    websockets.add_websocket_route(stream, f"{stream_path}/<path:path>", name="ui_stream_path")
    if handshake is not None:
        websockets.middleware(handshake, attach_to="request")
    app.blueprint(websockets)


class PeerGone(Exception):
    """The websocket closed (or was closed for flooding): stop serving its layout.

    Our own rather than the libraries' ``Stop`` (which ReactPy 1.1 deprecates); both
    ``serve_layout``s let it out of their task group, where ``stream`` ends quietly."""


class Verdict(Enum):
    ACCEPT = "accept"
    DROP = "drop"
    CLOSE = "close"


FLOOD_SECONDS = 10
"""A connection is closed once its recent excess exceeds this many seconds' budget."""


class EventBudget:
    """``rate`` events per second on average, bursts up to ``burst``: a token bucket.

    Events beyond it are dropped. Whether dropping has become a flood is measured by a
    second bucket that every dropped event fills and that drains at ``rate`` per
    second: it holds the *recent* excess, not a lifetime count, so a connection that
    bursts past its allowance now and then is never closed however long it lives,
    while one that keeps sending more than twice its budget fills it and is closed
    (three times the budget: within ``FLOOD_SECONDS``; a tight loop: at once).
    ``clock`` (monotonic seconds) is injectable so tests simulate time.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = burst
        self.tokens = burst
        self.excess = 0.0
        self.flood_level = FLOOD_SECONDS * rate
        self._clock = clock
        self._updated = clock()

    def admit(self) -> Verdict:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)  # monotonic, but never trust a negative
        self._updated = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.excess = max(0.0, self.excess - elapsed * self.rate)
        if self.tokens >= 1:
            self.tokens -= 1
            return Verdict.ACCEPT
        self.excess += 1
        return Verdict.CLOSE if self.excess > self.flood_level else Verdict.DROP


def parse_event(data: str | bytes) -> dict[str, Any] | None:
    """A well-formed layout event, or None for anything else (ignored, never fatal)."""
    try:
        message = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    if (
        isinstance(message, dict)
        and message.get("type", "layout-event") == "layout-event"  # idom 1.0's client omits it
        and isinstance(message.get("target"), str)
        and isinstance(message.get("data"), list)
    ):
        return message
    return None
