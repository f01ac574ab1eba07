"""Two-factor sign-in settings of the signed-in user."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, cast

from ...domain import (
    AuthError,
    NotSignedIn,
    StorageUnavailable,
)
from ...service import Enrolment, MfaStatus
from ..hooks import use_auth, use_live_session
from ..library import component, event, html, use_effect, use_state
from ..qr import qr_data_uri
from .forms import account_field, code_field, field, form_values


@component
def TwoFactorCard(on_changed: Callable[[], None]) -> Any:
    """Two-factor sign-in for the signed-in user: turn it on (password, then a QR code
    and a first code), see how many recovery codes are left, turn it off."""
    auth = use_auth()
    live = use_live_session()
    status, set_status = use_state(cast(MfaStatus | None, None))
    enrolment, set_enrolment = use_state(cast(Enrolment | None, None))
    codes, set_codes = use_state(cast(list[str], []))
    turned_off, set_turned_off = use_state(False)
    error, set_error = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)
    reload, set_reload = use_state(0)

    @use_effect(dependencies=[reload, auth.session.id if auth.session else None])
    async def load() -> None:
        if auth.user is not None:
            # Unavailable: shown again on the next change; signed out: on its way out.
            with contextlib.suppress(StorageUnavailable, NotSignedIn):
                set_status(await live.mfa_status())

    async def run(action: Callable[[], Any]) -> None:
        set_busy(True)
        set_error("")
        try:
            await action()
        except AuthError as failure:
            set_error(str(failure))
        finally:
            set_busy(False)
            set_attempt(lambda n: n + 1)  # empty fields either way

    async def start(data: Any) -> None:
        async def action() -> None:
            set_turned_off(False)
            set_enrolment(await live.start_mfa_enrolment(form_values(data).get("password", "")))

        await run(action)

    async def confirm(data: Any) -> None:
        async def action() -> None:
            shown = await live.confirm_mfa_enrolment(form_values(data).get("code", ""))
            set_enrolment(None)
            set_codes(shown)
            set_reload(lambda n: n + 1)
            on_changed()

        await run(action)

    async def cancel(_: Any) -> None:
        async def action() -> None:
            set_enrolment(None)
            await live.cancel_mfa_enrolment()

        await run(action)

    async def disable(data: Any) -> None:
        async def action() -> None:
            values = form_values(data)
            await live.disable_mfa(values.get("password", ""), values.get("code", ""))
            set_turned_off(True)
            set_reload(lambda n: n + 1)
            on_changed()

        await run(action)

    def done(_: Any) -> None:
        set_codes([])

    problem = (
        [html.p({"id": "mfa-settings-error", "class_name": "error", "role": "alert"}, error)]
        if error
        else []
    )
    if codes:
        body: list[Any] = [
            html.p(
                {"id": "mfa-on", "class_name": "ok", "role": "status"},
                "Two-factor sign-in is on. Your other sessions have been signed out.",
            ),
            html.p(
                "Keep these recovery codes somewhere safe. Each works once, in place of a "
                "code, if you lose your phone. They are shown only now."
            ),
            html.ul(
                {"id": "mfa-recovery-codes", "class_name": "codes"},
                [html.li({"key": c}, html.code(c)) for c in codes],
            ),
            html.button({"id": "mfa-recovery-done", "type": "button", "on_click": done}, "Done"),
        ]
    elif enrolment is not None:
        body = [
            html.p("Scan this with your authenticator app, or type the key in by hand:"),
            html.img(
                {
                    "id": "mfa-qr",
                    "src": qr_data_uri(enrolment.uri),
                    "alt": "QR code of your two-factor key",
                    "width": 164,
                    "height": 164,
                }
            ),
            html.p(html.code({"id": "mfa-secret"}, enrolment.grouped_secret)),
            html.form(
                {
                    "key": f"mfa-confirm-{attempt}",
                    "id": "mfa-confirm",
                    "method": "post",
                    "action": "#",
                    "on_submit": event(confirm, prevent_default=True),
                },
                code_field("Code from the app", "mfa-confirm-code"),
                *problem,
                html.div(
                    {"class_name": "actions"},
                    html.button(
                        {"type": "submit", "class_name": "primary", "disabled": busy},
                        "Turn on",
                    ),
                    html.button(
                        {"id": "mfa-cancel", "type": "button", "on_click": cancel}, "Cancel"
                    ),
                ),
            ),
        ]
    elif status is not None and status.enabled:
        left = status.recovery_codes_left
        body = [
            html.p({"id": "mfa-status"}, "Two-factor sign-in is on."),
            *(
                [
                    html.p(
                        {"id": "mfa-recovery-used", "class_name": "error", "role": "status"},
                        "You signed in with a recovery code; it cannot be used again. "
                        "If you lost your phone, turn two-factor sign-in off and on again "
                        "with the new one.",
                    )
                ]
                if auth.recovery_codes_left is not None
                else []
            ),
            html.p(
                {"id": "mfa-recovery-left", "class_name": "muted" if left > 2 else "error"},
                f"{left} recovery code{'s' if left != 1 else ''} left.",
            ),
            html.form(
                {
                    "key": f"mfa-disable-form-{attempt}",
                    "id": "mfa-disable-form",
                    "method": "post",
                    "action": "#",
                    "on_submit": event(disable, prevent_default=True),
                },
                account_field(auth.user),
                field(
                    "Password",
                    id="mfa-disable-password",
                    name="password",
                    type="password",
                    autocomplete="current-password",
                    required=True,
                ),
                code_field("Code", "mfa-disable-code", auto_focus=False),
                *problem,
                html.button(
                    {"id": "mfa-disable", "type": "submit", "disabled": busy},
                    "Turn off two-factor sign-in",
                ),
            ),
        ]
    elif status is not None:
        body = [
            *(
                [
                    html.p(
                        {"id": "mfa-off", "class_name": "ok", "role": "status"},
                        "Two-factor sign-in turned off. Your other sessions have been signed out.",
                    )
                ]
                if turned_off
                else []
            ),
            html.p(
                {"id": "mfa-status"},
                "Two-factor sign-in is off. With it on, signing in also asks for a code "
                "from an authenticator app on your phone.",
            ),
            html.form(
                {
                    "key": f"mfa-start-{attempt}",
                    "id": "mfa-start",
                    "method": "post",
                    "action": "#",
                    "on_submit": event(start, prevent_default=True),
                },
                account_field(auth.user),
                field(
                    "Password",
                    id="mfa-password",
                    name="password",
                    type="password",
                    autocomplete="current-password",
                    required=True,
                ),
                *problem,
                html.button(
                    {
                        "id": "mfa-enable",
                        "type": "submit",
                        "class_name": "primary",
                        "disabled": busy,
                    },
                    "Set up two-factor sign-in",
                ),
            ),
        ]
    else:
        body = [html.p({"class_name": "muted"}, "Loading…")]
    return html.section(
        {"id": "mfa", "class_name": "card wide"}, html.h2("Two-factor sign-in"), *body
    )
