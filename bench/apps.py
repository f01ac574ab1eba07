"""The reference apps the benchmark compares authdemo against, on the same stack.

- ``bare``: Sanic serving the same index HTML, no middleware: the ceiling of this stack.
- ``inmemory``: the same plus the original example's session middleware (a dict of
  sessions, a cookie set on the first response).
- ``bridge``: authdemo's own IDOM bridge serving the demo's signed-in view fed with
  constant values (no auth at all): the ceiling for websocket figures.
"""

from __future__ import annotations

import secrets
from typing import Any

from idom import component
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse
from sanic.response import html as html_response

from authdemo.web.bridge import ViewConnection, index_html, install_bridge


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
    from authdemo.web.connection import AuthState
    from authdemo.web.hooks import Auth

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

    async def no_sessions() -> list[Any]:
        return [session]

    auth = Auth(user, session, nothing, nothing, nothing, no_sessions, nothing)
    state = AuthState(user, session, None, 1)

    class NoLiveSession:
        async def update_data(self, *_: Any) -> None:
            return None

    return auth, state, NoLiveSession()


@component
def UnauthenticatedDemo() -> Any:
    """authdemo's own signed-in demo view, fed constant values instead of auth: the same
    components, the same first render, none of the authentication."""
    from authdemo.web.components import DemoApp
    from authdemo.web.hooks import AuthContext, AuthStateContext, LiveSessionContext

    auth, state, live = _static_auth()
    return LiveSessionContext(
        AuthStateContext(AuthContext(DemoApp(), value=auth), value=state), value=live
    )


def bridge_app() -> Sanic[Any, Any]:
    app = bare_app("bench_bridge")

    async def nothing() -> bool:
        return True

    def connect(request: Request) -> ViewConnection:
        return ViewConnection(UnauthenticatedDemo(), nothing, lambda: None)

    install_bridge(app, connect)
    return app


FACTORIES = {"bare": bare_app, "inmemory": inmemory_app, "bridge": bridge_app}
