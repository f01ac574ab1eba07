"""The demo app: what ``authdemo run`` serves.

Invariant: it is an app of the library like any other — built only from names that
``authdemo`` exports (``AccountPage``, ``LoginForm``, ``use_auth``, …) and the UI
library's own (``component``, ``html``); a test holds it to that.
"""

from __future__ import annotations

from typing import Any

from ..hooks import use_auth
from ..library import component, html, use_path
from .account import AccountPage
from .admin import AdminPage
from .login import LoginForm
from .notepad import Notepad


@component
def SignedInView() -> Any:
    """The demo's signed-in view: the library's account page, with the notes card."""
    return AccountPage(Notepad(), title="Welcome back")


@component
def DemoApp() -> Any:
    """The default root: what ``authdemo run`` serves (``/admin``: the admin page)."""
    auth = use_auth()
    admin = use_path() == "/admin"
    return html.div(
        {"class_name": "shell"},
        html.header(
            {"class_name": "masthead"},
            html.span({"class_name": "brand"}, "authdemo"),
            html.span(
                {"class_name": "status", "aria_live": "polite"},
                f"Signed in as {auth.user.username}" if auth.user else "Not signed in",
            ),
        ),
        html.main(AdminPage() if admin else SignedInView() if auth.user else LoginForm()),
    )
