"""Accounts by e-mail: the sign-up form and its code, "forgot password", and the address
card of the account page. Built on ``use_auth().email`` only.

Element ids (a public contract): ``form#signup-form`` (``email``, ``username``,
``password``; errors in ``#signup-error``); ``form#verify-email-form`` (``code``;
``#verify-error``, ``button#resend-code``); ``form#reset-request-form`` (``email``),
then ``#reset-sent`` — the same words for every address — and ``form#reset-form``
(``code``, ``password``, and ``second_factor`` once asked for; ``#reset-error``);
``form#email-form`` (``email``) and ``form#email-code-form`` (``code``) in the account
view, errors in ``#email-error``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...domain import AuthError, SecondFactorRequired
from ..hooks import use_auth
from ..library import component, html, use_state
from .forms import field, form_values, posted_form

SENT = "If an account has this address, we have sent it a code. Check your mail."
"""What "forgot password" answers, whatever the address."""


def _error(error_id: str, text: str) -> list[Any]:
    return [html.p({"id": error_id, "class_name": "error", "role": "alert"}, text)] if text else []


def _back(label: str, on_click: Callable[[Any], Any], element_id: str) -> Any:
    return html.button({"id": element_id, "type": "button", "on_click": on_click}, label)


def _code_input(auto_focus: bool = True) -> Any:
    return field(
        "Code from the e-mail",
        id="email-code",
        name="code",
        type="text",
        inputmode="numeric",
        autocomplete="one-time-code",
        spellcheck="false",
        maxlength=20,
        required=True,
        auto_focus=auto_focus,
    )


@component
def SignUpForm(on_sent: Callable[[str], None], on_back: Callable[[], None]) -> Any:
    """E-mail, username and password; a code is mailed (``on_sent(address)``)."""
    auth = use_auth()
    error, set_error = use_state("")
    busy, set_busy = use_state(False)

    async def submit(data: Any) -> None:
        values = form_values(data)
        set_busy(True)
        set_error("")
        try:
            address = await auth.email.sign_up(
                values.get("email", ""), values.get("username", ""), values.get("password", "")
            )
        except AuthError as failure:
            set_error(str(failure))
            set_busy(False)
            return
        on_sent(address)

    return html.form(
        posted_form(
            "signup-form", submit, class_name="card", described_by="signup-error" if error else None
        ),
        html.h1("Sign up"),
        field(
            "E-mail",
            id="signup-email",
            name="email",
            type="email",
            autocomplete="email",
            required=True,
            auto_focus=True,
        ),
        field(
            "Username",
            id="signup-username",
            name="username",
            type="text",
            autocomplete="username",
            autocapitalize="none",
            spellcheck="false",
            required=True,
        ),
        field(
            "Password",
            id="signup-password",
            name="password",
            type="password",
            autocomplete="new-password",
            minlength=8,
            required=True,
        ),
        *_error("signup-error", error),
        html.div(
            {"class_name": "actions"},
            html.button(
                {"type": "submit", "class_name": "primary", "disabled": busy},
                "Signing up…" if busy else "Sign up",
            ),
            _back("Back to sign-in", lambda _: on_back(), "signup-back"),
        ),
    )


@component
def VerifyEmailForm(address: str, on_back: Callable[[], None]) -> Any:
    """The code of a sign-up: verifies ``address`` and signs in; "send a new code"."""
    auth = use_auth()
    error, set_error = use_state("")
    notice, set_notice = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)

    async def submit(data: Any) -> None:
        set_busy(True)
        set_error("")
        try:
            await auth.email.verify(address, form_values(data).get("code", ""))
        except AuthError as failure:
            set_error(str(failure))
            set_attempt(lambda n: n + 1)
            set_busy(False)

    async def resend(_: Any) -> None:
        set_error("")
        try:
            await auth.email.resend_code(address)
        except AuthError as failure:
            set_error(str(failure))
            return
        set_notice("We sent a new code; the earlier one no longer works.")

    return html.form(
        posted_form(
            "verify-email-form",
            submit,
            key=f"verify-{attempt}",
            class_name="card",
            described_by="verify-error" if error else "verify-hint",
        ),
        html.h1("Confirm your e-mail address"),
        html.p(
            {"id": "verify-hint", "class_name": "muted"},
            f"Enter the code we sent to {address}.",
        ),
        _code_input(),
        *_error("verify-error", error),
        *([html.p({"id": "verify-notice", "role": "status"}, notice)] if notice else []),
        html.div(
            {"class_name": "actions"},
            html.button(
                {"type": "submit", "class_name": "primary", "disabled": busy},
                "Checking…" if busy else "Confirm",
            ),
            html.button(
                {"id": "resend-code", "type": "button", "disabled": busy, "on_click": resend},
                "Send a new code",
            ),
            _back("Back to sign-in", lambda _: on_back(), "verify-back"),
        ),
    )


@component
def ResetPasswordForms(on_back: Callable[[], None]) -> Any:
    """ "Forgot password?": the address, then the code and a new password (and, for an
    account with two-factor sign-in, a code from the app). Signs in when done."""
    auth = use_auth()
    address, set_address = use_state("")
    error, set_error = use_state("")
    busy, set_busy = use_state(False)
    needs_second, set_needs_second = use_state(False)
    attempt, set_attempt = use_state(0)

    async def request(data: Any) -> None:
        typed = form_values(data).get("email", "")
        set_busy(True)
        set_error("")
        try:
            await auth.email.request_password_reset(typed)
        except AuthError as failure:
            set_error(str(failure))
            set_busy(False)
            return
        set_address(typed)
        set_busy(False)

    async def reset(data: Any) -> None:
        values = form_values(data)
        set_busy(True)
        set_error("")
        try:
            await auth.email.reset_password(
                address,
                values.get("code", ""),
                values.get("password", ""),
                values.get("second_factor") or None,
            )
        except SecondFactorRequired:
            set_needs_second(True)
            set_error("This account has two-factor sign-in: enter a code from your app too.")
            set_busy(False)
        except AuthError as failure:
            set_error(str(failure))
            set_attempt(lambda n: n + 1)
            set_busy(False)

    if not address:
        return html.form(
            posted_form(
                "reset-request-form",
                request,
                class_name="card",
                described_by="reset-error" if error else None,
            ),
            html.h1("Forgot password"),
            field(
                "E-mail",
                id="reset-email",
                name="email",
                type="email",
                autocomplete="email",
                required=True,
                auto_focus=True,
            ),
            *_error("reset-error", error),
            html.div(
                {"class_name": "actions"},
                html.button(
                    {"type": "submit", "class_name": "primary", "disabled": busy},
                    "Sending…" if busy else "Send a code",
                ),
                _back("Back to sign-in", lambda _: on_back(), "reset-back"),
            ),
        )
    return html.div(
        {"class_name": "card"},
        html.p({"id": "reset-sent", "role": "status"}, SENT),
        html.form(
            posted_form(
                "reset-form",
                reset,
                key=f"reset-{attempt}",
                described_by="reset-error" if error else "reset-sent",
            ),
            html.input(
                {
                    "type": "email",
                    "name": "email",
                    "autocomplete": "username",
                    "value": address,
                    "read_only": True,
                    "hidden": True,
                }
            ),
            _code_input(),
            field(
                "New password",
                id="reset-password",
                name="password",
                type="password",
                autocomplete="new-password",
                minlength=8,
                required=True,
            ),
            *(
                [
                    field(
                        "Code from your authenticator app (or a recovery code)",
                        id="reset-second-factor",
                        name="second_factor",
                        type="text",
                        autocomplete="one-time-code",
                        spellcheck="false",
                        maxlength=20,
                        required=True,
                    )
                ]
                if needs_second
                else []
            ),
            *_error("reset-error", error),
            html.div(
                {"class_name": "actions"},
                html.button(
                    {"type": "submit", "class_name": "primary", "disabled": busy},
                    "Setting…" if busy else "Set the new password",
                ),
                _back("Back to sign-in", lambda _: on_back(), "reset-back"),
            ),
        ),
    )


@component
def EmailSettings() -> Any:
    """The account's address (``#email-current``), and changing it: ``form#email-form``
    sends a code to the new address, ``form#email-code-form`` confirms it. Renders
    nothing while signed out or when the server cannot send mail."""
    auth = use_auth()
    pending, set_pending = use_state("")
    error, set_error = use_state("")
    notice, set_notice = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)

    async def change(data: Any) -> None:
        set_busy(True)
        set_error("")
        set_notice("")
        try:
            address = await auth.email.change(form_values(data).get("email", ""))
        except AuthError as failure:
            set_error(str(failure))
            set_busy(False)
            return
        set_pending(address)
        set_busy(False)

    async def confirm(data: Any) -> None:
        set_busy(True)
        set_error("")
        try:
            user = await auth.email.confirm_change(form_values(data).get("code", ""))
        except AuthError as failure:
            set_error(str(failure))
            set_attempt(lambda n: n + 1)
            set_busy(False)
            return
        set_pending("")
        set_notice(f"Your address is now {user.email}.")
        set_busy(False)

    if auth.user is None or not auth.email.available:
        return html._()
    current = auth.user.email
    return html.section(
        {"id": "email-settings", "class_name": "card"},
        html.h2("E-mail address"),
        html.p(
            {"id": "email-current"},
            f"Your address: {current}." if current else "This account has no e-mail address.",
        ),
        *([html.p({"id": "email-notice", "role": "status"}, notice)] if notice else []),
        (
            html.form(
                posted_form("email-code-form", confirm, key=f"email-code-{attempt}"),
                html.p({"id": "email-sent", "role": "status"}, f"We sent a code to {pending}."),
                _code_input(),
                html.div(
                    {"class_name": "actions"},
                    html.button(
                        {"type": "submit", "class_name": "primary", "disabled": busy},
                        "Confirm the new address",
                    ),
                    _back("Cancel", lambda _: set_pending(""), "email-cancel"),
                ),
            )
            if pending
            else html.form(
                posted_form("email-form", change),
                field(
                    "New address",
                    id="email-new",
                    name="email",
                    type="email",
                    autocomplete="email",
                    required=True,
                ),
                html.button(
                    {"type": "submit", "disabled": busy},
                    "Sending…" if busy else "Send a code to it",
                ),
            )
        ),
        *_error("email-error", error),
    )
