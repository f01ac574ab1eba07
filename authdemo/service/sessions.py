"""Sessions as cookies and open views see them: resolving, renewing, re-reading, ending.

Invariants:
- A cookie resolves as signed in only when its session may act (``domain.may_act``):
  live, its user active, on the user's current credential epoch. A cached answer is
  held to the same rule on every use.
- Renewal is one conditional write that matches only a session that may act. When it
  matches nothing, the session is revoked and every open view of it, in this process
  and (through the broadcast) in every other, signs out at once.
- Ending one session by id (``end_session``, ``end_own_session``) checks and acts in
  one conditional statement (``revoke_one``): with an owner given, a session id that
  is not theirs — forged, guessed or stale — ends nothing, whatever runs meanwhile.
- ``live_session``/``current`` always read the database (never the cache): an open view
  uses them to re-check itself at least once per half idle window.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from ..cache import Found
from ..domain import (
    AuditKind,
    AuthSession,
    ClientInfo,
    NotSignedIn,
    SignedIn,
    UnknownSession,
    User,
    may_act,
)
from ..events import EventKind, SessionEvent, publish_quietly
from ..ports import UnitOfWork
from .core import OPERATOR, Resolution, ServiceCore

log = logging.getLogger("authdemo.auth")


class Sessions(ServiceCore):
    def new_token(self) -> str:
        """A fresh anonymous cookie token. Costs no database write."""
        return self._tokens.mint(self.now())

    async def resolve(self, token: str | None) -> Resolution:
        """Check a cookie token: ours, not expired, not revoked; signed in or anonymous."""
        return await self._resolve(token, self.now())

    def _recognise(self, token: str | None, now: datetime) -> tuple[str, datetime] | None:
        """``(hash, mint time)`` of a genuine cookie within the absolute timeout; else None."""
        return self._tokens.recognise(token, now, self.policy.absolute_timeout) if token else None

    async def _resolve(self, token: str | None, now: datetime) -> Resolution:
        recognised = self._recognise(token, now)
        if recognised is None:
            return Resolution()
        token_hash, issued = recognised
        hit, found = self._cached(token_hash, now)
        if not hit:
            found = await self._fetch(token_hash)
        if found is None:  # anonymous: no row until its data is first written
            return Resolution(token_hash=token_hash, issued_at=issued)
        session, user = found
        if not may_act(session, user, now):
            return Resolution()  # expired, revoked, disabled or stale: never adopted
        if user is None:
            return Resolution(token_hash=token_hash, anonymous=session, issued_at=issued)
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
        read_from = self._cache.generation if self._cache is not None else 0
        async with self._uow(one_statement=True) as tx:
            found = await tx.sessions.find_by_token_hash(token_hash)
        if self._cache is not None:
            # Not if an event changed sessions while we read: the row may predate it.
            self._cache.put(token_hash, found, read_from)
        return found

    async def visit(self, token: str | None) -> Resolution:
        """Resolve a page load's or websocket connect's cookie and slide its idle expiry."""
        now = self.now()
        resolution = await self._resolve(token, now)
        session = resolution.session
        if session is None or not session.needs_renewal(now, self.policy):
            return resolution
        renewed = await self.renew(session)
        if renewed is None:
            return Resolution()
        if renewed is session:
            return resolution
        if resolution.signed_in is None:
            return replace(resolution, anonymous=renewed)
        return replace(resolution, signed_in=replace(resolution.signed_in, session=renewed))

    async def renew(self, session: AuthSession) -> AuthSession | None:
        """Slide the idle expiry; writes only when less than half the idle window is left.

        None when the session may not act any more (the write matched nothing): then it
        is revoked, and every view of it hears so at once."""
        now = self.now()
        if not session.is_live(now):
            return None
        if not session.needs_renewal(now, self.policy):
            return session
        renewed = session.renewed(now, self.policy)
        async with self._uow(write=True) as tx:
            ok = await tx.sessions.touch(
                session.id, renewed.last_seen_at, renewed.idle_expires_at, now, session.user_epoch
            )
            if not ok:
                found = await tx.sessions.get_with_user(session.id)
                if found is not None and may_act(*found, now):
                    return None  # only the caller's copy is stale (re-keyed elsewhere)
            ended = None
            if not ok:
                await tx.sessions.revoke([session.id], now)
                ended = SessionEvent(
                    EventKind.REVOKED, (session.id,), "renewal refused", user_id=session.user_id
                )
                ended = await self._broadcast(tx, ended, now)
            await tx.commit()
        if ended is not None:
            log.info("renewal refused: session=%s may not act", session.short_id)
            await publish_quietly(self._events, ended)
            return None
        if self._cache is not None:
            self._cache.update(renewed)
        return renewed

    async def current(self, session_id: int) -> SignedIn | None:
        """Re-read a signed-in session from the database: may it still act?"""
        found = await self.live_session(session_id)
        if found is None or found[1] is None:
            return None
        return SignedIn(found[0], found[1])

    async def live_session(self, session_id: int) -> tuple[AuthSession, User | None] | None:
        """Re-read any session row (anonymous ones have no user); None once it may not act."""
        now = self.now()
        async with self._uow(one_statement=True) as tx:
            found = await tx.sessions.get_with_user(session_id)
        if found is None or not may_act(found[0], found[1], now):
            return None
        return found

    async def logout(
        self, session_id: int, client: ClientInfo | None = None, epoch: int | None = None
    ) -> AuthSession | None:
        """Revoke a session server-side; its cookie is worthless from now on.

        ``epoch``: the one the signing-out view holds; a view that a re-key ended cannot
        sign the session out (it only leaves). Returns the session as it was stored (its
        ``token_hash`` is the cookie the browser was given for it, if a ticket was
        redeemed)."""
        now = self.now()
        event = None
        stored: AuthSession | None
        async with self._uow(write=True) as tx:
            # The check (live, on ``epoch``) and the revocation are one statement.
            ended = await tx.sessions.sign_out(session_id, now, epoch=epoch)
            if ended is not None:
                stored, username = ended
                event = SessionEvent(
                    EventKind.REVOKED, (session_id,), "logout", user_id=stored.user_id
                )
                event = await self._broadcast(tx, event, now)
                await self._audit(
                    tx,
                    AuditKind.LOGOUT,
                    username=username,
                    user_id=stored.user_id,
                    session=stored,
                    client=client,
                )
                log.info("logout session=%s", stored.short_id)
                await tx.commit()
            else:  # ended already, or not on ``epoch``: nothing to do but say what it is
                stored = await tx.sessions.get(session_id)
        await self._published(event)
        return stored

    async def end_session(
        self, session_id: int, user_id: int | None, client: ClientInfo = OPERATOR
    ) -> AuthSession:
        """End one signed-in session, live: every view of it signs out, on every worker
        and host. ``user_id``: only if the session is that user's (an id can be forged);
        None: whoever's it is (an operator's call). The check and the write are one
        conditional statement. Returns the session as ended.

        Raises ``UnknownSession`` (no such live session, or not ``user_id``'s: nothing
        changed), ``StorageUnavailable``."""
        now = self.now()
        async with self._uow(write=True) as tx:
            ended = await tx.sessions.revoke_one(session_id, now, user_id=user_id)
            if ended is None:
                raise UnknownSession(session_id)
            event = await self._ended(tx, ended, client, "1 session by operator", now)
            await tx.commit()
        await self._published(event)
        return ended

    async def end_own_session(
        self,
        acting_session_id: int,
        session_id: int,
        client: ClientInfo,
        *,
        epoch: int | None = None,
    ) -> AuthSession:
        """A signed-in view's "end this session": end ``session_id`` only if it belongs
        to the acting session's user, and only while the acting session may act (and is
        still on ``epoch``, the one the view holds) — checked in the acting transaction,
        the target matched by one conditional statement. Live, like ``end_session``.

        Raises ``NotSignedIn`` (the acting session may not act any more),
        ``UnknownSession`` (no such live session of this user: nothing changed),
        ``StorageUnavailable``."""
        now = self.now()
        async with self._uow(write=True) as tx:
            acting, user = await self._acting(tx, acting_session_id, now, epoch, lock_user=True)
            if user is None:
                raise NotSignedIn()
            ended = await tx.sessions.revoke_one(session_id, now, user_id=user.id)
            if ended is None:
                raise UnknownSession(session_id)
            by = f"1 session, from session {acting.short_id}"
            event = await self._ended(tx, ended, client, by, now)
            await tx.commit()
        await self._published(event)
        return ended

    async def _ended(
        self, tx: UnitOfWork, ended: AuthSession, client: ClientInfo, detail: str, now: datetime
    ) -> SessionEvent:
        """Inside ``tx``, after ``ended`` was revoked: queue its broadcast, audit it."""
        event = SessionEvent(EventKind.REVOKED, (ended.id,), "ended", user_id=ended.user_id)
        event = await self._broadcast(tx, event, now)
        owner = await tx.users.get(ended.user_id) if ended.user_id is not None else None
        await self._audit(
            tx, AuditKind.REVOKED, user=owner, session=ended, client=client, detail=detail
        )
        return event

    async def sessions_of(self, user_id: int) -> list[AuthSession]:
        """The user's live sessions, most recently active first (briefly cached)."""
        now = self.now()
        if self._cache is not None:
            cached = self._cache.user_sessions(user_id)
            if cached is not None and all(s.is_live(now) for s in cached):
                return cached
        async with self._uow(one_statement=True) as tx:
            sessions = await tx.sessions.list_for_user(user_id, now)
        if self._cache is not None:
            self._cache.put_user_sessions(user_id, sessions)
        return sessions

    async def note_expired(self, session: AuthSession, user: User) -> None:
        """Record in the audit trail that an open view saw its session time out."""
        async with self._uow(write=True) as tx:
            await self._audit(tx, AuditKind.EXPIRED, user=user, session=session)
            await tx.commit()
        log.info("session expired session=%s", session.short_id)
