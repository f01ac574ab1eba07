"""The authentication service: plain values in, plain values out, our exceptions only."""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .cache import Found, SessionCache
from .domain import (
    AuditEvent,
    AuditKind,
    AuthSession,
    ClientInfo,
    Clock,
    DuplicateToken,
    InvalidCredentials,
    InvalidSessionData,
    NotSignedIn,
    SessionDataTooLarge,
    SessionPolicy,
    SignedIn,
    Throttled,
    ThrottlePolicy,
    ThrottleState,
    TicketRejected,
    UnknownUser,
    User,
    account_key,
    address_key,
    check_password_policy,
    normalize_username,
    password_for_verify,
    username_key,
)
from .events import EventBus, EventKind, SessionEvent, publish_quietly
from .ports import ClaimedTicket, UnitOfWork, UnitOfWorkFactory
from .security import (
    PasswordHasher,
    TokenCodec,
    hash_token,
    new_secret_key,
    new_ticket,
    unreachable_token_hash,
)

log = logging.getLogger("authdemo.auth")

TOKEN_KEY_NAME = "session_token_key"  # noqa: S105 - a row name, not a secret
OPERATOR = ClientInfo("cli", "authdemo command line")
BROADCAST_RETENTION = timedelta(hours=1)


@dataclass(frozen=True)
class Resolution:
    """What a cookie token amounts to.

    ``token_hash`` is set when the token is one we issued and may keep using
    (anonymous or signed in); ``signed_in`` when it belongs to a live session
    of an active user. When ``token_hash`` is None the caller issues a new token.
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
class Redemption:
    token: str
    session: AuthSession


@dataclass(frozen=True)
class UserSummary:
    user: User
    live_sessions: int


@dataclass(frozen=True)
class PurgeReport:
    sessions: int
    tickets: int
    throttle_rows: int
    broadcasts: int


async def ensure_token_key(uow: UnitOfWorkFactory, configured: bytes | None) -> bytes:
    """The key that signs session tokens: configured, or generated once and kept in the DB."""
    if configured is not None:
        return configured
    async with uow() as tx:
        stored = await tx.secrets.get(TOKEN_KEY_NAME)
    if stored is None:
        async with uow(write=True) as tx:
            await tx.secrets.add(TOKEN_KEY_NAME, new_secret_key().hex())
            stored = await tx.secrets.get(TOKEN_KEY_NAME)
            await tx.commit()
    assert stored is not None
    return bytes.fromhex(stored)


class AuthService:
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
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self.policy = policy
        self.throttle = throttle or ThrottlePolicy()
        self._events = events
        self._cache = cache
        # One sign-in attempt per account at a time in this process: a burst of parallel
        # attempts cannot all pass the throttle check before the first failure is recorded.
        self._account_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def now(self) -> datetime:
        return self._clock.now()

    # --- users ---------------------------------------------------------------------------

    async def create_user(self, username: str, password: str) -> User:
        display, key = normalize_username(username)
        hashed = await self._hasher.hash(check_password_policy(password))
        async with self._uow(write=True) as tx:
            user = await tx.users.add(display, key, hashed, self.now())
            await self._audit(tx, AuditKind.USER_CREATED, user=user, client=OPERATOR)
            await tx.commit()
        log.info("user created user=%s", user.username)
        return user

    async def get_user(self, username: str) -> User:
        key = username_key(username)
        async with self._uow() as tx:
            user = await tx.users.get_by_key(key) if key else None
        if user is None:
            raise UnknownUser(username)
        return user

    async def list_users(self) -> list[UserSummary]:
        async with self._uow() as tx:
            users = await tx.users.list()
            counts = await tx.sessions.count_live_by_user(self.now())
        return [UserSummary(u, counts.get(u.id, 0)) for u in users]

    async def set_password(self, username: str, password: str) -> int:
        """Operator reset: a new hash, and every session of the user ends (live)."""
        user = await self.get_user(username)
        hashed = await self._hasher.hash(check_password_policy(password))
        now = self.now()
        async with self._uow(write=True) as tx:
            await tx.users.set_password_hash(user.id, hashed, changed_at=now)
            event = await self._revoke_all(tx, user.id, "password_changed")
            await self._audit(
                tx, AuditKind.PASSWORD_CHANGED, user=user, client=OPERATOR, detail="by operator"
            )
            await tx.commit()
        log.info("password set user=%s", user.username)
        return await self._published(event)

    async def set_active(self, username: str, active: bool) -> int:
        """Enable or disable an account; disabling ends all its sessions (live)."""
        user = await self.get_user(username)
        async with self._uow(write=True) as tx:
            await tx.users.set_active(user.id, active)
            event = None if active else await self._revoke_all(tx, user.id, "user_disabled")
            kind = AuditKind.USER_ENABLED if active else AuditKind.USER_DISABLED
            await self._audit(tx, kind, user=user, client=OPERATOR)
            await tx.commit()
        log.info("%s user=%s", kind, user.username)
        return await self._published(event)

    # --- cookies and sessions ------------------------------------------------------------

    def new_token(self) -> str:
        """A fresh anonymous cookie token. Costs no database write."""
        return self._tokens.mint(self.now())

    async def resolve(self, token: str | None) -> Resolution:
        """Check a cookie token: ours, not expired, not revoked; signed in or anonymous."""
        return await self._resolve(token, self.now())

    async def _resolve(self, token: str | None, now: datetime) -> Resolution:
        issued = (
            self._tokens.valid_since(token, now, self.policy.absolute_timeout) if token else None
        )
        if token is None or issued is None:
            return Resolution()
        token_hash = hash_token(token)
        hit, found = self._cached(token_hash, now)
        if not hit:
            found = await self._fetch(token_hash)
        if found is None:  # anonymous: no row until its data is first written
            return Resolution(token_hash=token_hash, issued_at=issued)
        session, user = found
        if not session.is_live(now):
            return Resolution()  # expired or revoked: never adopted
        if user is None:
            return Resolution(token_hash=token_hash, anonymous=session, issued_at=issued)
        if not user.is_active:
            return Resolution()
        return Resolution(token_hash, SignedIn(session, user), issued_at=issued)

    def _cached(self, token_hash: str, now: datetime) -> tuple[bool, Found]:
        """(True, row behind a cookie) when the cache has a usable answer."""
        if self._cache is None:
            return False, None
        hit, found = self._cache.get(token_hash)
        # A cached row that looks dead may have been renewed by another process.
        if hit and (found is None or found[0].is_live(now)):
            return True, found
        return False, None

    async def _fetch(self, token_hash: str) -> Found:
        async with self._uow() as tx:
            found = await tx.sessions.find_by_token_hash(token_hash)
        if self._cache is not None:
            self._cache.put(token_hash, found)
        return found

    async def visit(self, token: str | None) -> Resolution:
        """Resolve a page load's or websocket connect's cookie and slide its idle expiry."""
        now = self.now()
        resolution = await self._resolve(token, now)
        session = resolution.session
        if session is None or not session.needs_renewal(now, self.policy):
            return resolution
        renewed = await self.renew(session)
        if renewed is session:
            return resolution
        if resolution.signed_in is None:
            return replace(resolution, anonymous=renewed)
        return replace(resolution, signed_in=replace(resolution.signed_in, session=renewed))

    async def renew(self, session: AuthSession) -> AuthSession:
        """Slide the idle expiry; writes only when less than half the idle window is left."""
        now = self.now()
        if not session.is_live(now) or not session.needs_renewal(now, self.policy):
            return session
        renewed = session.renewed(now, self.policy)
        async with self._uow(write=True) as tx:
            await tx.sessions.touch(session.id, renewed.last_seen_at, renewed.idle_expires_at)
            await tx.commit()
        if self._cache is not None:
            self._cache.update(renewed)
        return renewed

    async def current(self, session_id: int) -> SignedIn | None:
        """Re-read a signed-in session: still live, its user still active?"""
        found = await self.live_session(session_id)
        if found is None or found[1] is None:
            return None
        return SignedIn(found[0], found[1])

    async def live_session(self, session_id: int) -> tuple[AuthSession, User | None] | None:
        """Re-read any session row (anonymous ones have no user); None once it ended."""
        now = self.now()
        async with self._uow() as tx:
            found = await tx.sessions.get_with_user(session_id)
        if found is None or not found[0].is_live(now):
            return None
        session, user = found
        if user is not None and not user.is_active:
            return None
        return session, user

    # --- session data -----------------------------------------------------------------

    async def open_anonymous_session(
        self, cookie_token_hash: str | None, cookie_issued_at: datetime | None, client: ClientInfo
    ) -> tuple[AuthSession, str | None]:
        """A row for an anonymous visitor's data, created on the first write.

        When the browser holds a valid anonymous cookie the row takes its token, so no
        cookie has to change. Otherwise (no cookie, or a dead one) the row gets a new
        token that the browser picks up through a ticket, returned as the second value.
        """
        now = self.now()
        absolute = now + self.policy.absolute_timeout
        if cookie_token_hash is not None and cookie_issued_at is not None:
            absolute = min(absolute, cookie_issued_at + self.policy.absolute_timeout)
            try:
                async with self._uow(write=True) as tx:
                    session = await tx.sessions.add(
                        cookie_token_hash,
                        None,
                        now,
                        min(now + self.policy.idle_timeout, absolute),
                        absolute,
                        client,
                    )
                    event = SessionEvent(
                        EventKind.SESSION_OPENED, (session.id,), token_hash=cookie_token_hash
                    )
                    await tx.broadcasts.add(event, now)
                    await tx.commit()
                await publish_quietly(self._events, event)  # other tabs with this cookie
                return session, None
            except DuplicateToken:  # another tab was first, or the token is dead
                async with self._uow() as tx:
                    found = await tx.sessions.find_by_token_hash(cookie_token_hash)
                if found is not None and found[1] is None and found[0].is_live(now):
                    return found[0], None
        ticket = new_ticket()
        async with self._uow(write=True) as tx:
            session = await tx.sessions.add(
                unreachable_token_hash(),
                None,
                now,
                min(now + self.policy.idle_timeout, absolute),
                absolute,
                client,
            )
            await tx.tickets.add(
                hash_token(ticket), session.id, cookie_token_hash, now, now + self.policy.ticket_ttl
            )
            await tx.commit()
        return session, ticket

    async def change_session_data(
        self,
        session_id: int,
        values: Mapping[str, Any],
        deletions: Iterable[str] = (),
        origin: str = "",
    ) -> AuthSession:
        """Set and delete keys in one small write; every open view of the session hears of it.

        Raises ``InvalidSessionData`` for values JSON cannot hold, ``SessionDataTooLarge``
        past the size cap, ``NotSignedIn`` when the session has ended.
        """
        for key in [*values, *deletions]:
            if not isinstance(key, str):
                raise InvalidSessionData(f"Session data keys must be strings, not {key!r}.")
        now = self.now()
        async with self._uow(write=True) as tx:
            session = await tx.sessions.get(session_id)
            if session is None or not session.is_live(now):
                raise NotSignedIn()
            data = await tx.sessions.get_data_for_update(session_id) or {}
            data.update(values)
            for key in deletions:
                data.pop(key, None)
            try:
                size = len(json.dumps(data, separators=(",", ":"), allow_nan=False).encode())
            except (TypeError, ValueError) as error:
                raise InvalidSessionData(f"Session data must be JSON: {error}") from None
            if size > self.policy.data_max_bytes:
                raise SessionDataTooLarge(size, self.policy.data_max_bytes)
            await tx.sessions.set_data(session_id, data or None)
            event = SessionEvent(EventKind.DATA_CHANGED, (session_id,), origin=origin)
            await tx.broadcasts.add(event, now)
            await tx.commit()
        await publish_quietly(self._events, event)
        return replace(session, data=data)

    async def note_expired(self, session: AuthSession, user: User) -> None:
        """Record in the audit trail that an open view saw its session time out."""
        async with self._uow(write=True) as tx:
            await self._audit(tx, AuditKind.EXPIRED, user=user, session=session)
            await tx.commit()
        log.info("session expired session=%s", session.short_id)

    # --- login and logout ---------------------------------------------------------------

    async def login(
        self,
        bound_token_hash: str | None,
        username: str,
        password: str,
        client: ClientInfo,
        carry_from: int | None = None,
    ) -> LoginResult:
        """Check the password and open a new session.

        The session's cookie does not exist yet: the browser gets it by redeeming the
        returned ticket with the cookie it holds now (``bound_token_hash``), so whoever
        knows the pre-login token never learns the signed-in one. The data of the
        anonymous session ``carry_from`` (if any) moves over, as Django's ``cycle_key``.
        """
        user = await self._verify(username, password, client)
        now = self.now()
        ticket = new_ticket()
        async with self._uow(write=True) as tx:
            data = None
            if carry_from is not None:
                before = await tx.sessions.get(carry_from)
                if before is not None and before.user_id is None and before.is_live(now):
                    data = await tx.sessions.get_data_for_update(carry_from) or None
            session = await tx.sessions.add(
                token_hash=unreachable_token_hash(),
                user_id=user.id,
                now=now,
                idle_expires_at=now + self.policy.idle_timeout,
                absolute_expires_at=now + self.policy.absolute_timeout,
                client=client,
                data=data,
            )
            await tx.tickets.add(
                hash_token(ticket), session.id, bound_token_hash, now, now + self.policy.ticket_ttl
            )
            await self._audit(tx, AuditKind.LOGIN_OK, user=user, session=session, client=client)
            await tx.commit()
        if self._cache is not None:
            self._cache.forget_user(user.id)  # its session list gained one
        log.info(
            "login ok user=%s session=%s client=%s", user.username, session.short_id, client.addr
        )
        return LoginResult(SignedIn(session, user), ticket)

    async def _verify(self, username: str, password: str, client: ClientInfo) -> User:
        """The user whose password this is, or ``InvalidCredentials``/``Throttled``.

        Throttling is checked before any hashing; unknown usernames cost a dummy verify.
        """
        keys = (account_key(username), address_key(client.addr))
        lock = self._account_locks.get(keys[0])
        if lock is None:
            lock = self._account_locks[keys[0]] = asyncio.Lock()
        async with lock:
            throttled = await self._check_throttle(keys, username, client)
            candidate = password_for_verify(password)
            key = username_key(username)
            credentials = None
            if candidate is not None and key is not None:
                async with self._uow() as tx:
                    credentials = await tx.users.get_credentials(key)
            if candidate is None:
                reason = "password refused unhashed"  # empty, or absurdly long
            elif credentials is None:
                await self._hasher.dummy_verify(candidate)
                reason = "no such user"
            else:
                ok, new_hash = await self._hasher.verify(candidate, credentials.password_hash)
                if ok and credentials.user.is_active:
                    if keys[0] in throttled or new_hash is not None:  # else nothing to write
                        await self._login_succeeded(keys[0], credentials.user, new_hash)
                    return credentials.user
                reason = "account disabled" if ok else "wrong password"
            known = credentials.user if credentials is not None else None
            await self._login_failed(keys, username, known, client, reason)
        raise InvalidCredentials()

    async def _check_throttle(
        self, keys: tuple[str, str], username: str, client: ClientInfo
    ) -> set[str]:
        """Refuse (``Throttled``) while a block lasts; return the keys that have rows."""
        now = self.now()
        async with self._uow() as tx:
            states = await tx.throttle.get(list(keys))
        blocked = [
            s.blocked_until for s in states.values() if s.blocked_until and s.blocked_until > now
        ]
        if blocked:
            log.debug("login refused (throttled) client=%s", client.addr)
            raise Throttled(max(blocked) - now)
        return set(states)

    async def _login_succeeded(self, account: str, user: User, new_hash: str | None) -> None:
        async with self._uow(write=True) as tx:
            await tx.throttle.clear(account)
            if new_hash is not None:
                await tx.users.set_password_hash(user.id, new_hash, changed_at=None)
                log.info("password hash upgraded user=%s", user.username)
            await tx.commit()

    async def _login_failed(
        self,
        keys: tuple[str, str],
        username: str,
        user: User | None,
        client: ClientInfo,
        reason: str,
    ) -> None:
        now = self.now()
        policy = self.throttle
        blocks: list[timedelta] = []
        async with self._uow(write=True) as tx:
            states = await tx.throttle.get(list(keys))
            for key, threshold in zip(
                keys, (policy.account_threshold, policy.address_threshold), strict=True
            ):
                state = states.get(key)
                if state is None or now - state.updated_at > policy.forget_after:
                    state = ThrottleState(0, None, now)
                failures = state.failures + 1
                block = policy.block_for(failures, threshold)
                await tx.throttle.save(key, failures, now + block if block else None, now)
                if block:
                    blocks.append(block)
            await self._audit(
                tx,
                AuditKind.LOGIN_FAILED,
                user=user,
                username=username,
                client=client,
                detail=reason,
            )
            if blocks:
                await self._audit(
                    tx,
                    AuditKind.THROTTLED,
                    user=user,
                    username=username,
                    client=client,
                    detail=f"blocked for {int(max(blocks).total_seconds())} s",
                )
            await tx.commit()
        log.info("login failed (%s) user=%s client=%s", reason, username[:64], client.addr)

    async def redeem_ticket(
        self, ticket: str, presented_token: str | None, client: ClientInfo | None = None
    ) -> Redemption:
        """Swap a ticket for its session's new cookie token. Single use, short-lived, bound.

        Any attempt uses the ticket up, so it cannot be retried with guessed cookies.
        """
        now = self.now()
        presented_hash = hash_token(presented_token) if presented_token else None
        async with self._uow(write=True) as tx:
            claimed = await tx.tickets.claim(hash_token(ticket), now)
            if claimed is None:
                raise TicketRejected("unknown ticket")
            found = await tx.sessions.get_with_user(claimed.session_id)
            session, owner = found if found is not None else (None, None)
            problem = _ticket_problem(claimed, session, presented_hash, now)
            if problem is not None or session is None:
                await tx.commit()  # the claim sticks: a rejected ticket is used up too
                log.warning("ticket rejected: %s", problem)
                raise TicketRejected(problem or "session ended")
            token = self._tokens.mint(now)
            new_hash = hash_token(token)
            await tx.sessions.set_token_hash(session.id, new_hash)
            if claimed.bound_token_hash is not None:
                await self._retire_token(tx, claimed.bound_token_hash, now)
            rotated = replace(session, token_hash=new_hash)
            await self._audit(
                tx,
                AuditKind.ROTATED,
                user=owner,
                session=rotated,
                client=client or ClientInfo(),
                detail=f"was {session.short_id}",  # links the login_ok row to this session
            )
            event = SessionEvent(EventKind.COOKIE_ATTACHED, (session.id,), token_hash=new_hash)
            await tx.broadcasts.add(event, now)
            retired = None
            if claimed.bound_token_hash is not None:
                retired = SessionEvent(
                    EventKind.TOKEN_RETIRED, (), token_hash=claimed.bound_token_hash
                )
                await tx.broadcasts.add(retired, now)
            await tx.commit()
        log.info("session rotated session=%s", rotated.short_id)
        await publish_quietly(self._events, event)
        if retired is not None:
            await publish_quietly(self._events, retired)
        return Redemption(token, rotated)

    async def _retire_token(self, tx: UnitOfWork, token_hash: str, now: datetime) -> None:
        """Make a pre-login token worthless: revoke its row, or record it as revoked."""
        found = await tx.sessions.find_by_token_hash(token_hash)
        if found is not None:
            await tx.sessions.revoke([found[0].id], now)
        else:
            await tx.sessions.add(
                token_hash=token_hash,
                user_id=None,
                now=now,
                idle_expires_at=now + self.policy.absolute_timeout,
                absolute_expires_at=now + self.policy.absolute_timeout,
                client=ClientInfo(),
                revoked=True,
            )

    async def logout(self, session_id: int, client: ClientInfo | None = None) -> AuthSession | None:
        """Revoke a session server-side; its cookie is worthless from now on.

        Returns the session as it was stored (its ``token_hash`` is the cookie the browser
        was given for it, if a ticket was redeemed)."""
        async with self._uow(write=True) as tx:
            event = await self._revoke(tx, [session_id], "logout")
            found = await tx.sessions.get_with_user(session_id)
            if event is not None and found is not None:
                await self._audit(
                    tx, AuditKind.LOGOUT, user=found[1], session=found[0], client=client
                )
            await tx.commit()
        if found is not None:
            log.info("logout session=%s", found[0].short_id)
        await self._published(event)
        return found[0] if found is not None else None

    # --- account self-service -------------------------------------------------------------

    async def change_password(
        self,
        session_id: int,
        current_password: str,
        new_password: str,
        bound_token_hash: str | None,
        client: ClientInfo,
    ) -> LoginResult:
        """Change the signed-in user's password.

        Needs the current password (throttled like a sign-in). Every other session of
        the user ends, live; this session keeps going under a new token, handed to the
        browser through a ticket bound to the cookie it holds now.
        """
        signed_in = await self.current(session_id)
        if signed_in is None:
            raise NotSignedIn()
        hashed_new = check_password_policy(new_password)  # refuse before any hashing
        user = await self._verify(signed_in.user.username, current_password, client)
        if user.id != signed_in.user.id:  # pragma: no cover - same username, same user
            raise InvalidCredentials()
        hashed = await self._hasher.hash(hashed_new)
        now = self.now()
        ticket = new_ticket()
        async with self._uow(write=True) as tx:
            await tx.users.set_password_hash(user.id, hashed, changed_at=now)
            others = [
                i for i in await tx.sessions.live_ids_for_user(user.id, now) if i != session_id
            ]
            event = await self._revoke(tx, others, "password_changed")
            await tx.sessions.set_token_hash(session_id, unreachable_token_hash())
            retired = SessionEvent(EventKind.TOKEN_RETIRED, (session_id,))
            await tx.broadcasts.add(retired, now)
            await tx.tickets.add(
                hash_token(ticket), session_id, bound_token_hash, now, now + self.policy.ticket_ttl
            )
            await self._audit(
                tx,
                AuditKind.PASSWORD_CHANGED,
                user=user,
                session=signed_in.session,
                client=client,
                detail=f"{len(others)} other session(s) ended",
            )
            await tx.commit()
        log.info("password changed user=%s", user.username)
        await publish_quietly(self._events, retired)
        await self._published(event)
        current = await self.current(session_id)
        assert current is not None
        return LoginResult(current, ticket)

    async def sessions_of(self, user_id: int) -> list[AuthSession]:
        """The user's live sessions, most recently active first (briefly cached)."""
        now = self.now()
        if self._cache is not None:
            cached = self._cache.user_sessions(user_id)
            if cached is not None and all(s.is_live(now) for s in cached):
                return cached
        async with self._uow() as tx:
            sessions = await tx.sessions.list_for_user(user_id, now)
        if self._cache is not None:
            self._cache.put_user_sessions(user_id, sessions)
        return sessions

    async def revoke_other_sessions(self, session_id: int, client: ClientInfo) -> int:
        """ "Sign out other sessions": every live session of this user but this one."""
        signed_in = await self.current(session_id)
        if signed_in is None:
            raise NotSignedIn()
        now = self.now()
        async with self._uow(write=True) as tx:
            ids = await tx.sessions.live_ids_for_user(signed_in.user.id, now)
            event = await self._revoke(
                tx, [i for i in ids if i != session_id], "signed_out_elsewhere"
            )
            if event is not None:
                await self._audit(
                    tx,
                    AuditKind.REVOKED,
                    user=signed_in.user,
                    session=signed_in.session,
                    client=client,
                    detail=f"{len(event.session_ids)} other session(s)",
                )
            await tx.commit()
        return await self._published(event)

    # --- operators -------------------------------------------------------------------------

    async def live_sessions(self, username: str | None) -> list[tuple[AuthSession, User]]:
        user_id = (await self.get_user(username)).id if username is not None else None
        async with self._uow() as tx:
            return await tx.sessions.list_live(user_id, self.now())

    async def revoke_user_sessions(self, username: str) -> int:
        user = await self.get_user(username)
        async with self._uow(write=True) as tx:
            event = await self._revoke_all(tx, user.id, "revoked")
            if event is not None:
                await self._audit(
                    tx,
                    AuditKind.REVOKED,
                    user=user,
                    client=OPERATOR,
                    detail=f"{len(event.session_ids)} session(s) by operator",
                )
            await tx.commit()
        return await self._published(event)

    async def audit_events(self, username: str | None, limit: int) -> list[AuditEvent]:
        user_id = (await self.get_user(username)).id if username is not None else None
        async with self._uow() as tx:
            return await tx.audit.list(user_id, limit)

    async def purge_expired(self, batch: int = 1000, pause: float = 0.0) -> PurgeReport:
        """Delete what can never be used again, in small transactions (safe while serving):
        dead sessions, old tickets, forgotten throttle rows, delivered broadcasts."""
        now = self.now

        async def tickets(tx: UnitOfWork) -> int:
            return await tx.tickets.purge_expired(now(), batch)

        async def sessions(tx: UnitOfWork) -> int:
            return await tx.sessions.purge_expired(now(), batch)

        async def throttle_rows(tx: UnitOfWork) -> int:
            return await tx.throttle.purge(now() - self.throttle.forget_after, now(), batch)

        async def broadcasts(tx: UnitOfWork) -> int:
            return await tx.broadcasts.purge(now() - BROADCAST_RETENTION, batch)

        totals: dict[str, int] = {}
        for step in (tickets, sessions, throttle_rows, broadcasts):
            totals[step.__name__] = 0
            while True:
                async with self._uow(write=True) as tx:
                    deleted = await step(tx)
                    await tx.commit()
                totals[step.__name__] += deleted
                if deleted < batch:
                    break
                await asyncio.sleep(pause)  # let other writers in between batches
        log.info("purged %s", totals)
        return PurgeReport(**totals)

    # --- helpers -----------------------------------------------------------------------------

    async def _revoke(
        self, tx: UnitOfWork, session_ids: list[int], reason: str
    ) -> SessionEvent | None:
        """Revoke inside ``tx`` and queue the broadcast in the same transaction."""
        revoked = await tx.sessions.revoke(session_ids, self.now())
        if not revoked:
            return None
        event = SessionEvent(EventKind.REVOKED, tuple(revoked), reason)
        await tx.broadcasts.add(event, self.now())
        return event

    async def _revoke_all(self, tx: UnitOfWork, user_id: int, reason: str) -> SessionEvent | None:
        return await self._revoke(
            tx, await tx.sessions.live_ids_for_user(user_id, self.now()), reason
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
        user_id: int | None = None,
        username: str = "",
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


def _ticket_problem(
    claimed: ClaimedTicket, session: AuthSession | None, presented_hash: str | None, now: datetime
) -> str | None:
    """Why a claimed ticket must not hand out its cookie, or None when it may."""
    if claimed.already_redeemed:
        return "already used"
    if now >= claimed.expires_at:
        return "expired"
    if claimed.bound_token_hash is not None and presented_hash != claimed.bound_token_hash:
        return "presented with another cookie"
    if session is None or not session.is_live(now):
        return "session ended"
    return None
