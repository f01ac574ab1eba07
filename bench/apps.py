"""The reference apps the benchmark compares authdemo against, on the same stack.

- ``bare``: Sanic serving the same index HTML, no middleware: the ceiling of this stack.
- ``inmemory``: the same plus the original example's session middleware (a dict of
  sessions, a cookie set on the first response).
- ``bridge``: authdemo's own IDOM bridge serving the demo's signed-in view fed with
  constant values (no auth at all): the ceiling for websocket figures.
- ``reactpy-bridge``: the same on ReactPy 1.1 (authdemo's bridge, ReactPy's client).
- ``reactpy-backend``: ReactPy 1.1's own Sanic backend serving that same UI: what a
  ReactPy app on Sanic gets without authdemo.
"""

from __future__ import annotations

import secrets
from typing import Any

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse
from sanic.response import html as html_response

from authdemo.config import UiName
from authdemo.ui.bridge import ViewConnection, index_html, install_bridge
from authdemo.ui.library import component, html, library, set_library


def bare_app(name: str = "bench_bare") -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(name)
    page = index_html()

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return html_response(page, headers={"cache-control": "no-store"})

    return app


def inmemory_app() -> Sanic[Any, Any]:
    app = bare_app("bench_inmemory")
    sessions: dict[str, dict[str, Any]] = {}

    @app.on_request
    async def load_session(request: Request) -> None:
        sid = request.cookies.get("session")
        if sid is None or sid not in sessions:
            sid = secrets.token_urlsafe(32)
            sessions[sid] = {"values": {}}
            request.ctx.new_session = sid
        request.ctx.session = sessions[sid]

    @app.on_response
    async def save_session(request: Request, response: BaseHTTPResponse) -> None:
        sid = getattr(request.ctx, "new_session", None)
        if sid is not None:
            response.add_cookie("session", sid, httponly=True, secure=True, samesite="Lax")

    return app


def _static_auth() -> tuple[Any, Any, Any]:
    """A signed-in user and session that are just values: no database, no events."""
    from datetime import UTC, datetime, timedelta

    from authdemo.domain import AuthSession, User
    from authdemo.ui.connection import AuthState
    from authdemo.ui.hooks import Auth

    now = datetime.now(UTC)
    user = User(1, "bench", True, now, now)
    session = AuthSession(
        1,
        "0" * 64,
        1,
        now,
        now,
        now + timedelta(hours=1),
        now + timedelta(hours=12),
        None,
        "127.0.0.1",
        "bench",
    )

    async def nothing(*_: Any) -> Any:
        return None

    state = AuthState(user, session, None, 1)

    from authdemo.service.mfa_settings import MfaStatus
    from authdemo.ui.hooks import EmailControls, SessionControls, TwoFactorControls

    class NoLiveSession:
        """What the demo's components ask of the live session, answered with constants
        (each answer still re-renders its component, as authdemo's do). Mail can be
        sent, as under ``authdemo run`` (console mail without SMTP): the demo then shows
        its e-mail card, and so must the reference."""

        mail_available = True
        signup_open = False

        async def update_data(self, *_: Any) -> None:
            return None

        async def mfa_status(self) -> MfaStatus:
            return MfaStatus(False)

        async def sessions(self) -> list[Any]:
            return [session]

        def now(self) -> datetime:
            return datetime.now(UTC)

    live: Any = NoLiveSession()
    auth = Auth(
        user,
        session,
        nothing,
        nothing,
        nothing,
        SessionControls(live),
        nothing,
        two_factor=TwoFactorControls(live),
        email=EmailControls(live),
    )
    return auth, state, live


@component
def UnauthenticatedDemo() -> Any:
    """authdemo's own signed-in demo view, fed constant values instead of auth: the same
    components, the same first render, none of the authentication."""
    from authdemo.ui.components import DemoApp
    from authdemo.ui.hooks import AuthContext, Provided
    from authdemo.ui.library import provide

    auth, state, live = _static_auth()
    provide(AuthContext, Provided(auth, state, live))  # as AuthProvider does: no provider node
    return DemoApp()


def bridge_app(ui: UiName = "idom") -> Sanic[Any, Any]:
    app = bare_app(f"bench_bridge_{ui}")

    async def nothing() -> bool:
        return True

    def connect(request: Request) -> ViewConnection:
        return ViewConnection(UnauthenticatedDemo(), nothing, lambda: None)

    install_bridge(app, connect, ui=library(ui))
    return app


def reactpy_backend_app() -> Sanic[Any, Any]:
    """ReactPy's own Sanic backend (``reactpy.backend.sanic.configure``) serving the same
    UI as ``bridge``: its page, client files and websocket route, none of authdemo's."""
    from reactpy.backend.sanic import configure

    app: Sanic[Any, Any] = Sanic("bench_reactpy_backend")
    reactpy = library("reactpy")

    @app.on_request
    async def render_with_reactpy(request: Request) -> None:
        # authdemo's components are written once (authdemo/ui/library.py): the websocket's
        # task, started from here, renders them with ReactPy.
        set_library(reactpy)

    configure(app, UnauthenticatedDemo)
    return app


FACTORIES = {
    "bare": bare_app,
    "inmemory": inmemory_app,
    "bridge": bridge_app,
    "reactpy-bridge": lambda: bridge_app("reactpy"),
    "reactpy-backend": reactpy_backend_app,
}


@component
def ExampleCounter() -> Any:
    from authdemo import use_session

    session = use_session()

    async def increment(event: Any) -> None:
        await session.update_value("count", lambda n: (n or 0) + 1)

    count = session.get("count", 0)
    return html.button({"id": "count", "on_click": increment}, f"Clicked {count} times")


@component
def ExampleDashboard() -> Any:
    from authdemo import use_auth

    auth = use_auth()

    async def sign_out(event: Any) -> None:
        await auth.logout()

    return html.main(
        html.h1({"id": "hello"}, f"Hello, {auth.user.username if auth.user else ''}"),
        ExampleCounter(),
        html.button({"id": "logout", "on_click": sign_out}, "Sign out"),
    )


@component
def ExampleRoot() -> Any:
    """The README's 'Use it in your app' example: a small app behind the full auth layer."""
    from authdemo import RequireAuth

    return RequireAuth(ExampleDashboard())


def example_app() -> Sanic[Any, Any]:
    from authdemo import Settings, create_app

    return create_app(Settings.from_env(), root=ExampleRoot, name="bench_example")


FACTORIES["example"] = example_app


@component
def Tiny() -> Any:
    return html.p({"id": "hello"}, "hello")


def tiny_app() -> Sanic[Any, Any]:
    """The bridge with a one-element root: what a held websocket costs by itself."""
    app = bare_app("bench_tiny")

    async def nothing() -> bool:
        return True

    def connect(request: Request) -> ViewConnection:
        return ViewConnection(Tiny(), nothing, lambda: None)

    install_bridge(app, connect)
    return app


FACTORIES["tiny"] = tiny_app


def auth_tiny_app() -> Sanic[Any, Any]:
    """authdemo (the whole auth layer) around the one-element root."""
    from authdemo import Settings, create_app

    return create_app(Settings.from_env(), root=Tiny, name="bench_auth_tiny")


FACTORIES["authtiny"] = auth_tiny_app
