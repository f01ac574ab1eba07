"""``AccountPage``: the signed-in user's account in one page — who is signed in and
"Sign out", the session list, the change-password card and two-factor settings.

Invariant: it is composed only of public parts (``SessionList``, ``ChangePassword``,
``TwoFactorSettings``, ``use_auth``), so an app that draws its own page from them
loses nothing this one has.
"""

from __future__ import annotations

from typing import Any

from ...domain import AuthError
from ..hooks import use_auth
from ..library import component, html, use_state
from .email import EmailSettings
from .password import ChangePassword
from .sessions import SessionList
from .two_factor import TwoFactorSettings


def recovery_code_notice(left: int | None) -> list[Any]:
    """``#mfa-recovery-used``, at the top of the page: this sign-in spent a recovery code
    (``left``: how many remain; None: it did not)."""
    if left is None:
        return []
    return [
        html.p(
            {"id": "mfa-recovery-used", "class_name": "error", "role": "status"},
            f"You signed in with a recovery code; it cannot be used again, and "
            f"{left} {'is' if left == 1 else 'are'} left. If you lost your phone, make new "
            "recovery codes below, or turn two-factor sign-in off and on again with the "
            "new one.",
        )
    ]


@component
def AccountPage(children: Any = None, title: str = "Your account", class_name: str = "") -> Any:
    """The account of the signed-in user: a heading (``title``), ``#greeting``, the
    "Sign out" button (``button#logout``), after a sign-in with a recovery code how many
    are left (``#mfa-recovery-used``), a warning when the browser refused the session
    cookie (``#cookie-warning``), then ``SessionList``, ``children`` (the app's
    own cards, if any), ``ChangePassword``, ``EmailSettings`` (when the server can send
    mail) and ``TwoFactorSettings``. Renders nothing
    while signed out (put it inside ``RequireAuth``). ``class_name`` is added to the
    page's classes (``authdemo-account``)."""
    auth = use_auth()
    busy, set_busy = use_state(False)
    problem, set_problem = use_state("")

    async def sign_out(_: Any) -> None:
        set_busy(True)
        set_problem("")
        try:
            await auth.logout()
        except AuthError as failure:  # e.g. the database is away: still signed in, say so
            set_problem(str(failure))
        finally:
            set_busy(False)

    if auth.user is None:
        return html._()
    return html.div(
        {"id": "account", "class_name": f"authdemo-account {class_name}".strip()},
        html.section(
            {"class_name": "card wide"},
            html.h1(title),
            html.p({"id": "greeting"}, "Signed in as ", html.strong(auth.user.username), "."),
            *recovery_code_notice(auth.recovery_codes_left),
            html.div(
                {"class_name": "actions"},
                html.button(
                    {"id": "logout", "type": "button", "disabled": busy, "on_click": sign_out},
                    "Sign out",
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
                [html.p({"id": "account-error", "class_name": "error", "role": "alert"}, problem)]
                if problem
                else []
            ),
        ),
        SessionList(),
        *([children] if children is not None else []),
        ChangePassword(),
        EmailSettings(),
        TwoFactorSettings(),
    )
