"""The reference apps the benchmark compares authdemo against, on the same stack.

- ``bare``: Sanic serving the same index HTML, no middleware: the ceiling of this stack.
- ``inmemory``: the same plus the original example's session middleware (a dict of
  sessions, a cookie set on the first response).
- ``bridge``: authdemo's own IDOM bridge serving a component that does no auth: the
  ceiling for websocket figures.
"""

from __future__ import annotations

import secrets
from typing import Any

from idom import component, html
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


@component
def Greeting() -> Any:
    """About what authdemo's signed-in view renders, without any auth."""
    return html.div(
        {"class_name": "shell"},
        html.header(
            {"class_name": "masthead"},
            html.span({"class_name": "brand"}, "authdemo"),
            html.span({"class_name": "status"}, "Signed in as bench"),
        ),
        html.main(
            html.section(
                {"class_name": "card"},
                html.h1("Welcome back"),
                html.p({"id": "greeting"}, "Signed in as ", html.strong("bench"), "."),
                html.button(
                    {"id": "logout", "type": "button", "on_click": lambda e: None}, "Sign out"
                ),
            )
        ),
    )


def bridge_app() -> Sanic[Any, Any]:
    app = bare_app("bench_bridge")

    async def nothing() -> bool:
        return True

    def connect(request: Request) -> ViewConnection:
        return ViewConnection(Greeting(), nothing, lambda: None)

    install_bridge(app, connect)
    return app


FACTORIES = {"bare": bare_app, "inmemory": inmemory_app, "bridge": bridge_app}
