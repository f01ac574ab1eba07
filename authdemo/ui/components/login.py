"""The sign-in form and its second step (the code). Nothing is signed in until the
service says so; the form never shows more than "Signing in…" before the cookie is held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sanic import Request

from ...domain import (
    AuthError,
    CodeThrottled,
    SecondFactorRequired,
    SecondStepExpired,
)
from ...http.insecure import insecure_origin
from ...mail import EmailNotVerified
from ..hooks import use_auth
from ..library import ConnectionContext, component, html, use_context, use_state
from .email import ResetPasswordForms, SignUpForm, VerifyEmailForm
from .forms import code_field, field, form_values, posted_form


def use_insecure_origin() -> str | None:
    """The host name when this view came over plain http to a host other than localhost,
    where the browser drops the Secure session cookie (see ``insecure``); else None."""
    connection = use_context(ConnectionContext)
    request = getattr(connection, "carrier", None)
    if not isinstance(request, Request):
        return None
    return insecure_origin(request, request.app.ctx.trusted)


@component
def LoginForm() -> Any:
    auth = use_auth()
    insecure_host = use_insecure_origin()
    error, set_error = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)
    typed, set_typed = use_state("")
    # Accounts by e-mail: "signin", "signup", "verify" (the address in ``verifying``), "reset".
    mode, set_mode = use_state("signin")
    verifying, set_verifying = use_state("")

    def back_to_sign_in() -> None:
        set_mode("signin")
        set_busy(False)

    def code_sent(address: str) -> None:
        set_verifying(address)
        set_mode("verify")

    async def submit(data: Any) -> None:
        values = form_values(data)
        set_busy(True)
        set_error("")
        try:
            await auth.login(values.get("username", ""), values.get("password", ""))
        except EmailNotVerified as unverified:  # a right password: the code step again
            code_sent(unverified.email or "")
            set_typed(values.get("username", ""))
            set_busy(False)
        except SecondFactorRequired:
            set_typed(values.get("username", ""))
            set_busy(False)  # the view now asks for the code (auth.pending_second_factor)
        except AuthError as failure:
            set_error(str(failure))
            # A fresh form: the password field empties, the username stays as typed.
            # (Re-creating only the password field leaves Chromium's password manager
            # holding the old element; it then logs that the form has no username.)
            set_typed(values.get("username", ""))
            set_attempt(lambda n: n + 1)
            set_busy(False)

    if auth.pending_second_factor is not None:
        return SecondStepForm(set_error)
    if mode == "signup":
        return SignUpForm(code_sent, back_to_sign_in)
    if mode == "verify":
        return VerifyEmailForm(verifying, back_to_sign_in)
    if mode == "reset":
        return ResetPasswordForms(back_to_sign_in)

    return html.form(
        posted_form(
            "login-form",
            submit,
            key=f"login-form-{attempt}",
            class_name="card",
            described_by="login-error" if error else None,
        ),
        html.h1("Sign in"),
        *(
            [
                html.p(
                    {"id": "signed-out-reason", "class_name": "notice", "role": "status"},
                    auth.signed_out_message,
                )
            ]
            if auth.signed_out_message
            else []
        ),
        *(
            [
                html.p(
                    {"id": "insecure-origin-notice", "class_name": "error", "role": "alert"},
                    f"Sign-in needs https on this address (or open it as localhost): this "
                    f"page came over plain http from {insecure_host}, where your browser "
                    "keeps no session cookie.",
                )
            ]
            if insecure_host
            else []
        ),
        field(
            "Username",
            id="username",
            name="username",
            type="text",
            autocomplete="username",
            autocapitalize="none",
            spellcheck="false",
            required=True,
            auto_focus=attempt == 0,
            default_value=typed,
        ),
        html.div(
            {"class_name": "field"},
            html.label({"html_for": "password"}, "Password"),
            html.input(
                {
                    "id": "password",
                    "name": "password",
                    "type": "password",
                    "autocomplete": "current-password",
                    "required": True,
                    "auto_focus": attempt > 0,
                }
            ),
        ),
        *(
            [html.p({"id": "login-error", "class_name": "error", "role": "alert"}, error)]
            if error
            else []
        ),
        *(
            # The password checked out; the browser is fetching its session cookie.
            [html.p({"id": "signing-in", "class_name": "muted", "role": "status"}, "Signing in…")]
            if auth.pending is not None
            else []
        ),
        html.button(
            {
                "type": "submit",
                "class_name": "primary",
                # Over plain http to another host the browser keeps no cookie: a sign-in
                # could only fail, so none is offered (the notice above says why).
                "disabled": busy or bool(auth.pending) or bool(insecure_host),
            },
            "Signing in…" if busy or auth.pending else "Sign in",
        ),
        *(
            [
                html.div(
                    {"class_name": "actions"},
                    *(
                        [
                            html.button(
                                {
                                    "id": "forgot-password",
                                    "type": "button",
                                    "on_click": lambda _: set_mode("reset"),
                                },
                                "Forgot password?",
                            )
                        ]
                        if auth.email.available
                        else []
                    ),
                    *(
                        [
                            html.button(
                                {
                                    "id": "show-signup",
                                    "type": "button",
                                    "on_click": lambda _: set_mode("signup"),
                                },
                                "Sign up",
                            )
                        ]
                        if auth.email.signup_open
                        else []
                    ),
                )
            ]
            if auth.email.available
            else []
        ),
    )


@component
def SecondStepForm(on_back_error: Callable[[str], None]) -> Any:
    """The second step of a sign-in: the code from the authenticator app, or a recovery
    code. Nothing is signed in until it is accepted."""
    auth = use_auth()
    error, set_error = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)

    async def submit(data: Any) -> None:
        set_busy(True)
        try:
            await auth.verify_code(form_values(data).get("code", ""))
        except (CodeThrottled, SecondStepExpired) as failure:
            on_back_error(str(failure))  # this step ended: the password form says why
        except AuthError as failure:
            set_error(str(failure))
            set_attempt(lambda n: n + 1)  # an empty field for the next try
            set_busy(False)

    async def back(_: Any) -> None:
        on_back_error("")
        await auth.cancel_second_factor()

    return html.form(
        posted_form(
            "mfa-form",
            submit,
            key=f"mfa-form-{attempt}",
            class_name="card",
            described_by="mfa-error" if error else "mfa-hint",
        ),
        html.h1("Two-factor sign-in"),
        html.p(
            {"id": "mfa-hint", "class_name": "muted"},
            "Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
        ),
        code_field("Code", "mfa-code"),
        *(
            [html.p({"id": "mfa-error", "class_name": "error", "role": "alert"}, error)]
            if error
            else []
        ),
        html.div(
            {"class_name": "actions"},
            html.button(
                {"type": "submit", "class_name": "primary", "disabled": busy},
                "Checking…" if busy else "Verify",
            ),
            html.button(
                {"id": "mfa-back", "type": "button", "disabled": busy, "on_click": back},
                "Back",
            ),
        ),
    )
