"""Hooks for app components: ``auth = use_auth()`` and nothing about cookies or SQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from idom import component, create_context, html, use_context, use_effect, use_state

from ..domain import AuthSession, User
from .connection import LiveSession

TICKET_PATH = "/_auth/ticket"


@dataclass(frozen=True)
class Auth:
    """What ``use_auth()`` returns; a new value on every change, so components re-render."""

    user: User | None
    session: AuthSession | None
    login: Callable[[str, str], Awaitable[User]]
    """``await auth.login(username, password)``; raises ``InvalidCredentials`` (and its
    subclass ``Throttled`` after repeated failures). ``str(error)`` is fit to show."""
    logout: Callable[[], Awaitable[None]]
    change_password: Callable[[str, str], Awaitable[None]]
    """``await auth.change_password(current, new)``: ends the user's other sessions."""
    sessions: Callable[[], Awaitable[list[AuthSession]]]
    """The user's live sessions, most recently active first."""
    logout_others: Callable[[], Awaitable[int]]
    """End every other session of the user; returns how many ended."""

    @property
    def signed_in(self) -> bool:
        return self.user is not None


def _outside(*_: Any) -> Any:
    raise RuntimeError("use_auth() is only available below authdemo's root component")


AuthContext: Any = create_context(
    Auth(None, None, _outside, _outside, _outside, _outside, _outside)
)
LiveSessionContext: Any = create_context(None)


def use_auth() -> Auth:
    """The signed-in user (or None) and ``login``/``logout`` for the current connection."""
    auth: Auth = use_context(AuthContext)
    return auth


def use_live_session() -> LiveSession:
    live: LiveSession | None = use_context(LiveSessionContext)
    if live is None:
        raise RuntimeError("only available below authdemo's root component")
    return live


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

    auth = Auth(
        state.user,
        state.session,
        live.login,
        live.logout,
        live.change_password,
        live.sessions,
        live.logout_others,
    )
    return LiveSessionContext(
        AuthContext(
            html._(child, *([ticket_image(state.ticket)] if state.ticket else [])),
            value=auth,
        ),
        value=live,
    )
