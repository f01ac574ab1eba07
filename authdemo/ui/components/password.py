"""``ChangePassword``: the change-password card of the signed-in user.

Invariant: it acts only through ``use_auth().change_password`` — the current password
checked (throttled like a sign-in), every other session of the user and every other
view of this one ended, this view kept under a new cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...domain import (
    PASSWORD_MIN,
    AuthError,
    InvalidCredentials,
    Throttled,
)
from ..hooks import use_auth
from ..library import component, html, use_state
from .forms import account_field, field, form_values, posted_form

WRONG_CURRENT = "The current password is not right."


@component
def ChangePassword(on_changed: Callable[[], None] | None = None, class_name: str = "") -> Any:
    """``form#change-password``: the current password and a new one. ``on_changed`` is
    called after a change; ``class_name`` is added to the card's classes
    (``card wide authdemo-change-password``). Renders nothing while signed out."""
    auth = use_auth()
    error, set_error = use_state("")
    ok, set_ok = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)

    async def submit(data: Any) -> None:
        values = form_values(data)
        set_busy(True)
        set_error("")
        set_ok("")
        try:
            await auth.change_password(
                values.get("current_password", ""), values.get("new_password", "")
            )
        except Throttled as failure:
            set_error(str(failure))
        except InvalidCredentials:  # this form has no username: name what was wrong
            set_error(WRONG_CURRENT)
        except AuthError as failure:
            set_error(str(failure))
        else:
            set_ok("Password changed. Your other sessions have been signed out.")
            if on_changed is not None:
                on_changed()
        finally:
            set_busy(False)
            set_attempt(lambda n: n + 1)  # empty fields either way

    if auth.user is None:
        return html._()
    return html.form(
        posted_form(
            "change-password",
            submit,
            key=f"change-password-{attempt}",
            class_name=f"card wide authdemo-change-password {class_name}".strip(),
        ),
        html.h2("Change password"),
        account_field(auth.user),
        field(
            "Current password",
            id="current-password",
            name="current_password",
            type="password",
            autocomplete="current-password",
            required=True,
        ),
        field(
            "New password",
            id="new-password",
            name="new_password",
            type="password",
            autocomplete="new-password",
            minlength=PASSWORD_MIN,
            required=True,
            aria_describedby="new-password-hint",
        ),
        html.p(
            {"id": "new-password-hint", "class_name": "muted"},
            f"At least {PASSWORD_MIN} characters. Other sessions will be signed out.",
        ),
        *(
            [html.p({"id": "change-password-error", "class_name": "error", "role": "alert"}, error)]
            if error
            else []
        ),
        *(
            [html.p({"id": "change-password-ok", "class_name": "ok", "role": "status"}, ok)]
            if ok
            else []
        ),
        html.button(
            {"type": "submit", "class_name": "primary", "disabled": busy},
            "Changing…" if busy else "Change password",
        ),
    )
