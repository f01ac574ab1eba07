"""The demo app: what ``authdemo run`` serves."""

from __future__ import annotations

from typing import Any

from ...domain import (
    AuthError,
)
from ..hooks import use_auth
from ..library import component, html, use_state
from .login import LoginForm
from .notepad import Notepad
from .password import ChangePasswordForm
from .sessions import SessionList
from .two_factor import TwoFactorCard


@component
def SignedInView() -> Any:
    auth = use_auth()
    busy, set_busy = use_state(False)
    notice, set_notice = use_state("")
    problem, set_problem = use_state("")
    refresh, set_refresh = use_state(0)
    assert auth.user is not None

    def reload_sessions() -> None:
        set_refresh(lambda n: n + 1)

    async def sign_out(_: Any) -> None:
        set_busy(True)
        set_problem("")
        try:
            await auth.logout()
        except AuthError as failure:  # e.g. the database is away: still signed in, say so
            set_problem(str(failure))
        finally:
            set_busy(False)

    async def sign_out_others(_: Any) -> None:
        set_busy(True)
        set_problem("")
        set_notice("")
        try:
            ended = await auth.logout_others()
            set_notice(
                f"Signed out {ended} other session{'s' if ended != 1 else ''}."
                if ended
                else "There were no other sessions."
            )
            reload_sessions()
        except AuthError as failure:
            set_problem(str(failure))
        finally:
            set_busy(False)

    return html._(
        html.section(
            {"class_name": "card wide"},
            html.h1("Welcome back"),
            html.p({"id": "greeting"}, "Signed in as ", html.strong(auth.user.username), "."),
            html.div(
                {"class_name": "actions"},
                html.button(
                    {"id": "logout", "type": "button", "disabled": busy, "on_click": sign_out},
                    "Sign out",
                ),
                html.button(
                    {
                        "id": "logout-others",
                        "type": "button",
                        "disabled": busy,
                        "on_click": sign_out_others,
                    },
                    "Sign out other sessions",
                ),
            ),
            *(
                [
                    html.p(
                        {"id": "cookie-warning", "class_name": "error", "role": "alert"},
                        "This browser did not accept the session cookie. You are signed in "
                        "in this tab only: reloading the page or opening a new tab will ask "
                        "for your password again. Check that cookies are allowed for this site.",
                    )
                ]
                if auth.cookie_refused
                else []
            ),
            *(
                [html.p({"id": "logout-others-done", "class_name": "ok", "role": "status"}, notice)]
                if notice
                else []
            ),
            *(
                [html.p({"id": "account-error", "class_name": "error", "role": "alert"}, problem)]
                if problem
                else []
            ),
        ),
        html.section(
            {"class_name": "card wide"},
            html.h2("Your sessions"),
            SessionList(refresh),
        ),
        Notepad(),
        ChangePasswordForm(reload_sessions),
        TwoFactorCard(reload_sessions),
    )


@component
def DemoApp() -> Any:
    """The default root: what ``authdemo run`` serves."""
    auth = use_auth()
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
        html.main(SignedInView() if auth.user else LoginForm()),
    )
