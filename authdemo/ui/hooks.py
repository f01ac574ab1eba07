"""Hooks for app components: ``auth = use_auth()`` and nothing about cookies or SQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain import AuthSession, User
from .connection import AuthState, LiveSession, SecondStep
from .library import component, create_context, html, use_context, use_effect, use_state

TICKET_PATH = "/_auth/ticket"
HELD_PATH = "/_auth/held"


def _outside(*_: Any) -> Any:
    raise RuntimeError("use_auth() is only available below authdemo's root component")


@dataclass(frozen=True)
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
    every other view of this one; this view goes on under a new cookie."""
    sessions: Callable[[], Awaitable[list[AuthSession]]]
    """The user's live sessions, most recently active first."""
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

    @property
    def signed_in(self) -> bool:
        return self.user is not None


@dataclass(frozen=True)
class Provided:
    """What the root provides to every component below it, in one context (each context
    provider is another node held in memory for as long as the websocket is open)."""

    auth: Auth
    state: AuthState
    live: LiveSession | None


AuthContext: Any = create_context(
    Provided(Auth(None, None, _outside, _outside, _outside, _outside, _outside), AuthState(), None)
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


def use_live_session() -> LiveSession:
    """The connection's ``LiveSession`` (authdemo's own components; not public API)."""
    provided: Provided = use_context(AuthContext)
    if provided.live is None:
        raise RuntimeError("only available below authdemo's root component")
    return provided.live


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


@component
def AuthProvider(live: LiveSession, child: Any) -> Any:
    """Root of every connection's layout: provides the auth state to everything below."""
    state, set_state = use_state(live.state)

    @use_effect(dependencies=[live])
    def follow_live_session() -> Callable[[], None]:
        set_state(live.state)  # anything that changed between render and effect
        return live.listen(set_state)

    @use_effect(dependencies=[state.generation])
    def mark_rendered() -> None:
        # Events from views rendered for an older sign-in state are dropped until now.
        live.rendered_generation = state.generation

    signed_in = state.user is not None and not state.pending
    auth = Auth(
        state.user if signed_in else None,
        state.session if signed_in else None,
        live.login,
        live.logout,
        live.change_password,
        live.sessions,
        live.logout_others,
        state.user if state.pending else None,
        state.cookie_refused,
        state.sessions_version,
        None if signed_in else state.second_step,
        live.verify_code,
        live.cancel_second_step,
        state.recovery_codes_left if signed_in else None,
    )
    # Always the same shape (child first), so that the ticket image coming and going
    # never remounts the app below.
    content = html._(child, *([ticket_image(state.ticket)] if state.ticket else []))
    return AuthContext(content, value=Provided(auth, state, live))
