"""The demo UI: a sign-in form, and a signed-in view. Element ids are a public contract."""

from __future__ import annotations

from typing import Any

from idom import component, event, html, use_state

from ..domain import AuthError
from .hooks import use_auth


def form_values(data: Any) -> dict[str, str]:
    """Name → value of the fields of a submitted form, from IDOM's serialised event."""
    target = data.get("target") if isinstance(data, dict) else None
    elements = target.get("elements") if isinstance(target, dict) else None
    values: dict[str, str] = {}
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, dict):
            name, value = element.get("name"), element.get("value")
            if isinstance(name, str) and name and isinstance(value, str):
                values.setdefault(name, value)
    return values


def field(label: str, **attributes: Any) -> Any:
    return html.div(
        {"class_name": "field"},
        html.label({"html_for": attributes["id"]}, label),
        html.input(attributes),
    )


@component
def LoginForm() -> Any:
    auth = use_auth()
    error, set_error = use_state("")
    busy, set_busy = use_state(False)
    attempt, set_attempt = use_state(0)

    async def submit(data: Any) -> None:
        values = form_values(data)
        set_busy(True)
        try:
            await auth.login(values.get("username", ""), values.get("password", ""))
        except AuthError as failure:
            set_error(str(failure))
            set_attempt(lambda n: n + 1)  # a fresh, empty password field
            set_busy(False)

    return html.form(
        {
            "id": "login-form",
            "class_name": "card",
            "method": "post",
            "action": "#",
            "aria_describedby": "login-error" if error else "",
            "on_submit": event(submit, prevent_default=True),
        },
        html.h1("Sign in"),
        field(
            "Username",
            id="username",
            name="username",
            type="text",
            autocomplete="username",
            autocapitalize="none",
            spellcheck="false",
            required=True,
            auto_focus=True,
        ),
        html.div(
            {"class_name": "field", "key": f"password-{attempt}"},
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
        html.button(
            {"type": "submit", "class_name": "primary", "disabled": busy},
            "Signing in…" if busy else "Sign in",
        ),
    )


@component
def SignedInView() -> Any:
    auth = use_auth()
    busy, set_busy = use_state(False)
    assert auth.user is not None

    async def sign_out(_: Any) -> None:
        set_busy(True)
        try:
            await auth.logout()
        finally:
            set_busy(False)

    return html.section(
        {"class_name": "card"},
        html.h1("Welcome back"),
        html.p({"id": "greeting"}, "Signed in as ", html.strong(auth.user.username), "."),
        html.button(
            {"id": "logout", "type": "button", "disabled": busy, "on_click": sign_out},
            "Sign out",
        ),
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
