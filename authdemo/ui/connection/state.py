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

SIGNED_OUT_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "password_changed": "You were signed out because the password of this account "
        "was changed. Sign in with the new password.",
        "signed_out_elsewhere": "You were signed out from another device of yours "
        "(\u201cSign out other sessions\u201d).",
        "ended": "This session was ended from another device, or by an administrator.",
        "revoked": "An administrator signed you out.",
        "user_disabled": "This account has been disabled.",
        "mfa_reset": "An administrator reset your two-factor sign-in, which signed you out.",
        "mfa_enabled": "You were signed out because two-factor sign-in was turned on for "
        "this account.",
        "mfa_disabled": "You were signed out because two-factor sign-in was turned off for "
        "this account.",
        "expired": "Your session expired. Please sign in again.",
        "switched": "Another tab of this browser signed in to a different account.",
    }
)
"""Why a view was signed out without asking, in a sentence for the person in front of
it (``LoginForm`` shows it as ``#signed-out-reason``). The keys are the reasons that
session events carry (``password_changed``, …) and ``expired``; anything else reads as
``ended``."""


@dataclass(frozen=True, slots=True)
class SecondStep:
    """A correct password waiting for its code in this view: nothing is signed in."""

    expires_at: datetime
    """After this the view goes back to the password form (the service refuses too)."""


@dataclass(frozen=True, slots=True)
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
    follow: str | None = None
    """The nonce of this view's follow (another tab of the browser rotated the cookie
    this view knew it by): rendered as a hidden image request that carries the
    browser's current cookie (``service.follow``)."""
    signed_out_reason: str | None = None
    """Why this view was signed out when the user did not ask for it (a key of
    ``SIGNED_OUT_REASONS``); None after a sign-out of its own, and once signed in again."""
    rights_version: int = 0
    """Bumped when the signed-in user's roles changed anywhere (a grant, a revoke, a
    role deleted): permissions shown are read again."""
    refusal: str | None = None
    """The last action of this view that the server refused for want of a permission
    (``@requires``), in a sentence; cleared when the user's rights change."""

    @property
    def data(self) -> Mapping[str, Any]:
        if self.session is None or not self.session.data:
            return _EMPTY
        return MappingProxyType(dict(self.session.data))
