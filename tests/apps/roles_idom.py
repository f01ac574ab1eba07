"""An IDOM app of authdemo's permissions, written with public names only: a notes
card whose button is guarded by ``@requires("notes:write")`` (always shown: the
server decides), and ``AdminPage`` at ``/admin`` with a 3-second recent-sign-in
window. Serve it with ``sanic tests.apps.roles_idom:make_app --factory``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from idom import component, html, use_location, use_state
from idom.types import Component, VdomDict
from sanic import Sanic

from authdemo.idom import (
    AdminPage,
    Permission,
    RequireAuth,
    create_app,
    requires,
    use_auth,
    use_permission,
)

PERMISSIONS = [Permission("notes:write", "Write notes")]
REAUTH_AFTER = timedelta(seconds=3)


@component
def Notes() -> VdomDict:
    auth = use_auth()
    can_write = use_permission("notes:write")
    written, set_written = use_state(0)

    @requires("notes:write")
    async def write(_event: Any) -> None:
        set_written(written + 1)

    return html.div(
        html.p({"id": "greeting"}, auth.user.username if auth.user else ""),
        html.p({"id": "can-write"}, "yes" if can_write else "no"),
        html.button({"id": "write", "on_click": write}, "Write a note"),
        html.p({"id": "written"}, str(written)),
    )


@component
def Root() -> Component:
    if use_location().pathname == "/admin":
        return AdminPage(reauth_after=REAUTH_AFTER)
    return RequireAuth(Notes())


def make_app() -> Sanic[Any, Any]:
    return create_app(root=Root, permissions=PERMISSIONS)
