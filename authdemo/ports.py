"""What the service needs from storage. The SQL adapter in ``authdemo.db`` implements it;
tests implement it with fakes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol, Self, overload

from .domain import AuditEvent, AuthSession, ClientInfo, ThrottleState, User, UserCredentials
from .events import SessionEvent
from .mail import CodePurpose, EmailCode, OutgoingMail, QueuedMail
from .mfa import Challenge, MfaRecord
from .permissions import Role


@dataclass(frozen=True)
class ClaimedTicket:
    session_id: int
    bound_token_hash: str | None
    expires_at: datetime
    already_redeemed: bool


BROADCAST_BATCH = 500
"""The most outbox rows one SQLite read returns (the follower reads again at once)."""


@dataclass(frozen=True)
class BroadcastCursor:
    """How far a follower has read the outbox, such that no row can be skipped.

    ``last_id``: every row with a lower or equal id was read (SQLite, whose one writer
    commits in id order). ``horizon`` (PostgreSQL): every row written by a transaction
    older than this transaction id was read; ``seen`` holds the ids of rows at or past
    the horizon that were delivered already (they are read again until the horizon
    passes them, and not delivered twice)."""

    last_id: int = 0
    horizon: int | None = None
    seen: frozenset[int] = frozenset()


class UserRepository(Protocol):
    async def add(self, username: str, key: str, password_hash: str, now: datetime) -> User:
        """Insert a user; raises ``UsernameTaken`` when the key exists."""
        ...

    async def get(self, user_id: int) -> User | None: ...

    async def get_by_key(self, key: str) -> User | None: ...

    async def get_credentials(self, key: str) -> UserCredentials | None: ...

    async def lock(self, user_id: int) -> UserCredentials | None:
        """The user's row, locked until the transaction ends (a password change, disable or
        revocation of the same user waits, or is waited for)."""
        ...

    async def lock_signing_in(self, user_id: int) -> tuple[UserCredentials, bool] | None:
        """``lock``, and whether the user has two-factor sign-in on (a confirmed secret),
        in one statement. (Turning two-factor on bumps the credential epoch under this
        lock, so a sign-in that read it off compares epochs and never opens a session.)"""
        ...

    async def set_password_hash(
        self, user_id: int, password_hash: str, changed_at: datetime
    ) -> int:
        """Store a new password's hash and bump the credential epoch; returns the new epoch."""
        ...

    async def upgrade_hash(self, user_id: int, verified_hash: str, new_hash: str) -> bool:
        """Replace ``verified_hash`` by a stronger hash of the same password — only if it is
        still the stored one (a concurrent password change wins). True when written."""
        ...

    async def set_active(self, user_id: int, active: bool) -> int:
        """Enable or disable; disabling bumps the credential epoch. Returns the epoch."""
        ...

    async def bump_epoch(self, user_id: int) -> int:
        """End every session (and sign-in in flight) opened under the current epoch."""
        ...

    async def list(self) -> list[User]: ...


class AccountRows(NamedTuple):
    session: AuthSession
    user: User
    sessions: list[AuthSession]
    """The user's live sessions, newest activity first (``session`` only if live)."""
    mfa_enabled: bool
    recovery_codes_left: int


class SessionReads(Protocol):
    """The session reads a unit of work of one statement offers (each is one statement)."""

    async def find_by_token_hash(self, token_hash: str) -> tuple[AuthSession, User | None] | None:
        """The session whose cookie hashes to ``token_hash``, with its user if any."""
        ...

    async def get_with_user(self, session_id: int) -> tuple[AuthSession, User | None] | None:
        """The session and its user."""
        ...

    async def list_for_user(self, user_id: int, now: datetime) -> list[AuthSession]:
        """The user's live sessions, newest activity first."""
        ...

    async def accounts_of(
        self, session_ids: Collection[int], now: datetime
    ) -> dict[int, AccountRows]:
        """In one read, everything a signed-in account view shows, for each of
        ``session_ids``: the session, its user, the user's live sessions (newest activity
        first), whether two-factor sign-in is on and how many unused recovery codes the
        user holds. An id without a signed-in session (or whose user is gone) is left out."""
        ...


class SessionRepository(SessionReads, Protocol):
    async def add(
        self,
        token_hash: str,
        user_id: int | None,
        now: datetime,
        idle_expires_at: datetime,
        absolute_expires_at: datetime,
        client: ClientInfo,
        revoked: bool = False,
        data: dict[str, Any] | None = None,
        user_epoch: int = 0,
    ) -> AuthSession: ...

    async def get(self, session_id: int) -> AuthSession | None: ...

    async def get_with_user(
        self, session_id: int, *, lock: bool = False
    ) -> tuple[AuthSession, User | None] | None:
        """The session and its user; ``lock`` locks the session row until the transaction
        ends (PostgreSQL; SQLite's write transactions hold the database lock already)."""
        ...

    async def touch(
        self,
        session_id: int,
        last_seen_at: datetime,
        idle_expires_at: datetime,
        now: datetime,
        user_epoch: int,
    ) -> bool:
        """Slide the idle expiry — only while the session may act (live, user active, epoch
        current) and is still on ``user_epoch`` (the renewing view's), in one conditional
        statement. False when it may not."""
        ...

    async def set_token_hash(
        self,
        session_id: int,
        token_hash: str,
        user_epoch: int | None = None,
        *,
        replaced: str | None = None,
        unless_taken: bool = False,
    ) -> bool:
        """``replaced``: the cookie the browser presented to get this one (a ticket's
        bound cookie); the first one recorded stays as ``signed_in_from``.
        ``unless_taken``: change nothing when another session was signed in from
        ``replaced`` already (checked in the same statement). False when nothing changed."""
        ...

    async def get_data_for_update(self, session_id: int) -> dict[str, Any] | None:
        """The session's data ({} when none), the row locked for this transaction."""
        ...

    async def set_data(self, session_id: int, data: dict[str, Any] | None) -> None: ...

    async def revoke(self, session_ids: list[int], now: datetime) -> list[int]:
        """Revoke the live ones among ``session_ids``; return those actually revoked."""
        ...

    async def sign_out(
        self, session_id: int, now: datetime, *, epoch: int | None
    ) -> tuple[AuthSession, str] | None:
        """Revoke one live session — only while it is on ``epoch``, when given — in one
        conditional statement that also names its user: the row as revoked and the user's
        name ("" for an anonymous session), or None when that matched nothing."""
        ...

    async def revoke_one(
        self, session_id: int, now: datetime, *, user_id: int | None
    ) -> AuthSession | None:
        """Revoke one live signed-in session — only if it is ``user_id``'s, when given — in
        one conditional statement (``UPDATE … WHERE id = :id AND user_id = :uid AND
        revoked_at IS NULL``); the row as revoked, or None when that matched nothing."""
        ...

    async def retire_token(self, token_hash: str, now: datetime, expires_at: datetime) -> None:
        """Make ``token_hash`` lead nowhere for good: revoke the row that has it, or record
        it as a revoked anonymous row (kept until ``expires_at``), in one statement."""
        ...

    async def live_ids_for_user(self, user_id: int, now: datetime) -> list[int]: ...

    async def list_live(self, user_id: int | None, now: datetime) -> list[tuple[AuthSession, User]]:
        """Live signed-in sessions, of one user or of everyone, newest activity first."""
        ...

    async def count_live_by_user(self, now: datetime) -> dict[int, int]: ...

    async def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows dead before ``now``; return how many were deleted."""
        ...


class TicketRepository(Protocol):
    async def add(
        self,
        ticket_hash: str,
        session_id: int,
        bound_token_hash: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None: ...

    async def claim(self, ticket_hash: str, now: datetime) -> ClaimedTicket | None:
        """Mark the ticket redeemed (once only) and return what it was issued for."""
        ...

    async def purge_expired(self, now: datetime, limit: int) -> int: ...


class SecretRepository(Protocol):
    async def get(self, name: str) -> str | None: ...

    async def add(self, name: str, value: str) -> bool:
        """Insert unless present; False when another process won the race."""
        ...


class AuditRepository(Protocol):
    async def add(self, event: AuditEvent) -> None: ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events older than ``before``; return how many."""
        ...

    async def list(self, user_id: int | None, limit: int) -> list[AuditEvent]:
        """Newest first; all users when ``user_id`` is None."""
        ...


class ThrottleRepository(Protocol):
    async def get(self, keys: list[str]) -> dict[str, ThrottleState]: ...

    async def lock(self, keys: list[str], now: datetime) -> dict[str, ThrottleState]:
        """The rows of ``keys`` (created when missing), locked until the transaction ends,
        so concurrent reservations on any worker or host count one after another."""
        ...

    async def save(
        self, key: str, failures: int, blocked_until: datetime | None, now: datetime
    ) -> None:
        """Insert or update the row for ``key``."""
        ...

    async def save_all(self, states: dict[str, ThrottleState]) -> None:
        """``save`` each key's state (``updated_at`` as given), in one statement when the
        rows are there (locked by ``lock``)."""
        ...

    async def clear(self, key: str) -> None: ...

    async def settle(self, forget: str, refund: str, threshold: int) -> None:
        """A success: ``forget``'s failures and block are forgotten and one reserved
        attempt is given back to ``refund`` (``ThrottlePolicy.refund``), in place, rows
        locked in key order. A row left with no failures is the purge's to delete."""
        ...

    async def refund(self, key: str, threshold: int) -> None:
        """Give back one reserved attempt (``ThrottlePolicy.refund``), in place: the row
        is deleted when nothing is left to remember."""
        ...

    async def purge(self, idle_since: datetime, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows that hold nothing worth remembering
        (``ThrottlePolicy.forgotten``, with ``idle_since = now - forget_after``): no block
        in force, and no failures, or none since ``idle_since``."""
        ...


class BroadcastRepository(Protocol):
    async def add(self, event: SessionEvent, now: datetime) -> int: ...

    async def add_all(self, events: list[SessionEvent], now: datetime) -> list[int]:
        """``add`` each event, in one statement; their row ids, in the events' order."""
        ...

    async def position(self) -> BroadcastCursor:
        """A cursor past everything committed so far (where a new follower starts)."""
        ...

    async def changes(
        self, cursor: BroadcastCursor
    ) -> tuple[BroadcastCursor, list[tuple[int, SessionEvent]]]:
        """Events committed since ``cursor`` (never one twice, never one skipped, even when
        transactions commit out of id order), and the cursor past them."""
        ...

    async def purge(self, before: datetime, limit: int) -> int: ...


class MfaRepository(Protocol):
    """Two-factor rows: sealed secrets, recovery-code digests, pending second steps.

    Every method that grants something is one conditional statement whose row count
    says whether it did: a step accepted twice, a recovery code spent twice, or a
    challenge settled twice is refused by the database, on any worker or host."""

    async def get(self, user_id: int) -> MfaRecord | None: ...

    async def start(
        self, user_id: int, sealed_secret: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Replace any unconfirmed row of the user by a new pending one; False (nothing
        written) when the user has a confirmed secret."""
        ...

    async def confirm(self, user_id: int, sealed_secret: str, step: int, now: datetime) -> bool:
        """Confirm the pending row that holds ``sealed_secret`` (not expired), accepting
        ``step``; False when there is no such row any more."""
        ...

    async def accept_step(self, user_id: int, step: int) -> bool:
        """``UPDATE … SET last_step = :step WHERE confirmed AND last_step < :step``:
        True for the one caller that moved it."""
        ...

    async def delete(self, user_id: int, *, pending_only: bool = False) -> bool:
        """Remove the user's secret (only an unconfirmed one with ``pending_only``), and
        with a confirmed one its recovery codes and pending second steps."""
        ...

    async def enabled_user_ids(self) -> set[int]: ...

    async def sealed_secrets(self) -> list[tuple[int, str]]:
        """(user id, sealed secret) of every row, pending ones too."""
        ...

    async def replace_sealed(self, user_id: int, old: str, new: str) -> bool:
        """Re-seal, only if ``old`` is still the stored value."""
        ...

    async def add_recovery_codes(self, user_id: int, digests: list[str], now: datetime) -> None:
        """Replace the user's recovery codes by these."""
        ...

    async def spend_recovery_code(self, user_id: int, digest: str, now: datetime) -> bool:
        """``UPDATE … SET used_at = :now WHERE … AND used_at IS NULL``: True once."""
        ...

    async def recovery_codes_left(self, user_id: int) -> int: ...

    async def add_challenge(
        self, challenge_hash: str, challenge: Challenge, now: datetime
    ) -> None: ...

    async def get_challenge(self, challenge_hash: str) -> Challenge | None: ...

    async def take_challenge(self, challenge_hash: str) -> bool:
        """Delete it; True for the one caller that did."""
        ...

    async def drop_challenges(self, user_id: int) -> int: ...

    async def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` expired challenges and expired unconfirmed secrets."""
        ...


class RoleReads(Protocol):
    """The checks' reads a unit of work of one statement offers (each is one statement)."""

    async def patterns_of(self, user_id: int) -> list[str]:
        """Every pattern of every role the user holds."""
        ...

    async def acting_with_patterns(
        self, session_id: int
    ) -> tuple[AuthSession, User | None, list[str]] | None:
        """The session, its user and every pattern of every role that user holds, read
        in one statement (a guarded event's check); None when there is no such session."""
        ...

    async def active_patterns(self, user_id: int) -> list[str] | None:
        """Every pattern of every role the user holds, read in one statement with whether
        the user is active (an HTTP route's check); None for no such user or a disabled
        one."""
        ...


class RoleRepository(RoleReads, Protocol):
    """Roles, the patterns they grant, and who holds them. Grants and revokes are one
    conditional statement each, whose row count says whether anything changed."""

    async def add(self, name: str, description: str, patterns: list[str], now: datetime) -> Role:
        """Insert a role with its patterns; raises ``RoleExists`` when the name is taken."""
        ...

    async def get(self, name: str, *, lock: bool = False) -> Role | None:
        """The role named ``name``; ``lock`` locks its row until the transaction ends (a
        grant of it waits, then finds it gone)."""
        ...

    async def delete(self, role_id: int) -> list[int]:
        """Delete the role, its patterns and its holdings; the ids of the users who held it."""
        ...

    async def grant(self, user_id: int, role_id: int, now: datetime) -> bool:
        """The user holds the role from now; False when they held it already."""
        ...

    async def revoke(self, user_id: int, role_id: int) -> bool:
        """The user holds the role no more; False when they did not hold it."""
        ...

    async def names_by_user(self) -> dict[int, list[str]]:
        """User id → the names of the roles they hold, sorted (users holding none are absent)."""
        ...

    async def list(self) -> list[Role]:
        """Every role, by name, with how many users hold it."""
        ...


class EmailRepository(Protocol):
    """Addresses on users (unique by their key), and the codes mailed to prove them.

    A code is spent by one conditional ``DELETE`` (right digest, not expired, tries
    left): of two workers redeeming it at once, exactly one deletes the row."""

    async def find_user(self, email_key: str) -> User | None: ...

    async def set_email(
        self,
        user_id: int,
        email: str | None,
        email_key: str | None,
        verified_at: datetime | None,
        *,
        signup_expires_at: datetime | None = None,
    ) -> None:
        """Store the user's address (None: remove it); ``EmailTaken`` when another
        account has the key."""
        ...

    async def mark_verified(self, user_id: int, now: datetime) -> bool:
        """The address of an account made by sign-up is verified: it may sign in from now
        on. False when the account is not awaiting verification (any more)."""
        ...

    async def purge_unverified(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` accounts made by sign-up and never verified in time."""
        ...

    async def drop_unverified(self, user_id: int) -> bool:
        """Delete the account if it is one made by sign-up and not verified (a new
        sign-up with its address replaces it); False otherwise."""
        ...

    async def put_code(
        self,
        user_id: int,
        purpose: CodePurpose,
        email: str,
        email_key: str,
        code_digest: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        """Store a new code, replacing the user's previous one for ``purpose``."""
        ...

    async def get_code(self, user_id: int, purpose: CodePurpose) -> EmailCode | None: ...

    async def spend_code(self, code_id: int, code_digest: str, now: datetime, tries: int) -> bool:
        """``DELETE … WHERE id AND digest AND expires_at > now AND tries < :tries``:
        True for the one caller that did."""
        ...

    async def count_wrong(self, code_id: int, tries: int) -> int | None:
        """One more wrong try on the code (while below ``tries``); the count after it,
        or None when the code is gone or void already."""
        ...

    async def drop_codes(self, user_id: int, purpose: CodePurpose | None = None) -> None: ...

    async def purge_codes(self, now: datetime, limit: int) -> int: ...


class RateLimitRepository(Protocol):
    async def hit(self, key: str, now: datetime, window: timedelta) -> tuple[int, datetime]:
        """Count one event for ``key`` in its fixed window (a new window starts when the
        last one ended), in one statement; the count so far and when the window ends."""
        ...

    async def purge(self, now: datetime, limit: int) -> int: ...


class MailOutbox(Protocol):
    """Mails waiting to be sent. A sender claims due rows for a lease (no other sender
    takes them meanwhile), then marks each sent or failed — only under its own claim."""

    async def add(self, mail: OutgoingMail, now: datetime) -> None:
        """Queue ``mail`` with the transaction's other writes. Nothing comes back (no id,
        and no error of its own: the row may be written only with the transaction's next
        statement or its commit, which then fails if the row cannot be)."""

    async def claim_due(
        self, now: datetime, lease: timedelta, claim: str, limit: int
    ) -> list[QueuedMail]: ...

    async def mark_sent(self, mail_id: int, claim: str, now: datetime) -> bool: ...

    async def mark_failed(
        self, mail_id: int, claim: str, error: str, next_attempt_at: datetime
    ) -> bool: ...

    async def next_due(self) -> datetime | None:
        """When the earliest unsent mail is due (or its lease ends), None when none waits."""
        ...

    async def pending(self) -> int: ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows created before ``before`` (sent, or given up)."""
        ...


class Scoped(Protocol):
    """A unit of work's scope: ``async with`` it; it ends its transaction (rolled back
    unless committed) and gives its connection back when the block ends."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UnitOfWork(Scoped, Protocol):
    users: UserRepository
    sessions: SessionRepository
    tickets: TicketRepository
    secrets: SecretRepository
    audit: AuditRepository
    throttle: ThrottleRepository
    broadcasts: BroadcastRepository
    mfa: MfaRepository
    roles: RoleRepository
    emails: EmailRepository
    limits: RateLimitRepository
    outbox: MailOutbox

    async def commit(self) -> None: ...


class OneRead(Scoped, Protocol):
    """A unit of work that reads one statement: the hot reads (a cookie's session, a
    view's re-read, a connect's account, a permission check), each one statement."""

    sessions: SessionReads
    roles: RoleReads


class UnitOfWorkFactory(Protocol):
    @overload
    def __call__(self, *, write: bool = False) -> UnitOfWork: ...

    @overload
    def __call__(self, *, one_statement: Literal[True]) -> OneRead: ...

    def __call__(self, *, write: bool = False, one_statement: bool = False) -> UnitOfWork | OneRead:
        """A unit of work; ``write=True`` takes the write lock up front where that matters.
        ``one_statement=True``: a read that runs exactly one statement, which then needs
        no transaction of its own where that saves work (SQLite: no ``BEGIN`` and no
        ``ROLLBACK``), and none of an ORM session's either; a second statement in it is
        an error."""
        ...
