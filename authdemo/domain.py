"""Values, rules and exceptions of authentication. No I/O lives here."""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

USERNAME_MAX = 64
COOKIE_WAIT_MAX = timedelta(seconds=10)
PASSWORD_MIN = 8
PASSWORD_MAX = 1024
_USERNAME_PUNCTUATION = frozenset("._-@+")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --- exceptions -------------------------------------------------------------------------


class AuthError(Exception):
    """Base of every error the service raises on purpose; ``str()`` is safe to show."""


class InvalidCredentials(AuthError):
    """A wrong username or password (the same message for each: no enumeration)."""

    def __init__(self) -> None:
        super().__init__("Incorrect username or password.")


class Throttled(InvalidCredentials):
    """Too many failed attempts: the generic message, plus when to try again."""

    def __init__(self, retry_after: timedelta) -> None:
        AuthError.__init__(
            self,
            "Incorrect username or password. Too many attempts: "
            f"try again in {describe_wait(retry_after)}.",
        )
        self.retry_after = retry_after


class SessionDataTooLarge(AuthError):
    """A change would make the session's data larger than ``AUTHDEMO_SESSION_DATA_MAX``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Session data is limited to {_size(limit)}; this change would make it {_size(size)}."
        )
        self.size = size
        self.limit = limit


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{math.ceil(n / 1024)} KiB"


class InvalidSessionData(AuthError):
    """A key that is not a string, or a value JSON cannot represent."""


class DuplicateToken(AuthError):
    """Another transaction stored a session under the same token hash first."""


class NotSignedIn(AuthError):
    """The view's session ended meanwhile (signed out elsewhere, expired, revoked); the
    view already shows the signed-out state."""

    def __init__(self) -> None:
        super().__init__("You are not signed in.")


class AlreadySignedIn(AuthError):
    """``login`` on a view that is signed in already: sign out first (a sign-in never
    silently switches users)."""

    def __init__(self) -> None:
        super().__init__("You are already signed in. Sign out first to sign in as someone else.")


class InvalidUsername(AuthError):
    pass


class InvalidPassword(AuthError):
    """A new password outside the policy: 8 to 1024 characters, no control characters."""


class UsernameTaken(AuthError):
    def __init__(self, username: str) -> None:
        super().__init__(f"The username {username!r} is already taken.")
        self.username = username


class UnknownUser(AuthError):
    def __init__(self, username: str) -> None:
        super().__init__(f"There is no user named {username!r}.")
        self.username = username


class UnknownSession(AuthError):
    """No live signed-in session has that id — or, when an owner was given, none of
    theirs does: the same words either way, so a guessed id tells nothing."""

    def __init__(self, session_id: int) -> None:
        super().__init__(f"There is no live session {session_id} to end (ended already?).")
        self.session_id = session_id


class TicketRejected(AuthError):
    """A cookie ticket was unknown, expired, used, or presented with the wrong cookie."""


class CookieRequired(AuthError):
    """The browser sent no session cookie, so nothing could bind a new cookie to it."""

    def __init__(self) -> None:
        super().__init__(
            "This browser did not send its session cookie. Reload the page "
            "(with cookies allowed for this site) and try again."
        )


class SecondFactorRequired(AuthError):
    """The password was right and the account has two-factor sign-in: nothing is signed
    in yet. ``challenge`` (from the service only) is what the code must be sent with."""

    def __init__(self, challenge: str | None = None, expires_at: datetime | None = None) -> None:
        super().__init__("Enter the 6-digit code from your authenticator app.")
        self.challenge = challenge
        self.expires_at = expires_at


class InvalidCode(AuthError):
    """A wrong, replayed or expired code (the same message for each)."""

    def __init__(self) -> None:
        super().__init__("That code is not valid. Enter the current code, or a recovery code.")


class CodeThrottled(InvalidCode):
    """Too many wrong codes: the second step is locked (the pending sign-in is dropped)."""

    def __init__(self, retry_after: timedelta) -> None:
        AuthError.__init__(
            self,
            "That code is not valid. Too many attempts: "
            f"try again in {describe_wait(retry_after)}.",
        )
        self.retry_after = retry_after


class SecondStepExpired(AuthError):
    """The pending sign-in timed out, was dropped, or the account changed meanwhile."""

    def __init__(self) -> None:
        super().__init__("The sign-in took too long. Enter your password again.")


class MfaUnavailable(AuthError):
    """This server has no ``AUTHDEMO_MFA_KEY``, or (``key_set``) one that does not open
    the stored secret (the key was changed without re-encrypting). ``str()`` is for the
    person in front of the page (no setting's name); ``detail`` says which, for the
    operator (the service logs it)."""

    def __init__(self, *, key_set: bool = False) -> None:
        self.detail = (
            "its AUTHDEMO_MFA_KEY does not open this account's two-factor secret"
            if key_set
            else "no AUTHDEMO_MFA_KEY"
        )
        super().__init__(
            "Two-factor sign-in cannot be checked on this server right now; please tell "
            "its administrator."
            if key_set
            else "Two-factor sign-in is not available on this server."
        )


class MfaStateConflict(AuthError):
    """Enabling where it is on, confirming an enrolment that expired, and the like."""


class StorageUnavailable(AuthError):
    """The database cannot be reached, or stayed locked past the timeout."""

    def __init__(self) -> None:
        super().__init__("The service is temporarily unavailable. Please try again shortly.")


class StorageRefused(AuthError):
    """The database refused a statement (a value it cannot store, a constraint): not an
    outage. Sign-ins turn it into the generic refusal; the CLI into exit 1."""

    def __init__(self) -> None:
        super().__init__("The database refused this change; nothing was saved.")


class SchemaNotReady(AuthError):
    """The database is missing or not migrated to the revision this code expects."""


def describe_wait(wait: timedelta) -> str:
    seconds = max(1, math.ceil(wait.total_seconds()))
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


# --- usernames and passwords ---------------------------------------------------------------


def normalize_username(raw: str) -> tuple[str, str]:
    """Return ``(display, key)``: NFKC display form and its NFKC-casefolded lookup key.

    Raises :class:`InvalidUsername` with a message fit for the user.
    """
    if len(raw) > USERNAME_MAX * 4:  # cheap bound before normalising huge input
        raise InvalidUsername(f"Usernames are at most {USERNAME_MAX} characters long.")
    display = unicodedata.normalize("NFKC", raw)
    if display != display.strip():
        raise InvalidUsername("Usernames cannot start or end with whitespace.")
    if not display:
        raise InvalidUsername("Enter a username.")
    if len(display) > USERNAME_MAX:
        raise InvalidUsername(f"Usernames are at most {USERNAME_MAX} characters long.")
    for char in display:
        if not (char.isalnum() or char in _USERNAME_PUNCTUATION):
            raise InvalidUsername(
                "Usernames may contain letters, digits and . _ - @ + only "
                f"(found {unicodedata.name(char, repr(char))})."
            )
    key = unicodedata.normalize("NFKC", display.casefold())
    if len(key) > USERNAME_MAX:  # folding lengthens some names ("ß" → "ss"); the key is stored
        raise InvalidUsername(
            f"Usernames are at most {USERNAME_MAX} characters long, counted in lower case "
            "(where, for example, ß counts as ss)."
        )
    return display, key


def username_key(raw: str) -> str | None:
    """The lookup key for ``raw``, or None when no user could ever have that name."""
    try:
        return normalize_username(raw)[1]
    except InvalidUsername:
        return None


def check_password_policy(password: str) -> str:
    """Validate a new password and return the form that gets hashed (NFKC)."""
    if len(password) > PASSWORD_MAX:
        raise InvalidPassword(f"Passwords are at most {PASSWORD_MAX} characters long.")
    normalized = unicodedata.normalize("NFKC", password)
    if len(normalized) < PASSWORD_MIN:
        raise InvalidPassword(f"Passwords must be at least {PASSWORD_MIN} characters long.")
    if len(normalized) > PASSWORD_MAX:
        raise InvalidPassword(f"Passwords are at most {PASSWORD_MAX} characters long.")
    if any(unicodedata.category(c) == "Cc" for c in normalized):
        raise InvalidPassword("Passwords cannot contain control characters.")
    if any(unicodedata.category(c) == "Cs" for c in normalized):  # no UTF-8 form to hash
        raise InvalidPassword("Passwords cannot contain unpaired surrogates.")
    return normalized


def password_for_verify(password: str) -> str | None:
    """The form of a login attempt's password that gets verified, or None to refuse unhashed."""
    if not password or len(password) > PASSWORD_MAX:
        return None
    return unicodedata.normalize("NFKC", password)


_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` with every control, format (bidi overrides, zero-width), surrogate and
    line/paragraph-separator character escaped (``\\x1b``, ``\\u202e``), for a terminal
    or a log line: what a client sent can neither start a line of its own nor move the
    cursor, recolour or overwrite what is already shown."""
    if text.isprintable():  # the common case, and cheap
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNPRINTABLE else c for c in text)


def _escape(char: str) -> str:
    point = ord(char)
    if point <= 0xFF:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


# --- users and sessions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    is_active: bool
    created_at: datetime
    password_changed_at: datetime
    credential_epoch: int = 0
    """Bumped by every password change, disable and "end all sessions"."""
    email: str | None = None
    """The account's (verified) address, if it has one."""
    email_verified_at: datetime | None = None
    signup_expires_at: datetime | None = None
    """Made by sign-up and not verified yet: it cannot sign in, and goes at this time."""

    @property
    def awaiting_verification(self) -> bool:
        return self.signup_expires_at is not None


@dataclass(frozen=True)
class UserCredentials:
    user: User
    password_hash: str


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout: timedelta = timedelta(minutes=30)
    absolute_timeout: timedelta = timedelta(hours=12)
    ticket_ttl: timedelta = timedelta(seconds=30)
    data_max_bytes: int = 64 * 1024
    """The largest a session's data may be, serialised as compact JSON."""

    @cached_property
    def cookie_wait(self) -> timedelta:
        """How long a view says "Signing in…" while the browser fetches its new cookie;
        after that the ticket is as good as lost (it expires with ``ticket_ttl``)."""
        return min(self.ticket_ttl, COOKIE_WAIT_MAX)

    @cached_property
    def renew_margin(self) -> timedelta:
        """Renew once less than half of the idle window remains (Lucia's rule)."""
        return self.idle_timeout / 2


@dataclass(frozen=True, slots=True)
class AuthSession:
    """A server-side session row. ``user_id`` is None for anonymous and tombstone rows."""

    id: int
    token_hash: str
    user_id: int | None
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    revoked_at: datetime | None
    client_addr: str
    user_agent: str
    data: Mapping[str, Any] | None = field(default=None, compare=False)
    """The app's values for this session (``use_session()``); None until the first write."""
    user_epoch: int = 0
    """The user's credential epoch this session was opened (or last rotated) under."""
    signed_in_from: str | None = None
    """Hash of the cookie the browser held when it picked up this session's first
    cookie (the sign-in ticket's bound cookie); None until then, and for anonymous rows.
    A view that knew the browser by that cookie may follow it into this session."""

    @property
    def short_id(self) -> str:
        """What logs and ``authdemo sessions`` show: the token hash's first 8 characters."""
        return self.token_hash[:8]

    def expires_at(self) -> datetime:
        """When the session ends unless renewed: the earlier of its idle and absolute expiry."""
        return min(self.idle_expires_at, self.absolute_expires_at)

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at()

    def needs_renewal(self, now: datetime, policy: SessionPolicy) -> bool:
        """True when a sliding renewal would move the idle expiry and is due."""
        if self.idle_expires_at >= self.absolute_expires_at:
            return False
        return self.idle_expires_at - now < policy.renew_margin

    def renewed(self, now: datetime, policy: SessionPolicy) -> AuthSession:
        return replace(
            self,
            last_seen_at=now,
            idle_expires_at=min(now + policy.idle_timeout, self.absolute_expires_at),
        )


@dataclass(frozen=True, slots=True)
class SignedIn:
    session: AuthSession
    user: User


def may_act(session: AuthSession, user: User | None, now: datetime) -> bool:
    """THE rule: a session may act while it is not revoked, not expired, and — when it is
    signed in — its user is active and still on the credential epoch it was opened under
    (no password change, disable or "end all sessions" since)."""
    if not session.is_live(now):
        return False
    if session.user_id is None:
        return True
    return (
        user is not None
        and user.id == session.user_id
        and user.is_active
        and user.credential_epoch == session.user_epoch
    )


@dataclass(frozen=True, slots=True)
class ClientInfo:
    addr: str = ""
    user_agent: str = ""

    def clipped(self) -> ClientInfo:
        return ClientInfo(self.addr[:64], self.user_agent[:512])


# --- throttling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """Exponential back-off after repeated failures, per account and per client address.

    Every block ends by itself (at most ``cap`` later) and a success clears the account's
    count, so nobody, attacker included, can lock an account for good. Blocked attempts
    are refused before any hashing and do not count as failures.
    """

    account_threshold: int = 5
    address_threshold: int = 20
    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=15)
    forget_after: timedelta = timedelta(hours=24)
    """Failures older than this (no attempt since) are forgotten."""

    def reserve(
        self, state: ThrottleState | None, threshold: int, now: datetime
    ) -> ThrottleState | None:
        """Count one attempt *before* it is verified; None when a block refuses it.

        The attempt counts as a failure until a success refunds it (``refund``), so any
        number of attempts in flight at once still meet the limit: the ``threshold``-th
        reservation sets the block, and every later one is refused unhashed."""
        if state is not None and state.blocked_until is not None and state.blocked_until > now:
            return None
        if state is None or now - state.updated_at > self.forget_after:
            state = ThrottleState(0, None, now)
        failures = state.failures + 1
        block = self.block_for(failures, threshold)
        return ThrottleState(failures, now + block if block else None, now)

    def forgotten(self, state: ThrottleState, now: datetime) -> bool:
        """Nothing in ``state`` is worth remembering: no block in force, and no failure
        that ``reserve`` would still count (none at all, or none since ``forget_after``).
        Deleting such a row changes no decision (``purge-expired`` deletes exactly these).
        """
        if state.blocked_until is not None and state.blocked_until > now:
            return False
        return state.failures == 0 or now - state.updated_at > self.forget_after

    def refund(self, state: ThrottleState, threshold: int) -> ThrottleState:
        """Give back one reserved attempt that succeeded (the address's count)."""
        failures = max(0, state.failures - 1)
        blocked = state.blocked_until if failures >= threshold else None
        return ThrottleState(failures, blocked, state.updated_at)

    def block_for(self, failures: int, threshold: int) -> timedelta | None:
        """How long to refuse attempts after the ``failures``-th consecutive failure."""
        if failures < threshold:
            return None
        exponent = min(failures - threshold, 32)
        return min(self.base * (1 << exponent), self.cap)


@dataclass(frozen=True)
class ThrottleState:
    failures: int
    blocked_until: datetime | None
    updated_at: datetime


def fold_name(username: str) -> str:
    """What sign-ins count and group by: the lookup key of a valid name, else the name
    NFKC-normalised and case-folded (bounded first: normalising can multiply length)."""
    key = username_key(username)
    if key is not None:
        return key
    return unicodedata.normalize("NFKC", username[: USERNAME_MAX * 4]).casefold()


def account_key(username: str, digest: Callable[[str], str]) -> str:
    """Throttle key of an account: a keyed digest of the folded name (``digest``), so
    the table never holds what was typed (often enough a password), every row fits its
    column, and unknown and invalid names are throttled exactly like real ones."""
    return f"account:{digest(fold_name(username))}"


UNKNOWN_NAME_DIGITS = 12


def unknown_name(username: str, digest: Callable[[str], str]) -> str:
    """How the audit trail and the logs show a name that is no user's: ``unknown:`` and
    the start of the same digest as its throttle key (guesses at one name group
    together, and lead to its throttle row), never the typed text."""
    return f"unknown:{digest(fold_name(username))[:UNKNOWN_NAME_DIGITS]}"


def client_network(addr: str) -> str:
    """Whom a limit per client counts: an IPv4 address as it is; an IPv6 address by its
    /64, the block one subscriber's network gets (its hosts pick any address inside it,
    so counting single addresses would let one client rotate past every limit);
    anything else (no address, "cli") as it is."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr[:64]
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def address_key(addr: str) -> str:
    """Throttle key of a client: IPv4 addresses one by one, IPv6 clients by their /64."""
    return f"address:{client_network(addr)}"


# --- audit trail ---------------------------------------------------------------------------


class AuditKind(StrEnum):
    LOGIN_OK = "login_ok"
    LOGIN_FAILED = "login_failed"
    THROTTLED = "throttled"
    LOGOUT = "logout"
    ROTATED = "rotated"
    EXPIRED = "expired"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    MFA_REQUIRED = "mfa_required"
    MFA_ENROL_STARTED = "mfa_enrol_started"
    MFA_ENROL_CONFIRMED = "mfa_enrol_confirmed"
    MFA_ENROL_ABANDONED = "mfa_enrol_abandoned"
    MFA_CODE_OK = "mfa_code_ok"
    MFA_CODE_FAILED = "mfa_code_failed"
    MFA_RECOVERY_USED = "mfa_recovery_used"
    MFA_DISABLED = "mfa_disabled"
    MFA_RESET = "mfa_reset"
    MFA_REKEYED = "mfa_rekeyed"
    MFA_RECOVERY_RENEWED = "mfa_recovery_renewed"
    ROLE_CREATED = "role_created"
    ROLE_DELETED = "role_deleted"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    SIGNUP = "signup"
    EMAIL_VERIFIED = "email_verified"
    EMAIL_CODE_SENT = "email_code_sent"
    EMAIL_CODE_FAILED = "email_code_failed"
    EMAIL_CHANGED = "email_changed"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name
    MAIL_THROTTLED = "mail_throttled"


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    kind: AuditKind
    username: str = ""
    session: str = ""
    client_addr: str = ""
    user_agent: str = ""
    detail: str = ""
    user_id: int | None = None
