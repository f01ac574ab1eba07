"""``TwoFactorSettings``: two-factor sign-in of the signed-in user — turn it on (the
password, then a QR code, the key and a first code; recovery codes shown once), new
recovery codes, turn it off.

Invariant: it acts only through ``use_auth().two_factor``; recovery codes are shown
once, from the answer that made them, and never read back (only digests are kept).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, cast

from ...domain import (
    AuthError,
    CodeThrottled,
    InvalidCode,
    NotSignedIn,
    StorageUnavailable,
)
from ...service import Enrolment, MfaStatus
from ..hooks import use_auth
from ..library import component, html, use_effect, use_state
from ..qr import qr_data_uri
from .forms import account_field, code_field, field, form_values, posted_form

TURNED_ON = "Two-factor sign-in is on. Your other sessions have been signed out."
RENEWED = "New recovery codes made. The old ones no longer work."
WRONG_FIRST_CODE = "That code is not right. Enter the 6-digit code your app shows now."


@component
def TwoFactorSettings(on_changed: Callable[[], None] | None = None, class_name: str = "") -> Any:
    """``section#mfa``: ``button#mfa-enable`` (after the password) shows ``img#mfa-qr`` and
    ``#mfa-secret`` and asks for a first code (``form#mfa-confirm``); then the recovery
    codes (``#mfa-recovery-codes li``). Once on: how many recovery codes are left, new
    ones (``button#mfa-recovery-renew``) and turning it off (``button#mfa-disable``).
    ``on_changed`` is called after it was turned on or off; ``class_name`` is added to
    the card's classes (``card wide authdemo-two-factor``). Renders nothing while
    signed out."""
    auth = use_auth()
    two_factor = auth.two_factor
    status, set_status = use_state(cast(MfaStatus | None, None))
    enrolment, set_enrolment = use_state(cast(Enrolment | None, None))
    codes, set_codes = use_state(cast(tuple[str, list[str]], ("", [])))
    turned_off, set_turned_off = use_state(False)
    error, set_error = use_state(("", ""))
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)
    reload, set_reload = use_state(0)

    @use_effect(dependencies=[reload, auth.session.id if auth.session else None])
    async def load() -> None:
        if auth.user is not None:
            # Unavailable: shown again on the next change; signed out: on its way out.
            with contextlib.suppress(StorageUnavailable, NotSignedIn):
                set_status(await two_factor.status())

    async def run(where: str, action: Callable[[], Any]) -> None:
        set_busy(True)
        set_error(("", ""))
        try:
            await action()
        except AuthError as failure:
            set_error((where, str(failure)))
        finally:
            set_busy(False)
            set_attempt(lambda n: n + 1)  # empty fields either way

    def changed() -> None:
        set_reload(lambda n: n + 1)
        if on_changed is not None:
            on_changed()

    async def start(data: Any) -> None:
        async def action() -> None:
            set_turned_off(False)
            set_enrolment(await two_factor.start(form_values(data).get("password", "")))

        await run("settings", action)

    async def confirm(data: Any) -> None:
        async def action() -> None:
            try:
                shown = await two_factor.confirm(form_values(data).get("code", ""))
            except InvalidCode as wrong:
                if isinstance(wrong, CodeThrottled):
                    raise
                # No recovery code exists yet: the generic message would offer one.
                raise AuthError(WRONG_FIRST_CODE) from None
            set_enrolment(None)
            set_codes((TURNED_ON, shown))
            changed()

        await run("settings", action)

    async def cancel(_: Any) -> None:
        async def action() -> None:
            set_enrolment(None)
            await two_factor.cancel()

        await run("settings", action)

    async def renew(data: Any) -> None:
        async def action() -> None:
            values = form_values(data)
            shown = await two_factor.regenerate_recovery_codes(
                values.get("password", ""), values.get("code", "")
            )
            set_codes((RENEWED, shown))
            set_reload(lambda n: n + 1)

        await run("renew", action)

    async def disable(data: Any) -> None:
        async def action() -> None:
            values = form_values(data)
            await two_factor.disable(values.get("password", ""), values.get("code", ""))
            set_turned_off(True)
            changed()

        await run("settings", action)

    def done(_: Any) -> None:
        set_codes(("", []))

    def problem(where: str, element_id: str) -> list[Any]:
        if error[0] != where:
            return []
        return [html.p({"id": element_id, "class_name": "error", "role": "alert"}, error[1])]

    if auth.user is None:
        return html._()
    said, shown = codes
    if shown:
        body: list[Any] = [
            html.p(
                {
                    "id": "mfa-on" if said == TURNED_ON else "mfa-renewed",
                    "class_name": "ok",
                    "role": "status",
                },
                said,
            ),
            html.p(
                "Keep these recovery codes somewhere safe. Each works once, in place of a "
                "code, if you lose your phone. They are shown only now."
            ),
            html.ul(
                {"id": "mfa-recovery-codes", "class_name": "codes"},
                [html.li({"key": c}, html.code(c)) for c in shown],
            ),
            html.button({"id": "mfa-recovery-done", "type": "button", "on_click": done}, "Done"),
        ]
    elif enrolment is not None:
        body = [
            # An id of its own: the client patches the paragraph that stood here
            # (``#mfa-status``), and a removed id would stay behind as id="".
            html.p(
                {"id": "mfa-scan-hint"},
                "Scan this with your authenticator app, or type the key in by hand:",
            ),
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
                posted_form("mfa-confirm", confirm, key=f"mfa-confirm-{attempt}"),
                code_field("Code from the app", "mfa-confirm-code"),
                *problem("settings", "mfa-settings-error"),
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
            html.p(
                {"id": "mfa-recovery-left", "class_name": "muted" if left > 2 else "error"},
                f"{left} recovery code{'s' if left != 1 else ''} left.",
            ),
            html.form(
                posted_form(
                    "mfa-recovery-renew-form", renew, key=f"mfa-recovery-renew-form-{attempt}"
                ),
                html.h3("New recovery codes"),
                account_field(auth.user),
                field(
                    "Password",
                    id="mfa-renew-password",
                    name="password",
                    type="password",
                    autocomplete="current-password",
                    required=True,
                ),
                code_field("Code", "mfa-renew-code", auto_focus=False),
                *problem("renew", "mfa-renew-error"),
                html.button(
                    {"id": "mfa-recovery-renew", "type": "submit", "disabled": busy},
                    "Make new recovery codes",
                ),
            ),
            html.form(
                posted_form("mfa-disable-form", disable, key=f"mfa-disable-form-{attempt}"),
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
                *problem("settings", "mfa-settings-error"),
                html.button(
                    {"id": "mfa-disable", "type": "submit", "disabled": busy},
                    "Turn off two-factor sign-in",
                ),
            ),
        ]
    elif status is not None and not status.available:
        body = [
            html.p(
                {"id": "mfa-unavailable", "class_name": "muted"},
                "Two-factor sign-in is not available on this server.",
            )
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
                posted_form("mfa-start", start, key=f"mfa-start-{attempt}"),
                account_field(auth.user),
                field(
                    "Password",
                    id="mfa-password",
                    name="password",
                    type="password",
                    autocomplete="current-password",
                    required=True,
                ),
                *problem("settings", "mfa-settings-error"),
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
        {"id": "mfa", "class_name": f"card wide authdemo-two-factor {class_name}".strip()},
        html.h2("Two-factor sign-in"),
        *body,
    )
