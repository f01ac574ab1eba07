"""A ReactPy app of authdemo's account components, written with public names only (no
underscore names, no authdemo submodule but ``authdemo.reactpy``): ``AccountPage`` and
each account component alone, behind ``RequireAuth``. Serve it with
``sanic tests.apps.account_reactpy:make_app --factory``; ``mypy --strict`` checks it."""

from __future__ import annotations

from typing import Any

from reactpy import component, html, use_state
from reactpy.types import Component, VdomDict
from sanic import Sanic

from authdemo.reactpy import (
    AccountPage,
    ChangePassword,
    RequireAuth,
    SessionList,
    TwoFactorSettings,
    create_app,
    use_auth,
)

VIEWS = ("page", "sessions", "password", "two-factor")


def shown(view: str) -> Component:
    if view == "sessions":
        return SessionList()
    if view == "password":
        return ChangePassword()
    if view == "two-factor":
        return TwoFactorSettings()
    return AccountPage(html.p({"id": "app-card"}, "The app's own card."))


@component
def Root() -> VdomDict:
    auth = use_auth()
    view, set_view = use_state("page")

    def switch(to: str) -> VdomDict:
        return html.button({"id": f"show-{to}", "on_click": lambda _: set_view(to)}, to)

    return html.main(
        html.nav(*[switch(v) for v in VIEWS]),
        html.p({"id": "who"}, auth.user.username if auth.user else "nobody"),
        RequireAuth(html.div({"id": f"view-{view}"}, shown(view))),
    )


def make_app() -> Sanic[Any, Any]:
    return create_app(root=Root)
