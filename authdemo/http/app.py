"""``create_app(settings)``: the Sanic application, built on demand (nothing at import)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable

from sanic import Request, Sanic
from sanic.config import Config
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse, text

from ..bootstrap import (
    HasherFactory,
    Runtime,
    check_database,
    describe_database,
    describe_mail,
    mail_sender,
    start_runtime,
)
from ..broadcast import BroadcastFollower
from ..config import Settings
from ..domain import Clock, SchemaNotReady, StorageUnavailable
from ..events import InProcessEventBus
from ..logs import give_records_a_format
from ..permissions import Permission, PermissionRegistry
from ..relay import RelayClient, install_host_listener, relay_path
from ..security import hash_token
from ..service import AuthService, Resolution
from ..ui.bridge import RootConstructor, ViewConnection, install_bridge
from ..ui.components import DemoApp
from ..ui.connection import LiveSession
from ..ui.connection.deadlines import Deadlines
from ..ui.hooks import AuthProvider
from ..ui.library import check_root, library, use_library
from .cookies import read_session_cookie
from .headers import SecurityHeaders, add_security_headers, install_security_headers
from .health import UNAVAILABLE, DatabaseHealth
from .hosts import install_host_check
from .limits import Slot, SocketSlots
from .middleware import client_info, websocket_handshake
from .pages import install_pages
from .proxy import Networks, parse_networks, request_scheme
from .tickets import install_ticket_route

log = logging.getLogger(__name__)

WEBSOCKET_MAX_MESSAGE = 64 * 1024
BACKGROUND_STOP_WAIT = 10.0
"""Seconds the stop waits for the background tasks (follower, listener, mail sender,
checkpoints) to end once cancelled."""
CHECKPOINT_TASK = "authdemo-wal-checkpoints"
"""The name of the task that checkpoints a SQLite database's WAL (one per worker)."""


class AppContext:
    """Typed ``app.ctx``. Filled in by the startup listener, once per worker."""

    settings: Settings
    runtime: Runtime
    service: AuthService
    events: InProcessEventBus
    follower: BroadcastFollower
    health: DatabaseHealth
    background: list[asyncio.Task[None]]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sockets = SocketSlots(settings.ws_per_address)
        self.open_sockets: Counter[str] = self.sockets.open
        """Open websockets per client network (capped by AUTHDEMO_WS_PER_ADDRESS)."""
        self.trusted: Networks = parse_networks(settings.trusted_proxies)
        self.security = SecurityHeaders.from_settings(settings)
        """The headers of every response (with ``AUTHDEMO_CSP_EXTRA`` merged in)."""


AuthdemoApp = Sanic[Config, AppContext]

EXIT_DATABASE = 3
"""The exit status of a server that refused to start on its database (as the CLI's)."""
WORKER_VARIABLE = "SANIC_WORKER_NAME"
"""Set by Sanic in each worker process it starts (not in ``--single-process``)."""


def say_refused(settings: Settings, error: SchemaNotReady) -> None:
    """One line on stderr, naming the database and where its URL came from (the caller
    exits): a traceback would bury the one fix that matters."""
    sys.stderr.write(f"authdemo cannot start: {error} ({describe_database(settings)})\n")
    sys.stderr.flush()


def create_app(
    settings: Settings | None = None,
    root: RootConstructor | None = None,
    *,
    name: str = "authdemo",
    clock: Clock | None = None,
    hasher_factory: HasherFactory | None = None,
    permissions: Iterable[Permission] = (),
) -> AuthdemoApp:
    """Build the app. ``root`` is the component every page view renders (default: demo UI).

    ``settings`` default to ``Settings.from_env()``. ``name`` is the Sanic app's name,
    unique per process (Sanic keeps a registry of them): pass one to each app when a
    process builds several. ``clock`` and ``hasher_factory`` exist so that tests control
    time and hashing cost. ``permissions``: the permissions the app checks
    (``Permission("notes:write", "Write notes")``); roles may grant only these (and the
    built-in ``authdemo:admin``). Nothing is opened here: each worker opens its
    database pool when it starts.

    Raises ``ConfigError`` (a ``ValueError``) for a setting it cannot use, naming it,
    ``InvalidPermission`` for a permission declared twice with different descriptions, and
    ``ValueError`` when ``name`` is taken in this process. When the server starts:
    ``SchemaNotReady`` (the database is missing or not migrated: run
    ``authdemo migrate``) or ``StorageUnavailable``.
    """
    settings = settings or Settings.from_env()
    settings.validate()
    declared = PermissionRegistry(permissions)  # a bad declaration fails here, at once
    give_records_a_format()
    if not Sanic.test_mode and _name_taken(name):
        raise ValueError(
            f"An app named {name!r} exists in this process already: give each app its "
            "own name, e.g. create_app(name='shop') and create_app(name='admin')."
        )
    app: AuthdemoApp = Sanic(name, ctx=AppContext(settings), error_handler=SecureErrorHandler())
    app.config.WEBSOCKET_MAX_SIZE = WEBSOCKET_MAX_MESSAGE
    app.config.REQUEST_MAX_HEADER_SIZE = 16384  # oversized cookies get a fresh one, not a 413
    app.config.NOISY_EXCEPTIONS = False
    app.config.FALLBACK_ERROR_FORMAT = "text"  # plain, short error pages
    # On stop, don't wait 15 s for idle keep-alive connections (websockets are cancelled).
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 3.0

    app.config.update(  # pings drop dead peers
        {
            "WEBSOCKET_PING_INTERVAL": settings.ws_ping_interval.total_seconds(),
            "WEBSOCKET_PING_TIMEOUT": settings.ws_ping_timeout.total_seconds(),
        }
    )

    @app.main_process_start
    async def check_database_once(app: AuthdemoApp, _loop: object) -> None:
        # `sanic app:app` with workers: an unready database is refused here, once, in
        # one line, before any worker starts (a worker's refusal is a traceback, and the
        # main process would wait on for a worker that never comes).
        if not Sanic.test_mode:
            try:
                await check_database(settings)
            except SchemaNotReady as error:
                say_refused(settings, error)
                # SystemExit, not os._exit: Sanic then stops the manager process it has
                # started already (it says "Experienced exception while trying to serve").
                raise SystemExit(EXIT_DATABASE) from None

    @app.before_server_start
    async def open_database(app: AuthdemoApp) -> None:
        try:
            rt = await start_runtime(
                settings,
                clock=clock,
                hasher_factory=hasher_factory,
                permissions=declared,
                serving=True,
            )
        except SchemaNotReady as error:
            if Sanic.test_mode or WORKER_VARIABLE in os.environ:
                raise  # a worker: its main process checked already (see above)
            say_refused(settings, error)  # `sanic app:app --single-process`
            os._exit(EXIT_DATABASE)  # nothing started yet; Sanic would print a traceback
        app.ctx.runtime = rt
        app.ctx.service = rt.service
        app.ctx.events = rt.events
        follower = BroadcastFollower(
            rt.uow,
            rt.events,
            settings.broadcast_poll.total_seconds(),
            settings.broadcast_poll_listening.total_seconds(),
        )
        await follower.start_position()
        app.ctx.follower = follower
        app.ctx.health = DatabaseHealth(rt.uow)
        loop = asyncio.get_running_loop()
        app.ctx.background = [loop.create_task(follower.run())]
        if (relay := relay_path()) is not None:  # the host's one listener (``relay``)
            app.ctx.background.append(loop.create_task(RelayClient(relay, follower).run()))
        elif (feed := rt.change_feed(follower)) is not None:  # PostgreSQL: LISTEN/NOTIFY
            app.ctx.background.append(loop.create_task(feed))
        if (checkpoints := rt.checkpoints()) is not None:  # SQLite: WAL checkpoints
            app.ctx.background.append(loop.create_task(checkpoints, name=CHECKPOINT_TASK))
        # The mail outbox: this worker's sender, and one line on where mail goes.
        log.info("%s", describe_mail(settings))
        if (sender := mail_sender(settings, rt, clock=clock)) is not None:
            app.ctx.background.append(loop.create_task(sender.run()))

    @app.exception(StorageUnavailable)
    async def database_unavailable(request: Request, error: Exception) -> HTTPResponse:
        log.warning("database error on %s: %r", request.path, error.__cause__)
        app.ctx.health.mark_down()
        return text(UNAVAILABLE, status=503, headers={"retry-after": "5"})

    @app.before_server_stop
    async def stop_background(app: AuthdemoApp) -> None:
        background: list[asyncio.Task[None]] = getattr(app.ctx, "background", [])
        for task in background:
            task.cancel()
        if background:  # a task that ignores its cancellation never holds up the stop
            _, running = await asyncio.wait(background, timeout=BACKGROUND_STOP_WAIT)
            for task in running:
                log.warning("background task %s did not stop; left behind", task.get_name())
        if getattr(app.ctx, "health", None) is not None:
            await app.ctx.health.close()

    @app.after_server_stop
    async def close_database(app: AuthdemoApp) -> None:
        rt: Runtime | None = getattr(app.ctx, "runtime", None)
        if rt is not None:
            await rt.close()

    deadlines = Deadlines()  # every view's expiry timer, one loop timer for them all
    app_root = root or DemoApp
    ui = library(settings.ui)  # IDOM or ReactPy: this app's, for all its connections
    with use_library(ui):  # authdemo's own components are made by the app's library
        check_root(app_root(), ui)  # at once, not on the first page view (a blank page)

    def connect(request: Request) -> ViewConnection:
        """A websocket passed the middleware (Origin checked, cookie resolved): wire it up."""
        slot: Slot = request.ctx.socket_slot  # reserved by the handshake check
        try:
            child = app_root()
            check_root(child, ui)
        except BaseException:
            slot.release()
            raise
        resolution: Resolution = request.ctx.session
        raw = read_session_cookie(request)
        client = client_info(request, app.ctx.trusted)
        live = LiveSession(
            service=app.ctx.service,
            events=app.ctx.events,
            client=client,
            # The handshake's hash of a recognised cookie (one string for the view and
            # the worker's memo of cookies); hashed here only for one it did not know.
            cookie_token_hash=resolution.token_hash or (hash_token(raw) if raw else None),
            resolution=resolution,
            deadlines=deadlines,
        )

        return ViewConnection(AuthProvider(live, child), live.before_event, _Closing(live, slot))

    security = app.ctx.security
    install_host_check(app)  # first: a request for a host not ours gets nothing else
    install_security_headers(app, security)  # every response, the app's own routes too
    install_pages(app, security)
    install_ticket_route(app)
    install_bridge(
        app,
        connect,
        handshake=websocket_handshake(app),
        events_per_second=settings.ws_events_per_second,
        security=security.plain,
        ui=ui,
    )
    install_host_listener(app, settings)  # PostgreSQL, several workers: one LISTEN per host
    return app


def _name_taken(name: str) -> bool:
    try:
        Sanic.get_app(name)
    except SanicException:
        return False
    return True


class SecureErrorHandler(ErrorHandler):
    """Sanic's error pages (404, 405, 500…), with our security headers (the response
    middleware adds them too; this covers errors raised after it ran)."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        response = super().default(request, exception)
        https = request_scheme(request, request.app.ctx.trusted) == "https"
        security: SecurityHeaders = request.app.ctx.security
        return add_security_headers(response, security.for_scheme(https))


class _Closing:
    """What a view does when its websocket closes: leave its session, give its slot back.
    A slotted object rather than a closure with two cells (about a third of its memory,
    held while the view is open)."""

    __slots__ = ("_live", "_slot")

    def __init__(self, live: LiveSession, slot: Slot) -> None:
        self._live = live
        self._slot = slot

    def __call__(self) -> None:
        self._live.close()
        self._slot.release()
