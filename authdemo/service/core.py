"""What every use case shares: its dependencies, the audit trail, revocation, the
"may this session act" check inside a transaction, and the values the service returns.

Invariants kept here, for every module of the service:
- The audit trail and the logs never hold a name as somebody typed it unless it is a
  user's stored name: other names are kept as a keyed digest (``_shown_name``), since
  people type passwords into the username box.
- A revocation and the broadcast that announces it are written in one transaction
  (``_revoke``): other processes can never miss one that committed.
- ``_acting`` is THE check before a session acts on its own behalf: in the acting
  transaction, with the session row locked, the session may act (``domain.may_act``:
  live, user active, credential epoch current) and it is the one the caller's view
  holds (same epoch). A change that ends access and commits first wins.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..cache import SessionCache
from ..domain import (
    AuditEvent,
    AuditKind,
    AuthSession,
    ClientInfo,
    Clock,
    NotSignedIn,
    SessionPolicy,
    SignedIn,
    ThrottlePolicy,
    UnknownUser,
    User,
    account_key,
    may_act,
    unknown_name,
    username_key,
)
from ..events import EventBus, EventKind, SessionEvent, publish_quietly
from ..mail import EmailPolicy
from ..mfa import SecondFactorPolicy, SecretBox
from ..permissions import PermissionRegistry
from ..ports import UnitOfWork, UnitOfWorkFactory
from ..security import PasswordHasher, TokenCodec

log = logging.getLogger("authdemo.auth")

OPERATOR = ClientInfo("cli", "authdemo command line")
BY_OPERATOR = "operator"
"""Who an operator's change is audited as (``by``): the admin page passes the admin."""
BROADCAST_RETENTION = timedelta(hours=1)
AUDIT_RETENTION = timedelta(days=90)
MAIL_RETENTION = timedelta(days=1)
"""How long outbox rows stay (sent, or still failing: every code in them expired long ago)."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a cookie token amounts to.

    ``token_hash`` is set when the token is one we issued and may keep using
    (anonymous or signed in); ``signed_in`` when it belongs to a session that may act.
    When ``token_hash`` is None the caller issues a new token.
    """

    token_hash: str | None = None
    signed_in: SignedIn | None = None
    anonymous: AuthSession | None = None
    """A live anonymous session row (one exists once its data was first written)."""
    issued_at: datetime | None = None
    """When the (valid) token was minted."""

    @property
    def needs_new_token(self) -> bool:
        return self.token_hash is None

    @property
    def session(self) -> AuthSession | None:
        """The live row behind the cookie, signed in or anonymous."""
        return self.signed_in.session if self.signed_in else self.anonymous


@dataclass(frozen=True)
class LoginResult:
    signed_in: SignedIn
    ticket: str
    """Single-use; the browser redeems it over HTTP to receive the session's cookie."""


@dataclass(frozen=True)
class Rekeyed(LoginResult):
    """This session goes on under a new token and epoch; everything else of the user ended."""

    ended: int = 0
    """How many other sessions ended."""


@dataclass(frozen=True)
class Redemption:
    token: str
    session: AuthSession


@dataclass(frozen=True)
class UserSummary:
    user: User
    live_sessions: int
    mfa: bool = False
    """Two-factor sign-in is on."""
    roles: tuple[str, ...] = ()
    """The names of the roles the user holds, sorted."""


@dataclass(frozen=True)
class PurgeReport:
    sessions: int
    tickets: int
    throttle_rows: int
    broadcasts: int
    audit_events: int
    """Audit rows deleted for being older than the retention (``AUTHDEMO_AUDIT_RETENTION``)."""
    mfa_pending: int = 0
    """Expired second steps and two-factor setups that were never confirmed."""
    unverified_accounts: int = 0
    """Accounts made by sign-up whose address was not confirmed in time."""
    email_codes: int = 0
    """Mailed codes past their expiry."""
    rate_limits: int = 0
    """Limit counters whose window ended."""
    mails: int = 0
    """Outbox rows older than the mail retention (delivered, or given up)."""


class ServiceCore:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        clock: Clock,
        policy: SessionPolicy,
        events: EventBus,
        throttle: ThrottlePolicy | None = None,
        cache: SessionCache | None = None,
        audit_retention: timedelta = AUDIT_RETENTION,
        mfa_box: SecretBox | None = None,
        second_factor: SecondFactorPolicy | None = None,
        issuer: str = "authdemo",
        permissions: PermissionRegistry | None = None,
        email: EmailPolicy | None = None,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self.policy = policy
        self.throttle = throttle or ThrottlePolicy()
        self._events = events
        self._cache = cache
        self._held: OrderedDict[str, None] = OrderedDict()
        """Fresh cookies already announced as held by this process (one write each)."""
        self._follow_keys: OrderedDict[str, None] = OrderedDict()
        """Follows (``follow_key``) answered by this process: one write each."""
        self._follows_by_cookie: OrderedDict[str, int] = OrderedDict()
        """How many follows each fresh cookie answered in this process."""
        self._blocks: OrderedDict[str, datetime] = OrderedDict()
        """Throttle keys this process saw blocked, and until when: refused from memory."""
        self.audit_retention = audit_retention
        self._mfa_box = mfa_box
        """Seals TOTP secrets; None when no ``AUTHDEMO_MFA_KEY`` is configured."""
        self.second_factor = second_factor or SecondFactorPolicy()
        self.issuer = issuer
        """The name authenticator apps show next to the account."""
        self.permissions = permissions or PermissionRegistry()
        """The permissions the app declared (``authdemo:admin`` always among them)."""
        self.email = email or EmailPolicy()

    def now(self) -> datetime:
        return self._clock.now()

    def account_key(self, username: str) -> str:
        """The throttle row that counts sign-ins to ``username`` (a keyed digest)."""
        return account_key(username, self._tokens.name_digest)

    def _shown_name(self, username: str, user: User | None) -> str:
        """How the audit trail and the logs name a sign-in attempt: the user's stored
        name, or for names that are no user's a digest — never the typed text."""
        return (
            user.username if user is not None else unknown_name(username, self._tokens.name_digest)
        )

    async def get_user(self, username: str) -> User:
        key = username_key(username)
        async with self._uow() as tx:
            user = await tx.users.get_by_key(key) if key else None
        if user is None:
            raise UnknownUser(username)
        return user

    async def _acting(
        self,
        tx: UnitOfWork,
        session_id: int,
        now: datetime,
        epoch: int | None,
        *,
        lock_user: bool = False,
    ) -> tuple[AuthSession, User | None]:
        """The session and its user, locked, if it may act (and is still on ``epoch``,
        the one the acting view holds); else ``NotSignedIn``.

        ``lock_user``: the transaction goes on to change the user's sessions, so it locks
        the user row *before* the session row — the one order every transaction that
        locks both keeps (ending access locks the user, then revokes), so none can
        deadlock another."""
        if lock_user:
            peek = await tx.sessions.get(session_id)
            if peek is not None and peek.user_id is not None:
                await tx.users.lock(peek.user_id)
        found = await tx.sessions.get_with_user(session_id, lock=True)
        if found is None or not may_act(found[0], found[1], now):
            raise NotSignedIn()
        if epoch is not None and found[0].user_epoch != epoch:
            raise NotSignedIn()  # a view of this session that a re-key ended
        return found

    async def _revoke(
        self, tx: UnitOfWork, session_ids: list[int], reason: str, user_id: int | None = None
    ) -> SessionEvent | None:
        """Revoke inside ``tx`` and queue the broadcast in the same transaction
        (``user_id``: whose sessions they are, so that their session lists follow)."""
        revoked = await tx.sessions.revoke(session_ids, self.now())
        if not revoked:
            return None
        event = SessionEvent(EventKind.REVOKED, tuple(revoked), reason, user_id=user_id)
        return await self._broadcast(tx, event, self.now())

    async def _broadcast(self, tx: UnitOfWork, event: SessionEvent, now: datetime) -> SessionEvent:
        """Queue ``event`` in ``tx`` (the outbox other processes follow); returns it
        stamped with its row, which is what to publish here after commit."""
        return replace(event, serial=await tx.broadcasts.add(event, now))

    async def _broadcast_all(
        self, tx: UnitOfWork, events: list[SessionEvent], now: datetime
    ) -> list[SessionEvent]:
        """``_broadcast`` several events in one statement."""
        serials = await tx.broadcasts.add_all(events, now)
        return [replace(e, serial=s) for e, s in zip(events, serials, strict=True)]

    async def _revoke_all(self, tx: UnitOfWork, user_id: int, reason: str) -> SessionEvent | None:
        return await self._revoke(
            tx, await tx.sessions.live_ids_for_user(user_id, self.now()), reason, user_id
        )

    async def _published(self, event: SessionEvent | None) -> int:
        """After commit: tell this process's connections at once (others follow the table)."""
        if event is None:
            return 0
        await publish_quietly(self._events, event)
        return len(event.session_ids)

    async def _audit(
        self,
        tx: UnitOfWork,
        kind: AuditKind,
        *,
        user: User | None = None,
        username: str = "",
        user_id: int | None = None,
        session: AuthSession | None = None,
        client: ClientInfo | None = None,
        detail: str = "",
    ) -> None:
        client = client or ClientInfo()
        await tx.audit.add(
            AuditEvent(
                at=self.now(),
                kind=kind,
                username=user.username if user else username,
                session=session.short_id if session else "",
                client_addr=client.addr,
                user_agent=client.user_agent,
                detail=detail,
                user_id=user.id if user else user_id,
            )
        )
