"""The authentication service: plain values in, plain values out, our exceptions only.

One class, ``AuthService``, assembled from one module per use case; each module states
at its top the invariants it keeps:

- ``core``: shared dependencies, the in-transaction "may this session act" check,
  revocation with its broadcast, the audit trail, the values returned.
- ``sessions``: resolving cookies, conditional renewal, re-reading, signing out.
- ``signin``: throttle reservations, password checks, opening a session, tickets.
- ``accounts``: users, and every change that ends access (epoch bumps, re-keying).
- ``mfa``: two-factor sign-in's second step (codes, recovery codes, the code throttle).
- ``mfa_settings``: turning two-factor sign-in on and off, operator reset, re-encryption.
- ``email_accounts``: sign-up with a verified address, reset by mail, change of address.
- ``data``: ``use_session()`` rows and writes.
- ``follow``: the other tabs of a browser follow its sign-in, proven by its cookie.
- ``maintenance``: the token key, the audit trail, purging.
- ``roles``: roles, grants and revokes (announced live), and permission checks.

The rule every path keeps is ``domain.may_act``: a session may act while it is not
revoked, not expired, its user is active, and the user's credential epoch is the one
the session was opened under.
"""

from __future__ import annotations

from .core import (
    OPERATOR,
    LoginResult,
    PurgeReport,
    Redemption,
    Rekeyed,
    Resolution,
    UserSummary,
)
from .data import SessionData
from .email_accounts import EmailAccounts
from .follow import Following
from .maintenance import TOKEN_KEY_NAME, Maintenance, ensure_token_key
from .mfa import SecondStepResult
from .mfa_settings import AccountSnapshot, Enrolled, Enrolment, MfaStatus, ResealReport
from .roles import Rights

__all__ = [
    "OPERATOR",
    "TOKEN_KEY_NAME",
    "AccountSnapshot",
    "AuthService",
    "Enrolled",
    "Enrolment",
    "LoginResult",
    "MfaStatus",
    "PurgeReport",
    "Redemption",
    "Rekeyed",
    "ResealReport",
    "Resolution",
    "SecondStepResult",
    "UserSummary",
    "ensure_token_key",
]


class AuthService(EmailAccounts, SessionData, Following, Maintenance, Rights):
    """Every use case of authentication, over one unit-of-work factory."""
