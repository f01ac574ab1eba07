"""Hooks for app components: ``auth = use_auth()`` and nothing about cookies or SQL.

``use_auth()`` carries everything a signed-in user does with the account: signing in
and out, ``change_password``, ``sessions`` (list, end one, end the others) and
``two_factor`` (status, turn on, turn off, new recovery codes). Each goes through the
same service call, checks, throttles, audit rows and live effects as authdemo's own
components (which are built on these and nothing else).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain import AuthSession, User
from ..service import Enrolment, MfaStatus
from .connection import AuthState, LiveSession, SecondStep
from .connection.state import SIGNED_OUT_REASONS
from .library import component, create_context, html, provide, render_again, use_context

TICKET_PATH = "/_auth/ticket"
HELD_PATH = "/_auth/held"
FOLLOW_PATH = "/_auth/follow"

log = logging.getLogger(__name__)


def _outside(*_: Any) -> Any:
    raise RuntimeError("use_auth() is only available below authdemo's root component")


def _live_or_outside(live: LiveSession | None) -> LiveSession:
    if live is None:
        raise RuntimeError("use_auth() is only available below authdemo's root component")
    return live


class SessionControls:
    """``auth.sessions``: the signed-in user's live sessions, and ending them.

    Every call acts as this view's session: ``NotSignedIn`` when it may not act any
    more (the view signs out at once), ``StorageUnavailable`` when the database cannot
    be reached. ``await auth.sessions()`` is ``await auth.sessions.list()``."""

    __slots__ = ("_live", "version")

    def __init__(self, live: LiveSession | None, version: int = 0) -> None:
        self._live = live
        self.version = version
        """Moves on whenever one of the user's sessions opens or ends anywhere: a
        component showing the list re-reads it when this changes."""

    async def __call__(self) -> list[AuthSession]:
        return await self.list()

    def now(self) -> datetime:
        """The server's clock: the one ``AuthSession.expires_at()`` is in."""
        return _live_or_outside(self._live).now()

    async def list(self) -> list[AuthSession]:
        """The user's live sessions, most recently active first."""
        return await _live_or_outside(self._live).sessions()

    async def end(self, session_id: int) -> bool:
        """End one of the user's sessions, by id (``AuthSession.id``): its browsers are
        signed out at once, the user's other sessions stay. The server ends it only if
        it is a live session of this user — an id that is not (somebody else's, ended
        already, made up) changes nothing and returns False. Ending this view's own
        session signs this view out."""
        return await _live_or_outside(self._live).end_session(session_id)

    async def end_others(self) -> int:
        """End every other session of the user and every other view of this one; this
        view goes on under a new cookie. Returns how many sessions ended. Raises
        ``CookieRequired`` when the browser sent no cookie."""
        return await _live_or_outside(self._live).logout_others()


class TwoFactorControls:
    """``auth.two_factor``: two-factor sign-in of the signed-in user.

    Every call raises ``NotSignedIn`` when this view's session may not act any more (the
    view signs out at once), ``StorageUnavailable`` when the database cannot be reached,
    and ``MfaUnavailable`` when the server has no ``AUTHDEMO_MFA_KEY`` (or one that does
    not open the stored secret). ``str(error)`` is fit to show."""

    __slots__ = ("_live",)

    def __init__(self, live: LiveSession | None) -> None:
        self._live = live

    async def status(self) -> MfaStatus:
        """``.enabled`` and ``.recovery_codes_left``."""
        return await _live_or_outside(self._live).mfa_status()

    async def start(self, password: str) -> Enrolment:
        """Begin turning it on: checks the password again (``InvalidCredentials``,
        ``Throttled``) and returns a new secret to show (``.uri`` for a QR code,
        ``.grouped_secret`` to type in), pending until ``confirm`` (``.expires_at``).
        ``MfaStateConflict`` when it is on already. Starting again replaces the setup;
        a setup left unconfirmed is dropped when the view closes."""
        return await _live_or_outside(self._live).start_mfa_enrolment(password)

    async def confirm(self, code: str) -> list[str]:
        """Turn it on with a first code from the app: returns the recovery codes (show
        them once; only digests are kept). Every other session of the user and every
        other view of this one ends; this view goes on under a new cookie. Raises
        ``InvalidCode``, ``CodeThrottled``, ``MfaStateConflict`` (the setup expired),
        ``CookieRequired``."""
        return await _live_or_outside(self._live).confirm_mfa_enrolment(code)

    async def cancel(self) -> None:
        """Drop the setup this view began (not one another tab began since)."""
        await _live_or_outside(self._live).cancel_mfa_enrolment()

    async def disable(self, password: str, code: str) -> int:
        """Turn it off: the password and a current code (or a recovery code). Ends every
        other session of the user and every other view of this one, live; returns how
        many sessions ended. Raises ``InvalidCredentials``, ``Throttled``,
        ``InvalidCode``, ``CodeThrottled``, ``MfaStateConflict`` (it is not on),
        ``CookieRequired``."""
        return await _live_or_outside(self._live).disable_mfa(password, code)

    async def regenerate_recovery_codes(self, password: str, code: str) -> list[str]:
        """New recovery codes (show them once); every old one stops working. Needs the
        password and a current code (or a recovery code); nobody is signed out. Raises
        ``InvalidCredentials``, ``Throttled``, ``InvalidCode``, ``CodeThrottled``,
        ``MfaStateConflict`` (it is not on)."""
        return await _live_or_outside(self._live).regenerate_recovery_codes(password, code)


_NO_TWO_FACTOR = TwoFactorControls(None)


class EmailControls:
    """``auth.email``: accounts by e-mail — sign-up, its code, "forgot password", and a
    new address for the signed-in user. ``str(error)`` is fit to show.

    Sign-up, ``resend_code`` and ``request_password_reset`` answer the same whatever the
    address (the mail says what differs): show the same words after each. Every call may
    raise ``MailUnavailable`` (the server cannot send mail), ``InvalidEmail``,
    ``MailThrottled`` (a limit; ``retry_after``) and ``StorageUnavailable``."""

    __slots__ = ("_live",)

    def __init__(self, live: LiveSession | None) -> None:
        self._live = live

    @property
    def signup_open(self) -> bool:
        """Sign-up is offered (``AUTHDEMO_SIGNUP=open``, and mail can be sent)."""
        return self._live is not None and self._live.signup_open

    @property
    def available(self) -> bool:
        """Mail can be sent, so "forgot password" and a change of address work."""
        return self._live is not None and self._live.mail_available

    async def sign_up(self, email: str, username: str, password: str) -> str:
        """Start a sign-up: a code goes to ``email``; returns the address as stored.
        Raises ``SignupClosed``, ``InvalidUsername``, ``InvalidPassword``."""
        return await _live_or_outside(self._live).sign_up(email, username, password)

    async def verify(self, email: str, code: str) -> User:
        """The code of a sign-up: verifies the address and signs this view in. Raises
        ``WrongEmailCode``, ``EmailCodeLocked`` (ask for a new code), ``AlreadySignedIn``."""
        return await _live_or_outside(self._live).verify_email(email, code)

    async def resend_code(self, email: str) -> None:
        """A new sign-up code (the previous one stops working)."""
        await _live_or_outside(self._live).resend_code(email)

    async def request_password_reset(self, email: str) -> None:
        """ "Forgot password?": a code goes to the address if it is a verified account's."""
        await _live_or_outside(self._live).request_password_reset(email)

    async def reset_password(
        self, email: str, code: str, password: str, second_factor: str | None = None
    ) -> User:
        """A new password with the mailed code: every session of the account ends, live,
        and this view signs in. An account with two-factor sign-in gives a current code
        or a recovery code as ``second_factor`` (``SecondFactorRequired`` without one).
        Raises ``WrongEmailCode``, ``EmailCodeLocked``, ``InvalidPassword``,
        ``InvalidCode``, ``CodeThrottled``, ``AlreadySignedIn``."""
        return await _live_or_outside(self._live).reset_password(
            email, code, password, second_factor
        )

    async def change(self, email: str) -> str:
        """Signed in: a code goes to the new address; returns it as stored."""
        return await _live_or_outside(self._live).request_email_change(email)

    async def confirm_change(self, code: str) -> User:
        """The code from the new address makes it the account's; the old one is told.
        Raises ``WrongEmailCode``, ``EmailCodeLocked``, ``EmailTaken``, ``NotSignedIn``."""
        return await _live_or_outside(self._live).confirm_email_change(code)


_NO_EMAIL = EmailControls(None)


@dataclass(frozen=True, slots=True)
class Auth:
    """What ``use_auth()`` returns; a new value on every change, so components re-render."""

    user: User | None
    session: AuthSession | None
    login: Callable[[str, str], Awaitable[User]]
    """``await auth.login(username, password)``; raises ``InvalidCredentials`` (and its
    subclass ``Throttled`` after repeated failures), ``CookieRequired`` when the
    browser sent no cookie (it must reload), ``AlreadySignedIn`` when this view is
    signed in already (sign out first: a sign-in never switches users). ``str(error)``
    is fit to show."""
    logout: Callable[[], Awaitable[None]]
    change_password: Callable[[str, str], Awaitable[None]]
    """``await auth.change_password(current, new)``: ends the user's other sessions and
    every other view of this one; this view goes on under a new cookie. Raises
    ``InvalidCredentials`` (the current password is wrong), ``Throttled``,
    ``InvalidPassword`` (the new one breaks the policy), ``CookieRequired``,
    ``NotSignedIn``, ``StorageUnavailable``."""
    sessions: SessionControls
    """``await auth.sessions()`` (or ``.list()``): the user's live sessions, most recently
    active first; ``.end(session_id)`` ends one, ``.end_others()`` every other one."""
    logout_others: Callable[[], Awaitable[int]]
    """End every other session of the user and every other view of this one (this view
    goes on under a new cookie); returns how many sessions ended."""
    pending: User | None = None
    """Set between a correct password and the moment the browser holds the session's
    cookie (normally well under a second): ``user`` is still None meanwhile, so nothing
    claims a sign-in that a reload would lose. ``LoginForm`` shows "Signing in…"."""
    cookie_refused: bool = False
    """The browser never picked up its cookie: this tab is signed in, a reload or a new
    tab will ask for the password again (say so)."""
    sessions_version: int = 0
    """Moves on whenever one of the user's sessions opens or ends anywhere (any tab,
    device, worker or host, the CLI): a component that shows ``await auth.sessions()``
    re-reads it when this changes."""
    pending_second_factor: SecondStep | None = None
    """Set after a correct password for an account with two-factor sign-in (``login``
    raised ``SecondFactorRequired``): ask for the code and ``await verify_code(code)``.
    Nothing is signed in meanwhile; it expires (``.expires_at``) back to None."""
    verify_code: Callable[[str], Awaitable[User]] = _outside
    """``await auth.verify_code(code)``: a 6-digit code or a recovery code. Raises
    ``InvalidCode`` (ask again), ``CodeThrottled`` or ``SecondStepExpired`` (the
    pending sign-in is gone: ask for the password again); ``str(error)`` is fit to show."""
    cancel_second_factor: Callable[[], Awaitable[None]] = _outside
    """Back to the password step (the pending sign-in is dropped)."""
    recovery_codes_left: int | None = None
    """After signing in with a recovery code: how many are left (say so)."""
    two_factor: TwoFactorControls = _NO_TWO_FACTOR
    """Two-factor sign-in: ``status()``, ``start(password)``, ``confirm(code)``,
    ``cancel()``, ``disable(password, code)``, ``regenerate_recovery_codes(password,
    code)``."""
    signed_out_reason: str | None = None
    """Why this view was signed out when its user did not ask for it: ``password_changed``,
    ``signed_out_elsewhere``, ``ended``, ``revoked``, ``user_disabled``, ``mfa_reset``,
    ``mfa_enabled``, ``mfa_disabled`` or ``expired``. None while signed in, after a
    sign-out of its own, and once signed in again. ``signed_out_message`` says it."""
    email: EmailControls = _NO_EMAIL
    """Accounts by e-mail: ``signup_open``, ``available``, ``sign_up(email, username,
    password)``, ``verify(email, code)``, ``resend_code(email)``,
    ``request_password_reset(email)``, ``reset_password(email, code, password,
    second_factor=None)``, ``change(email)``, ``confirm_change(code)``. ``login`` raises
    ``EmailNotVerified`` (``.email``) for an account whose address awaits its code."""

    refusal: str | None = None
    """Set when the server refused this view's last ``@requires`` action for want of the
    permission (one sentence, fit to show; the root shows it as ``#permission-refused``);
    cleared when the user's roles change or a guarded action is allowed."""

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    @property
    def signed_out_message(self) -> str | None:
        """``signed_out_reason`` as one sentence for the person (``LoginForm`` shows it)."""
        if self.signed_out_reason is None:
            return None
        return SIGNED_OUT_REASONS.get(self.signed_out_reason, SIGNED_OUT_REASONS["ended"])


@dataclass(frozen=True, slots=True)
class Provided:
    """What the root provides to every component below it, in one context (``provide``:
    no provider component, which each connection would hold for as long as it is open)."""

    auth: Auth
    state: AuthState
    live: LiveSession | None


AuthContext: Any = create_context(
    Provided(
        Auth(None, None, _outside, _outside, _outside, SessionControls(None), _outside),
        AuthState(),
        None,
    )
)


def use_auth() -> Auth:
    """The signed-in user (or None) and ``login``/``logout`` for the current connection."""
    provided: Provided = use_context(AuthContext)
    return provided.auth


class SessionData(Mapping[str, Any]):
    """The current session's values: read like a dict; ``await set()``/``update()``/
    ``delete()``/``update_value()`` to change.

    Every change is written at once (one small write, its own transaction) and shows in
    every open view of the same session. Values must be JSON-serialisable; the whole
    mapping is capped (64 KiB of JSON by default, ``AUTHDEMO_SESSION_DATA_MAX``).
    Signed-in sessions keep their data across sign-in (it moves over from the anonymous
    session), password changes and reconnects; logout and expiry clear it.
    """

    def __init__(self, values: Mapping[str, Any], live: LiveSession, version: int) -> None:
        self._values = values
        self._live = live
        self.version = version
        """Changes when another view changed the data (handy as an element ``key``)."""

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``: one small write, shown at once in every view of
        the session. Raises ``InvalidSessionData`` (not JSON, or a key that is not a
        string), ``SessionDataTooLarge``, ``NotSignedIn`` (the session ended meanwhile),
        ``CookieRequired`` (an anonymous visitor whose browser sent no cookie),
        ``StorageRefused`` or ``StorageUnavailable``."""
        await self._live.update_data({key: value})

    async def update(self, values: Mapping[str, Any]) -> None:
        """Store several keys in one write; raises as ``set``."""
        await self._live.update_data(values)

    async def delete(self, *keys: str) -> None:
        """Remove ``keys`` (missing ones are ignored); raises as ``set``."""
        await self._live.update_data({}, keys)

    async def update_value(self, key: str, function: Callable[[Any], Any]) -> Any:
        """Set ``key`` to ``function(current)`` atomically and return the value stored.

        ``current`` is the stored value (None when unset), read in the writing
        transaction with the session's row locked: concurrent updates — quick clicks,
        other tabs, other workers and hosts — apply one after the other, none is lost
        (``set(key, value_read_earlier + 1)`` would lose them). ``function`` must be a
        plain, quick function; when it raises, nothing is written and the error
        propagates. Its result is checked like any value (``InvalidSessionData``,
        ``SessionDataTooLarge``).
        """
        return await self._live.update_value(key, function)


def use_session() -> SessionData:
    """The per-visitor values of the current session, for any component below the root.

    Anonymous visitors have one too: its row is created by the first write.
    """
    provided: Provided = use_context(AuthContext)
    if provided.live is None:
        raise RuntimeError("use_session() is only available below authdemo's root component")
    return SessionData(provided.state.data, provided.live, provided.state.remote_data_version)


def ticket_image(ticket: str) -> Any:
    """The element that makes the browser fetch its new cookie: a plain image request,
    so it works without any JavaScript of ours and carries the current cookie along."""
    return html.img(
        {
            "key": f"ticket-{ticket[:12]}",
            "src": f"{TICKET_PATH}/{ticket}",
            "alt": "",
            "hidden": True,
            "width": 1,
            "height": 1,
            "referrer_policy": "no-referrer",
        }
    )


def follow_image(nonce: str) -> Any:
    """The element that asks the browser which cookie it holds now (another tab rotated
    it): the request carries that cookie, and only this view's page knows the nonce."""
    return html.img(
        {
            "key": f"follow-{nonce[:12]}",
            "src": f"{FOLLOW_PATH}/{nonce}",
            "alt": "",
            "hidden": True,
            "width": 1,
            "height": 1,
            "referrer_policy": "no-referrer",
        }
    )


def refusal_notice(message: str) -> Any:
    """What a refused ``@requires`` action shows: said, not silently dropped."""
    return html.p(
        {"key": "permission-refused", "id": "permission-refused", "role": "alert"}, message
    )


@component
def AuthProvider(live: LiveSession, child: Any) -> Any:
    """Root of every connection's layout: provides the auth state to everything below,
    and renders the app's root component as a part of itself (``_render_root``).

    It has no hooks of its own (each would be held for as long as the view is open): it
    reads the view's state from ``live`` on every render, and ``live`` renders it again
    when the state changes (``_Follow``, made on the first render)."""
    follow: _Follow | None = live.root
    if follow is None:
        follow = live.root = _Follow(render_again(), _provided(live, live.state))
        live.listen(follow)  # for as long as the view: LiveSession.close drops it
    state = live.state
    # Events sent from a view rendered for an older sign-in state were dropped until
    # now (``before_event``): this render replaces that view.
    live.rendered_generation = state.generation
    provided = follow.provide(live, state)
    # Always the same shape (the app first), so that the ticket image coming and going
    # never remounts the app.
    images = [ticket_image(state.ticket)] if state.ticket else []
    if state.follow:
        images.append(follow_image(state.follow))
    refusal = provided.auth.refusal
    notices = [refusal_notice(refusal)] if refusal else []
    provide(AuthContext, provided)  # no provider component: see provide
    return html._(_render_root(child), *images, *notices)


class _Follow:
    """The root's listener on its view (``LiveSession.listen``): a new state renders the
    root again, as a state hook's setter would; and what the root last provided, kept
    while the state is the same object."""

    __slots__ = ("provided", "render_again")

    def __init__(self, render_again: Callable[[], None], provided: Provided) -> None:
        self.render_again = render_again
        self.provided = provided

    def __call__(self, state: AuthState) -> None:
        if self.provided.state is not state:
            self.render_again()

    def provide(self, live: LiveSession, state: AuthState) -> Provided:
        """What the root provides for ``state``: a new value only when the state changed.
        The app's root renders in the same component, and a render of its own (its state
        changed) must not hand every component below a new ``use_auth()`` (an effect
        depending on it would run again)."""
        if self.provided.state is not state:
            self.provided = _provided(live, state)
        return self.provided


def _provided(live: LiveSession, state: AuthState) -> Provided:
    signed_in = state.user is not None and not state.pending
    auth = Auth(
        state.user if signed_in else None,
        state.session if signed_in else None,
        live.login,
        live.logout,
        live.change_password,
        SessionControls(live, state.sessions_version),
        live.logout_others,
        state.user if state.pending else None,
        state.cookie_refused,
        state.sessions_version,
        None if signed_in else state.second_step,
        live.verify_code,
        live.cancel_second_step,
        state.recovery_codes_left if signed_in else None,
        TwoFactorControls(live),
        None if signed_in else state.signed_out_reason,
        EmailControls(live),
        state.refusal if signed_in else None,
    )
    return Provided(auth, state, live)


def _render_root(child: Any) -> Any:
    """The app's root component rendered as a part of ``AuthProvider``, not as a
    component of its own: a view holds one component, not two (a component's hook,
    state and model stay in memory for as long as its websocket is open: about 2 KiB of
    Python objects per view; docs/performance.md, row 4).

    The root's hooks follow the provider's in the same component, the same ones in the
    same order on every render, and it reads the context the provider has just set, as
    a component below it would. A render of its own (its state changed) renders the
    provider's part again too, which is cheap: the provided value is kept while the
    auth state is the same. A root that is not a component (an element) is placed as it
    is. A root whose render raises is logged and shows nothing, as either UI library
    shows a component of its own that raises, while the provider's part (the image that
    hands the browser its new cookie) still renders."""
    render = getattr(child, "render", None)
    if render is None:
        return child
    try:
        rendered = render()
    except Exception:
        log.exception("Failed to render %r", child)
        return html._()
    return html._() if rendered is None else rendered
