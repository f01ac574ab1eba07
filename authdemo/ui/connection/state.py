"""What one open view shows: immutable snapshots of its auth state, for rendering.

Invariant: a snapshot never changes; every change is a new ``AuthState`` handed to the
listeners, so a component that rendered one keeps seeing what it rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ...domain import AuthSession, User

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class SecondStep:
    """A correct password waiting for its code in this view: nothing is signed in."""

    expires_at: datetime
    """After this the view goes back to the password form (the service refuses too)."""


@dataclass(frozen=True)
class AuthState:
    """An immutable snapshot for rendering."""

    user: User | None = None
    session: AuthSession | None = None
    """The live row: the signed-in session, or an anonymous one that holds data."""
    ticket: str | None = None
    """A cookie ticket the page must redeem (rendered as a hidden image request)."""
    generation: int = 0
    """Bumped whenever who is signed in changes."""
    remote_data_version: int = 0
    """Bumped when another view changed the session's data."""
    pending: bool = False
    """The password checked out, but the browser does not hold the session's cookie yet:
    the view says "Signing in…" (and renders the ticket), not "signed in"."""
    sessions_version: int = 0
    """Bumped when one of the signed-in user's sessions opened or ended anywhere."""
    cookie_refused: bool = False
    """The browser never picked up its cookie in time: this tab stays signed in, a
    reload or a new tab will not be."""
    second_step: SecondStep | None = None
    """The password checked out for an account with two-factor sign-in: the view asks
    for the code. ``user`` stays None; no session, ticket or cookie exists for it."""
    recovery_codes_left: int | None = None
    """Set when this view signed in with a recovery code: how many are left."""

    @property
    def data(self) -> Mapping[str, Any]:
        if self.session is None or not self.session.data:
            return _EMPTY
        return MappingProxyType(dict(self.session.data))
