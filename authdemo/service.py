"""The authentication service: plain values in, plain values out, our exceptions only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from .domain import (
    AuthSession,
    ClientInfo,
    Clock,
    InvalidCredentials,
    SessionPolicy,
    SignedIn,
    TicketRejected,
    UnknownUser,
    User,
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


@dataclass(frozen=True)
class Resolution:
    """What a cookie token amounts to.

    ``token_hash`` is set when the token is one we issued and may keep using
    (anonymous or signed in); ``signed_in`` when it belongs to a live session
    of an active user. When ``token_hash`` is None the caller issues a new token.
    """

    token_hash: str | None = None
    signed_in: SignedIn | None = None

    @property
    def needs_new_token(self) -> bool:
        return self.token_hash is None


@dataclass(frozen=True)
class LoginResult:
    signed_in: SignedIn
    ticket: str
    """Single-use; the browser redeems it over HTTP to receive the session's cookie."""


@dataclass(frozen=True)
class Redemption:
    token: str
    session: AuthSession


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
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self.policy = policy
        self._events = events

    def now(self) -> datetime:
        return self._clock.now()

    # --- users ---------------------------------------------------------------------------

    async def create_user(self, username: str, password: str) -> User:
        display, key = normalize_username(username)
        hashed = await self._hasher.hash(check_password_policy(password))
        async with self._uow(write=True) as tx:
            user = await tx.users.add(display, key, hashed, self.now())
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

    async def set_password(self, username: str, password: str) -> User:
        """Operator reset: new hash, and every session of the user ends (live)."""
        user = await self.get_user(username)
        hashed = await self._hasher.hash(check_password_policy(password))
        now = self.now()
        async with self._uow(write=True) as tx:
            await tx.users.set_password_hash(user.id, hashed, changed_at=now)
            live = await tx.sessions.live_ids_for_user(user.id, now)
            revoked = await tx.sessions.revoke(live, now)
            await tx.commit()
        log.info("password set user=%s sessions_revoked=%d", user.username, len(revoked))
        await self._publish_revoked(revoked, "password_changed")
        return user

    async def _publish_revoked(self, session_ids: list[int], reason: str) -> None:
        if session_ids:
            await publish_quietly(
                self._events, SessionEvent(EventKind.REVOKED, tuple(session_ids), reason)
            )

    # --- cookies and sessions ------------------------------------------------------------

    def new_token(self) -> str:
        """A fresh anonymous cookie token. Costs no database write."""
        return self._tokens.mint(self.now())

    async def resolve(self, token: str | None) -> Resolution:
        """Check a cookie token: ours, not expired, not revoked; signed in or anonymous."""
        now = self.now()
        if token is None or not self._tokens.is_genuine(token, now, self.policy.absolute_timeout):
            return Resolution()
        token_hash = hash_token(token)
        async with self._uow() as tx:
            found = await tx.sessions.find_by_token_hash(token_hash)
        if found is None:
            return Resolution(token_hash=token_hash)  # anonymous: no row until needed
        session, user = found
        if not session.is_live(now):
            return Resolution()  # expired or revoked: never adopted
        if user is None:
            return Resolution(token_hash=token_hash)
        if not user.is_active:
            return Resolution()
        return Resolution(token_hash=token_hash, signed_in=SignedIn(session, user))

    async def visit(self, token: str | None) -> Resolution:
        """Resolve a page load's or websocket connect's cookie and slide its idle expiry."""
        resolution = await self.resolve(token)
        if resolution.signed_in is None:
            return resolution
        session = resolution.signed_in.session
        renewed = await self.renew(session)
        if renewed is session:
            return resolution
        return Resolution(resolution.token_hash, replace(resolution.signed_in, session=renewed))

    async def renew(self, session: AuthSession) -> AuthSession:
        """Slide the idle expiry; writes only when less than half the idle window is left."""
        now = self.now()
        if not session.is_live(now) or not session.needs_renewal(now, self.policy):
            return session
        renewed = session.renewed(now, self.policy)
        async with self._uow(write=True) as tx:
            await tx.sessions.touch(session.id, renewed.last_seen_at, renewed.idle_expires_at)
            await tx.commit()
        return renewed

    async def current(self, session_id: int) -> SignedIn | None:
        """Re-read a session: still live, its user still active?"""
        now = self.now()
        async with self._uow() as tx:
            found = await tx.sessions.get_with_user(session_id)
        if found is None:
            return None
        session, user = found
        if user is None or not user.is_active or not session.is_live(now):
            return None
        return SignedIn(session, user)

    # --- login and logout ---------------------------------------------------------------

    async def login(
        self,
        bound_token_hash: str | None,
        username: str,
        password: str,
        client: ClientInfo,
    ) -> LoginResult:
        """Check the password and open a new session.

        The session's cookie does not exist yet: the browser gets it by redeeming the
        returned ticket with the cookie it holds now (``bound_token_hash``), so whoever
        knows the pre-login token never learns the signed-in one.
        """
        user = await self._verify(username, password, client)
        now = self.now()
        ticket = new_ticket()
        async with self._uow(write=True) as tx:
            session = await tx.sessions.add(
                token_hash=unreachable_token_hash(),
                user_id=user.id,
                now=now,
                idle_expires_at=now + self.policy.idle_timeout,
                absolute_expires_at=now + self.policy.absolute_timeout,
                client=client,
            )
            await tx.tickets.add(
                hash_token(ticket), session.id, bound_token_hash, now, now + self.policy.ticket_ttl
            )
            await tx.commit()
        log.info(
            "login ok user=%s session=%s client=%s", user.username, session.short_id, client.addr
        )
        return LoginResult(SignedIn(session, user), ticket)

    async def _verify(self, username: str, password: str, client: ClientInfo) -> User:
        candidate = password_for_verify(password)
        key = username_key(username)
        if candidate is None:
            # Empty or absurdly long: refused before any hashing.
            log.info("login failed (password refused unhashed) client=%s", client.addr)
            raise InvalidCredentials()
        async with self._uow() as tx:
            credentials = await tx.users.get_credentials(key) if key else None
        if credentials is None:
            await self._hasher.dummy_verify(candidate)
            log.info("login failed (no such user) client=%s", client.addr)
            raise InvalidCredentials()
        ok, new_hash = await self._hasher.verify(candidate, credentials.password_hash)
        user = credentials.user
        if not ok or not user.is_active:
            log.info(
                "login failed (%s) user=%s client=%s",
                "disabled" if ok else "wrong password",
                user.username,
                client.addr,
            )
            raise InvalidCredentials()
        if new_hash is not None:
            async with self._uow(write=True) as tx:
                await tx.users.set_password_hash(user.id, new_hash, changed_at=None)
                await tx.commit()
            log.info("password hash upgraded user=%s", user.username)
        return user

    async def redeem_ticket(self, ticket: str, presented_token: str | None) -> Redemption:
        """Swap a ticket for its session's new cookie token. Single use, short-lived, bound.

        Any attempt uses the ticket up, so it cannot be retried with guessed cookies.
        """
        now = self.now()
        presented_hash = hash_token(presented_token) if presented_token else None
        async with self._uow(write=True) as tx:
            claimed = await tx.tickets.claim(hash_token(ticket), now)
            if claimed is None:
                raise TicketRejected("unknown ticket")
            session = await tx.sessions.get(claimed.session_id)
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
            await tx.commit()
        log.info("session rotated session=%s", new_hash[:8])
        await publish_quietly(
            self._events,
            SessionEvent(EventKind.COOKIE_ATTACHED, (session.id,), token_hash=new_hash),
        )
        return Redemption(token, replace(session, token_hash=new_hash))

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

    async def logout(self, session_id: int) -> None:
        """Revoke a session server-side; its cookie is worthless from now on."""
        async with self._uow(write=True) as tx:
            revoked = await tx.sessions.revoke([session_id], self.now())
            session = await tx.sessions.get(session_id)
            await tx.commit()
        if session is not None:
            log.info("logout session=%s", session.short_id)
        await self._publish_revoked(revoked, "logout")


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
