"""Signing in: throttled password checks, opening a session, handing over its cookie.

Invariants:
- Throttling holds under any concurrency: every attempt is *reserved* (counted) in one
  write transaction, with the throttle rows locked, before its password is hashed; a
  success gives the reservation back. So at most the configured number of hashes run
  per account (and per address) in a window, on any number of workers and hosts.
- A sign-in opens a session only under the credentials it verified: the transaction
  that opens it locks the user row and checks that the user is still active and on the
  same credential epoch. A password change, disable or "end all sessions" that
  commits in between makes the sign-in fail; one that commits after revokes the new
  session (and its epoch no longer matches in any case).
- A hash upgrade is written only where the stored hash is still the one verified, so
  a sign-in with the old password can never write it back over a new one.
- What the database refuses to record (``StorageRefused``) makes the sign-in fail with
  the generic refusal, never a raw error; and since the reservation is written first,
  no password is ever hashed without its attempt counted. Names that are no user's are
  audited and logged as a keyed digest (``ServiceCore._shown_name``), never as typed.
- A correct password for an account with two-factor sign-in opens nothing: it leaves a
  challenge bound to the browser's cookie and the user's credential epoch, which only
  an accepted code turns into a session (``service.mfa``).
- Every ticket is bound to the cookie the browser presented when it was issued, and is
  redeemed only with that cookie, once, in time, for a session that may act. A browser
  that presented no cookie at all cannot be bound, so it cannot sign in (it is told to
  reload, which gives it a cookie). The first redemption records the bound cookie as
  the session's ``signed_in_from``: the browser's other tabs, which knew it by that
  cookie, may follow it in, and only with proof (``service.follow``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..domain import (
    AuditKind,
    AuthSession,
    ClientInfo,
    CookieRequired,
    InvalidCredentials,
    SecondFactorRequired,
    SignedIn,
    StorageRefused,
    Throttled,
    ThrottleState,
    TicketRejected,
    User,
    UserCredentials,
    address_key,
    may_act,
    password_for_verify,
    username_key,
)
from ..events import EventKind, SessionEvent, publish_quietly
from ..mfa import Challenge
from ..ports import ClaimedTicket, UnitOfWork
from ..security import hash_token, new_ticket, unreachable_token_hash
from .core import LoginResult, Redemption
from .sessions import Sessions

log = logging.getLogger("authdemo.auth")

_BLOCKS_KEPT = 10_000
"""How many blocked throttle keys a process remembers (the oldest go first)."""


@dataclass(frozen=True)
class Verified:
    """A password that checked out, and what it was checked against."""

    user: User
    """As read before hashing: its ``credential_epoch`` is the one the password is for."""
    password_hash: str
    new_hash: str | None
    """A stronger hash of the same password, when the stored one is outdated."""
    keys: tuple[str, str]
    """The throttle keys (account, address) whose reservation a success gives back."""


@dataclass(frozen=True)
class _Reservation:
    keys: tuple[str, str]
    block: timedelta | None
    """The back-off this attempt started, if it reached a threshold."""


class SignIn(Sessions):
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
        Raises ``CookieRequired`` (no cookie to bind to), ``InvalidCredentials``,
        ``Throttled``; and for an account with two-factor sign-in, after a correct
        password, ``SecondFactorRequired`` with the challenge that
        ``verify_second_factor`` settles (no session exists until then).
        """
        if bound_token_hash is None:
            raise CookieRequired()
        try:
            return await self._sign_in(bound_token_hash, username, password, client, carry_from)
        except StorageRefused:
            # The database refused to record something (see ``_verify`` for why no hash
            # ever runs unrecorded): the visitor gets the same answer as any failure.
            log.warning("login refused: the database refused to record it")
            raise InvalidCredentials() from None

    async def _sign_in(
        self,
        bound_token_hash: str,
        username: str,
        password: str,
        client: ClientInfo,
        carry_from: int | None,
    ) -> LoginResult:
        verified = await self._verify(username, password, client)
        now = self.now()
        async with self._uow(write=True) as tx:
            locked = await tx.users.lock_signing_in(verified.user.id)
            user = await self._settled(tx, verified, locked[0] if locked else None)
            if user is None:
                await self._audit(
                    tx,
                    AuditKind.LOGIN_FAILED,
                    user=verified.user,
                    client=client,
                    detail="credentials changed during sign-in",
                )
                await tx.commit()
                log.info("login refused: credentials changed user=%s", verified.user.username)
                raise InvalidCredentials()
            if locked is not None and locked[1]:  # two-factor sign-in is on
                # Nothing opens yet: the code settles a challenge bound to this cookie.
                challenge = new_ticket()
                expires_at = now + self.second_factor.challenge_ttl
                await tx.mfa.add_challenge(
                    hash_token(challenge),
                    Challenge(
                        user.id, user.credential_epoch, bound_token_hash, carry_from, expires_at
                    ),
                    now,
                )
                await self._audit(tx, AuditKind.MFA_REQUIRED, user=user, client=client)
                await self._give_back(tx, verified)
                await tx.commit()
                log.info("password ok, code required user=%s", user.username)
                raise SecondFactorRequired(challenge, expires_at)
            result = await self._open_session(tx, user, bound_token_hash, carry_from, client, now)
            await self._give_back(tx, verified)
            await tx.commit()
        log.info(
            "login ok user=%s session=%s client=%s",
            user.username,
            result.signed_in.session.short_id,
            client.addr,
        )
        return result

    async def _open_session(
        self,
        tx: UnitOfWork,
        user: User,
        bound_token_hash: str,
        carry_from: int | None,
        client: ClientInfo,
        now: datetime,
    ) -> LoginResult:
        """Inside the write that settled the sign-in: the new session (its cookie handed
        over by a ticket bound to ``bound_token_hash``), audited. Nothing is broadcast
        yet: the redemption that gives a browser its cookie announces it (``SIGNED_IN``),
        in the statement that broadcasts its other news."""
        ticket = new_ticket()
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
            user_epoch=user.credential_epoch,
        )
        await tx.tickets.add(
            hash_token(ticket), session.id, bound_token_hash, now, now + self.policy.ticket_ttl
        )
        await self._audit(tx, AuditKind.LOGIN_OK, user=user, session=session, client=client)
        return LoginResult(SignedIn(session, user), ticket)

    async def _verify(self, username: str, password: str, client: ClientInfo) -> Verified:
        """The user whose password this is, or ``InvalidCredentials``/``Throttled``.

        The attempt is reserved before any hashing; unknown usernames cost a dummy
        verify. The caller settles a success inside its own write (``_settle``). A
        reservation the database refuses (``StorageRefused``) stops the attempt before
        any hashing: no password is ever checked without its attempt counted first.
        """
        keys = (self.account_key(username), address_key(client.addr))
        self._refuse_if_known_blocked(keys, self.now())  # a blocked flood costs no query
        candidate = password_for_verify(password)
        key = username_key(username) if candidate is not None else None
        reservation, credentials = await self._reserve(keys, key)
        if candidate is None:
            reason = "password refused unhashed"  # empty, or absurdly long
        elif credentials is None:
            await self._hasher.dummy_verify(candidate)
            reason = "no such user"
        else:
            ok, new_hash = await self._hasher.verify(candidate, credentials.password_hash)
            if ok and credentials.user.is_active:
                return Verified(
                    credentials.user, credentials.password_hash, new_hash, reservation.keys
                )
            reason = "account disabled" if ok else "wrong password"
        known = credentials.user if credentials is not None else None
        await self._login_failed(reservation, username, known, client, reason)
        raise InvalidCredentials()

    async def _reserve(
        self, keys: tuple[str, str], key: str | None
    ) -> tuple[_Reservation, UserCredentials | None]:
        """Count this attempt for the account and the address, or refuse it (``Throttled``)
        while a block lasts — before any hashing; with the credentials of the user whose
        ``username_key`` is ``key``, read in the same transaction. (A block is remembered
        by this process once seen, so a blocked flood does not take the write lock.)"""
        now = self.now()
        policy = self.throttle
        thresholds = (policy.account_threshold, policy.address_threshold)
        async with self._uow(write=True) as tx:
            # Read before the rows are locked (the shared address row is held for two
            # statements only): ``_settle`` re-checks it under the user's lock (epoch
            # and active), so nothing here can go stale unnoticed.
            credentials = await tx.users.get_credentials(key) if key is not None else None
            states = await tx.throttle.lock(list(keys), now)
            self._refuse_if_blocked(states, now)
            blocks: list[timedelta] = []
            counted: dict[str, ThrottleState] = {}
            for key, threshold in zip(keys, thresholds, strict=True):
                reserved = policy.reserve(states.get(key), threshold, now)
                assert reserved is not None  # not blocked: checked above, under the lock
                counted[key] = reserved  # updated_at: now
                if reserved.blocked_until is not None:
                    blocks.append(reserved.blocked_until - now)
            await tx.throttle.save_all(counted)
            await tx.commit()
        self._remember_blocks({k: s.blocked_until for k, s in counted.items()}, now)
        return _Reservation(keys, max(blocks) if blocks else None), credentials

    def _refuse_if_blocked(self, states: dict[str, ThrottleState], now: datetime) -> None:
        self._remember_blocks({k: s.blocked_until for k, s in states.items()}, now)
        self._refuse_if_known_blocked(tuple(states), now)

    def _refuse_if_known_blocked(self, keys: tuple[str, ...], now: datetime) -> None:
        """``Throttled`` while this process knows of a block on one of ``keys``.

        Blocks only end by themselves, except when a success that was reserved before
        one began gives its attempt back: this process then forgets its keys
        (``_give_back``), another one refuses them from memory until the block would
        have ended. Never the other way round: a block this process has not seen yet
        is refused under the lock when the attempt is reserved."""
        blocked = [b for k in keys if (b := self._blocks.get(k)) is not None and b > now]
        if blocked:
            log.debug("login refused (throttled)")
            raise Throttled(max(blocked) - now)

    def _remember_blocks(self, blocks: dict[str, datetime | None], now: datetime) -> None:
        for key, until in blocks.items():
            if until is not None and until > now:
                self._blocks[key] = until
                self._blocks.move_to_end(key)
            else:
                self._blocks.pop(key, None)
        while len(self._blocks) > _BLOCKS_KEPT:
            self._blocks.popitem(last=False)

    async def _settle(self, tx: UnitOfWork, verified: Verified) -> User | None:
        """Inside the write that acts on a verified password: the user (locked) if still
        active and on the epoch the password was verified for, else None. On success
        an outdated hash is upgraded and the attempt's reservation given back."""
        user = await self._settled(tx, verified, await tx.users.lock(verified.user.id))
        if user is not None:
            await self._give_back(tx, verified)
        return user

    async def _settled(
        self, tx: UnitOfWork, verified: Verified, locked: UserCredentials | None
    ) -> User | None:
        """``_settle`` for a user the caller locked, without the give-back: a sign-in
        calls ``_give_back`` last, just before its commit."""
        if (
            locked is None
            or not locked.user.is_active
            or locked.user.credential_epoch != verified.user.credential_epoch
        ):
            return None
        if verified.new_hash is not None and await tx.users.upgrade_hash(
            locked.user.id, verified.password_hash, verified.new_hash
        ):
            log.info("password hash upgraded user=%s", locked.user.username)
        return locked.user

    async def _give_back(self, tx: UnitOfWork, verified: Verified) -> None:
        """A success forgets the account's failures and gives the address its attempt
        back. Everyone behind one address (an office's NAT) shares that row, and this
        statement holds its lock until the commit: a sign-in calls it last, so the lock
        lasts one round trip instead of the whole write (forty tabs on one address timed
        out queueing for it while each holder's later statements waited on a busy
        worker)."""
        account, address = verified.keys
        await tx.throttle.settle(account, address, self.throttle.address_threshold)
        for key in verified.keys:  # a block seen meanwhile may have ended with this
            self._blocks.pop(key, None)

    async def _login_failed(
        self,
        reservation: _Reservation,
        username: str,
        user: User | None,
        client: ClientInfo,
        reason: str,
    ) -> None:
        """The failure was counted when the attempt was reserved; this writes its audit."""
        shown = self._shown_name(username, user)
        async with self._uow(write=True) as tx:
            await self._audit(
                tx,
                AuditKind.LOGIN_FAILED,
                user=user,
                username=shown,
                client=client,
                detail=reason,
            )
            if reservation.block is not None:
                await self._audit(
                    tx,
                    AuditKind.THROTTLED,
                    user=user,
                    username=shown,
                    client=client,
                    detail=f"blocked for {int(reservation.block.total_seconds())} s",
                )
            await tx.commit()
        log.info("login failed (%s) user=%s client=%s", reason, shown, client.addr)

    async def redeem_ticket(
        self, ticket: str, presented_token: str | None, client: ClientInfo | None = None
    ) -> Redemption:
        """Swap a ticket for its session's new cookie token. Single use, short-lived, bound.

        Any attempt uses the ticket up, so it cannot be retried with guessed cookies.
        """
        now = self.now()
        presented_hash = hash_token(presented_token) if presented_token else None
        # Any event from here on voids the row this redemption would cache (see below).
        read_from = self._cache.generation if self._cache is not None else 0
        async with self._uow(write=True) as tx:
            claimed = await tx.tickets.claim(hash_token(ticket), now)
            if claimed is None:
                raise TicketRejected("unknown ticket")
            found = await tx.sessions.get_with_user(claimed.session_id, lock=True)
            session, owner = found if found is not None else (None, None)
            problem = _ticket_problem(claimed, session, owner, presented_hash, now)
            if problem is not None or session is None:
                await tx.commit()  # the claim sticks: a rejected ticket is used up too
                log.warning("ticket rejected: %s", problem)
                raise TicketRejected(problem or "session ended")
            bound = claimed.bound_token_hash
            assert bound is not None  # _ticket_problem refuses unbound
            # Retired first: that writes the old cookie's row, so a second redemption of
            # a ticket bound to the same cookie waits here until this one commits, and
            # then sees it.
            await self._retire_token(tx, bound, now)
            token = self._tokens.mint(now)
            new_hash = hash_token(token)
            # The first redemption records whose cookie this one replaced: the browser's
            # other tabs knew it by that cookie, and may follow it in (``service.follow``).
            if not await tx.sessions.set_token_hash(
                session.id, new_hash, replaced=bound, unless_taken=owner is not None
            ):
                # Two tabs of one browser signed in at once and both tickets went out
                # with the same cookie: the first redemption won, and this session's
                # cookie could only ever reach a copy of the old one. It ends unused
                # (the tab follows the browser into the first session instead).
                ended = await self._revoke(tx, [session.id], "logout", session.user_id)
                await self._audit(
                    tx,
                    AuditKind.LOGOUT,
                    user=owner,
                    session=session,
                    client=client or ClientInfo(),
                    detail="unused: another sign-in of this browser took its cookie first",
                )
                await tx.commit()
                await self._published(ended)
                log.warning("ticket rejected: its cookie was replaced by another sign-in")
                raise TicketRejected("cookie replaced by another sign-in")
            rotated = replace(
                session, token_hash=new_hash, signed_in_from=session.signed_in_from or bound
            )
            await self._audit(
                tx,
                AuditKind.ROTATED,
                user=owner,
                session=rotated,
                client=client or ClientInfo(),
                detail=f"was {session.short_id}",  # links the login_ok row to this session
            )
            news = [
                SessionEvent(EventKind.COOKIE_ATTACHED, (session.id,), token_hash=new_hash),
                SessionEvent(EventKind.TOKEN_RETIRED, (), token_hash=bound),
            ]
            if owner is not None:  # the user's open session lists add it
                news.append(SessionEvent(EventKind.SIGNED_IN, (session.id,), user_id=owner.id))
            broadcast = await self._broadcast_all(tx, news, now)
            await tx.commit()
        if self._cache is not None:
            # The row as this transaction left it (locked from its read to its commit):
            # the browser presents the new cookie next ("cookie held", then its pages),
            # and those find it here instead of reading it back. Not cached if any event
            # arrived since before the read: the row may predate it.
            self._cache.put(new_hash, (rotated, owner), read_from)
        log.info("session rotated session=%s", rotated.short_id)
        for each in broadcast:
            await publish_quietly(self._events, each)
        return Redemption(token, rotated)

    async def cookie_held(self, token: str | None) -> bool:
        """The browser presented a cookie that a ticket handed out moments ago: it holds
        it. Tells the session's views (anywhere), which then stop saying "Signing in…".

        Only a cookie minted within the ticket lifetime counts, once per process, so
        replaying the request costs no writes."""
        now = self.now()
        recognised = self._recognise(token, now)
        if recognised is None or now - recognised[1] > self.policy.ticket_ttl:
            return False
        token_hash = recognised[0]
        if token_hash in self._held:
            return False
        session = (await self._resolve(token, now)).session
        if session is None or session.token_hash != token_hash:
            return False
        self._held[token_hash] = None
        while len(self._held) > 10_000:
            self._held.popitem(last=False)
        held = SessionEvent(EventKind.COOKIE_HELD, (session.id,), token_hash=token_hash)
        async with self._uow(write=True) as tx:
            held = await self._broadcast(tx, held, now)
            await tx.commit()
        await publish_quietly(self._events, held)
        return True

    async def _retire_token(self, tx: UnitOfWork, token_hash: str, now: datetime) -> None:
        """Make a pre-login token worthless: revoke its row, or record it as revoked."""
        await tx.sessions.retire_token(token_hash, now, now + self.policy.absolute_timeout)


def _ticket_problem(
    claimed: ClaimedTicket,
    session: AuthSession | None,
    owner: User | None,
    presented_hash: str | None,
    now: datetime,
) -> str | None:
    """Why a claimed ticket must not hand out its cookie, or None when it may."""
    if claimed.already_redeemed:
        return "already used"
    if now >= claimed.expires_at:
        return "expired"
    if claimed.bound_token_hash is None:
        return "bound to no cookie"
    if presented_hash != claimed.bound_token_hash:
        return "presented with another cookie"
    if session is None or not may_act(session, owner, now):
        return "session ended"
    return None
