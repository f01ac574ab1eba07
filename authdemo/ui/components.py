"""The demo UI: a sign-in form, and a signed-in view. Element ids are a public contract."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, ParamSpec, cast

from idom.types import Component
from sanic import Request

from ..domain import (
    PASSWORD_MIN,
    AuthError,
    AuthSession,
    CodeThrottled,
    NotSignedIn,
    SecondFactorRequired,
    SecondStepExpired,
    StorageUnavailable,
    User,
)
from ..http.insecure import insecure_origin
from ..service import Enrolment, MfaStatus
from .hooks import use_auth, use_live_session, use_session
from .library import ConnectionContext, component, event, html, use_context, use_effect, use_state
from .qr import qr_data_uri

log = logging.getLogger(__name__)


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

    async def submit(data: Any) -> None:
        values = form_values(data)
        set_busy(True)
        set_error("")
        try:
            await auth.login(values.get("username", ""), values.get("password", ""))
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

    return html.form(
        {
            "key": f"login-form-{attempt}",
            "id": "login-form",
            "class_name": "card",
            "method": "post",
            "action": "#",
            "aria_describedby": "login-error" if error else "",
            "on_submit": event(submit, prevent_default=True),
        },
        html.h1("Sign in"),
        *(
            [
                html.p(
                    {"id": "insecure-origin-notice", "class_name": "error", "role": "alert"},
                    f"This page came over plain http from {insecure_host}, so your browser "
                    "will not keep the session cookie: a sign-in here lasts until the next "
                    "reload. Use https, or http://localhost (or 127.0.0.1) while developing.",
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
            {"type": "submit", "class_name": "primary", "disabled": busy or bool(auth.pending)},
            "Signing in…" if busy or auth.pending else "Sign in",
        ),
    )


def account_field(user: User | None) -> Any:
    """The hidden, read-only username of a form that asks for the signed-in user's
    password: password managers (and Chromium's form checks) want to know whose it is."""
    return html.input(
        {
            "type": "text",
            "name": "username",
            "autocomplete": "username",
            "value": user.username if user else "",
            "read_only": True,
            "hidden": True,
        }
    )


def code_field(label: str, field_id: str, *, auto_focus: bool = True) -> Any:
    """A field for a 6-digit code (or a recovery code, which is letters and digits:
    so no ``pattern``, and ``inputmode`` only suggests the numeric keypad)."""
    return field(
        label,
        id=field_id,
        name="code",
        type="text",
        autocomplete="one-time-code",
        inputmode="numeric",
        autocapitalize="characters",
        spellcheck="false",
        maxlength=20,
        required=True,
        auto_focus=auto_focus,
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
        {
            "key": f"mfa-form-{attempt}",
            "id": "mfa-form",
            "class_name": "card",
            "method": "post",
            "action": "#",
            "aria_describedby": "mfa-error" if error else "mfa-hint",
            "on_submit": event(submit, prevent_default=True),
        },
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


def describe_agent(user_agent: str) -> str:
    """'Chrome on Linux' from a User-Agent header; the raw text (shortened) otherwise."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("HeadlessChrome/", "Headless Chrome"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
                ("python-httpx", "httpx"),
                ("Python/", "Python"),
            )
            if token in ua
        ),
        None,
    )
    system = next(
        (
            name
            for token, name in (
                ("Android", "Android"),
                ("iPhone", "iOS"),
                ("iPad", "iPadOS"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("Linux", "Linux"),
            )
            if token in ua
        ),
        None,
    )
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (ua[:60] + ("…" if len(ua) > 60 else "")) or "unknown client"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@component
def SessionList(refresh_key: int) -> Any:
    """The user's live sessions, kept true while open: re-read when one opens or ends
    anywhere (``auth.sessions_version``) and when the next one of them expires."""
    auth = use_auth()
    live = use_live_session()
    sessions, set_sessions = use_state(cast(list[AuthSession], []))
    expired, set_expired = use_state(0)
    this_id = auth.session.id if auth.session else None

    @use_effect(dependencies=[refresh_key, this_id, auth.sessions_version, expired])
    async def load() -> None:
        if auth.user is not None:
            try:
                set_sessions(await auth.sessions())
            except StorageUnavailable:
                log.warning("session list not refreshed: the database is unavailable")
            except NotSignedIn:
                pass  # the view signed out meanwhile; the list is on its way out

    @use_effect(dependencies=[sessions])
    def at_next_expiry() -> Callable[[], None]:
        # Expiry sends no event (nothing happens at that moment), so wake up for it.
        ends = [s.expires_at() for s in sessions if s.id != this_id]
        if not ends:
            return lambda: None
        delay = (min(ends) - live.now()).total_seconds() + 0.05
        handle = asyncio.get_running_loop().call_later(
            max(0.0, delay), lambda: set_expired(lambda n: n + 1)
        )
        return handle.cancel

    return html.ul(
        {"id": "sessions", "class_name": "sessions", "aria_label": "Active sessions"},
        [
            html.li(
                {"key": str(s.id)},
                html.strong(describe_agent(s.user_agent)),
                *([html.span({"class_name": "badge"}, "this device")] if s.id == this_id else []),
                html.br(),
                html.span(
                    {"class_name": "muted"},
                    f"{s.client_addr or 'unknown address'} · signed in {when(s.created_at)}"
                    f" · last seen {when(s.last_seen_at)}",
                ),
            )
            for s in sessions
        ],
    )


@component
def ChangePasswordForm(on_changed: Callable[[], None]) -> Any:
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
        except AuthError as failure:
            set_error(str(failure))
        else:
            set_ok("Password changed. Your other sessions have been signed out.")
            on_changed()
        finally:
            set_busy(False)
            set_attempt(lambda n: n + 1)  # empty fields either way

    return html.form(
        {
            "id": "change-password",
            "key": f"change-password-{attempt}",
            "class_name": "card wide",
            "method": "post",
            "action": "#",
            "on_submit": event(submit, prevent_default=True),
        },
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
def RequireAuth(child: Any, fallback: Any = None) -> Any:
    """Render ``child`` only for a signed-in user, the sign-in form (or ``fallback``) otherwise.

    The check happens on the server before ``child`` renders, so nothing protected is
    ever rendered, let alone sent, while signed out; when the session ends the child
    unmounts at once.
    """
    auth = use_auth()
    if auth.user is None:
        return fallback if fallback is not None else LoginForm()
    return child


P = ParamSpec("P")


def require_auth(function: Callable[P, Any]) -> Callable[P, Component]:
    """Decorator form of :func:`RequireAuth`: ``@require_auth`` above ``@component``.

    The guarded constructor takes the same arguments as ``function`` (for type checkers
    too: whatever signature ``function`` has, the guarded one has)."""

    @wraps(function)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> Component:
        return RequireAuth(function(*args, **kwargs))

    return guarded


@component
def Notepad() -> Any:
    """The demo of session data: a note kept per session, saved as you type."""
    data = use_session()
    status, set_status = use_state("")

    async def save(event_data: Any) -> None:
        target = event_data.get("target") if isinstance(event_data, dict) else None
        value = target.get("value") if isinstance(target, dict) else None
        if not isinstance(value, str):
            return
        set_status("saving")
        try:
            await data.set("note", value)
        except AuthError as failure:
            set_status(str(failure))
        else:
            set_status("saved")

    return html.section(
        {"class_name": "card wide"},
        html.h2("Notes"),
        html.div(
            {"class_name": "field"},
            html.label({"html_for": "note"}, "Kept with this session, in every tab"),
            html.textarea(
                {
                    # Re-created (with the new text) only when another view changed it,
                    # so that typing here is never overwritten by our own echo.
                    "key": f"note-{data.version}",
                    "id": "note",
                    "name": "note",
                    "default_value": str(data.get("note", "")),
                    "on_change": save,
                }
            ),
        ),
        html.p(
            {
                "id": {"saved": "note-saved", "saving": "note-saving"}.get(status, "note-error"),
                "class_name": "muted" if status in ("saved", "saving") else "error",
                "role": "status",
            },
            {"saved": "Saved.", "saving": "Saving…"}.get(status, status),
        )
        if status
        else html.p({"class_name": "muted"}, "Saved as you type."),
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
