"""Accounts: creating users, and every change that ends a user's access.

Invariants:
- Ending access bumps the user's credential epoch in the same transaction that revokes
  the sessions and writes the broadcast: a password change (self-service or operator),
  a disable, "end all sessions" (operator) and "sign out other sessions". A session
  opened under an older epoch may never act again, and a sign-in that verified a
  password before the bump cannot open one (``signin._settle``).
- Self-service changes re-key the acting session: it moves to the new epoch under a new
  token (handed over through a bound ticket), so every *other* view of that same
  session — a thief holding the cookie, say — ends too (``EventKind.REKEYED``), and the
  old cookie leads nowhere.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..domain import (
    AuditKind,
    AuthSession,
    ClientInfo,
    CookieRequired,
    InvalidCredentials,
    NotSignedIn,
    SignedIn,
    User,
    check_password_policy,
    normalize_username,
)
from ..events import EventKind, SessionEvent, publish_quietly
from ..ports import UnitOfWork
from ..security import hash_token, new_ticket, unreachable_token_hash
from .core import BY_OPERATOR, OPERATOR, Rekeyed, UserSummary
from .signin import SignIn

log = logging.getLogger("authdemo.auth")


class Accounts(SignIn):
    # --- operators ---------------------------------------------------------------------

    async def create_user(self, username: str, password: str) -> User:
        display, key = normalize_username(username)
        hashed = await self._hasher.hash(check_password_policy(password))
        async with self._uow(write=True) as tx:
            user = await tx.users.add(display, key, hashed, self.now())
            await self._audit(tx, AuditKind.USER_CREATED, user=user, client=OPERATOR)
            await tx.commit()
        log.info("user created user=%s", user.username)
        return user

    async def list_users(self) -> list[UserSummary]:
        async with self._uow() as tx:
            users = await tx.users.list()
            counts = await tx.sessions.count_live_by_user(self.now())
            mfa = await tx.mfa.enabled_user_ids()
            roles = await tx.roles.names_by_user()
        return [
            UserSummary(u, counts.get(u.id, 0), u.id in mfa, tuple(roles.get(u.id, ())))
            for u in users
        ]

    async def live_sessions(self, username: str | None) -> list[tuple[AuthSession, User]]:
        user_id = (await self.get_user(username)).id if username is not None else None
        async with self._uow() as tx:
            return await tx.sessions.list_live(user_id, self.now())

    async def set_password(self, username: str, password: str) -> int:
        """Operator reset: a new hash, and every session of the user ends (live)."""
        user = await self.get_user(username)
        hashed = await self._hasher.hash(check_password_policy(password))
        async with self._uow(write=True) as tx:
            await tx.users.set_password_hash(user.id, hashed, changed_at=self.now())
            event = await self._revoke_all(tx, user.id, "password_changed")
            await self._audit(
                tx, AuditKind.PASSWORD_CHANGED, user=user, client=OPERATOR, detail="by operator"
            )
            await tx.commit()
        log.info("password set user=%s", user.username)
        return await self._published(event)

    async def set_active(
        self,
        username: str,
        active: bool,
        *,
        client: ClientInfo = OPERATOR,
        by: str = BY_OPERATOR,
    ) -> int:
        """Enable or disable an account; disabling ends all its sessions (live).
        ``client``, ``by``: who asked (the admin page's browser and admin; the CLI by
        default), as the audit trail keeps it."""
        user = await self.get_user(username)
        async with self._uow(write=True) as tx:
            await tx.users.set_active(user.id, active)
            event = None if active else await self._revoke_all(tx, user.id, "user_disabled")
            kind = AuditKind.USER_ENABLED if active else AuditKind.USER_DISABLED
            await self._audit(tx, kind, user=user, client=client, detail=f"by {by}")
            await tx.commit()
        log.info("%s user=%s", kind, user.username)
        return await self._published(event)

    async def revoke_user_sessions(
        self, username: str, *, client: ClientInfo = OPERATOR, by: str = BY_OPERATOR
    ) -> int:
        user = await self.get_user(username)
        async with self._uow(write=True) as tx:
            await tx.users.bump_epoch(user.id)  # sign-ins in flight end too
            event = await self._revoke_all(tx, user.id, "revoked")
            if event is not None:
                await self._audit(
                    tx,
                    AuditKind.REVOKED,
                    user=user,
                    client=client,
                    detail=f"{len(event.session_ids)} session(s) by {by}",
                )
            await tx.commit()
        return await self._published(event)

    # --- self-service ----------------------------------------------------------------------

    async def confirm_password(
        self, session_id: int, password: str, client: ClientInfo, *, epoch: int | None = None
    ) -> datetime:
        """The signed-in user enters their password again (a "recent sign-in" prompt
        before a sensitive change): checked and throttled like a sign-in. Returns when.
        Raises ``InvalidCredentials``, ``Throttled``, ``NotSignedIn``."""
        signed_in = await self.current(session_id)
        if signed_in is None or (epoch is not None and signed_in.session.user_epoch != epoch):
            raise NotSignedIn()
        verified = await self._verify(signed_in.user.username, password, client)
        now = self.now()
        async with self._uow(write=True) as tx:
            await self._acting(tx, session_id, now, signed_in.session.user_epoch, lock_user=True)
            if await self._settle(tx, verified) is None:
                raise NotSignedIn()
            await tx.commit()
        return now

    async def change_password(
        self,
        session_id: int,
        current_password: str,
        new_password: str,
        bound_token_hash: str | None,
        client: ClientInfo,
        *,
        origin: str = "",
        epoch: int | None = None,
    ) -> Rekeyed:
        """Change the signed-in user's password.

        Needs the current password (throttled like a sign-in). Every other session of
        the user ends, live, and so does every other view of this session (``origin``
        names the acting view); this session keeps going under a new token, handed to
        the browser through a ticket bound to the cookie it holds now.
        """
        if bound_token_hash is None:
            raise CookieRequired()
        signed_in = await self.current(session_id)
        if signed_in is None or (epoch is not None and signed_in.session.user_epoch != epoch):
            raise NotSignedIn()
        hashed_new = check_password_policy(new_password)  # refuse before any hashing
        verified = await self._verify(signed_in.user.username, current_password, client)
        if verified.user.id != signed_in.user.id:  # pragma: no cover - same name, same user
            raise InvalidCredentials()
        hashed = await self._hasher.hash(hashed_new)
        now = self.now()
        async with self._uow(write=True) as tx:
            acting, _ = await self._acting(
                tx, session_id, now, signed_in.session.user_epoch, lock_user=True
            )
            user = await self._settle(tx, verified)
            if user is None:  # changed or disabled meanwhile: that change wins
                raise NotSignedIn()
            new_epoch = await tx.users.set_password_hash(user.id, hashed, changed_at=now)
            result, events = await self._rekey(
                tx,
                acting,
                user,
                new_epoch,
                bound_token_hash,
                origin,
                client,
                "password_changed",
                AuditKind.PASSWORD_CHANGED,
            )
            await tx.commit()
        log.info("password changed user=%s", user.username)
        return await self._rekeyed(result, events)

    async def revoke_other_sessions(
        self,
        session_id: int,
        client: ClientInfo,
        bound_token_hash: str | None = None,
        *,
        origin: str = "",
        epoch: int | None = None,
    ) -> Rekeyed:
        """ "Sign out other sessions": every other session of this user and every other
        view of this one end; this view goes on under a new token (through a ticket)."""
        if bound_token_hash is None:
            raise CookieRequired()
        now = self.now()
        async with self._uow(write=True) as tx:
            acting, user = await self._acting(tx, session_id, now, epoch, lock_user=True)
            if user is None:
                raise NotSignedIn()
            new_epoch = await tx.users.bump_epoch(user.id)
            result, events = await self._rekey(
                tx,
                acting,
                user,
                new_epoch,
                bound_token_hash,
                origin,
                client,
                "signed_out_elsewhere",
                AuditKind.REVOKED,
            )
            await tx.commit()
        return await self._rekeyed(result, events)

    async def _rekey(
        self,
        tx: UnitOfWork,
        acting: AuthSession,
        user: User,
        epoch: int,
        bound_token_hash: str,
        origin: str,
        client: ClientInfo,
        reason: str,
        kind: AuditKind,
        *,
        note: str = "",
    ) -> tuple[Rekeyed, list[SessionEvent]]:
        """Inside ``tx``, after the epoch moved on: end the user's other sessions, move the
        acting one to ``epoch`` under a token only a new ticket leads to, queue the
        broadcasts (other views of the acting session end too) and audit it (``note``
        first in the audit row's detail)."""
        now = self.now()
        others = [i for i in await tx.sessions.live_ids_for_user(user.id, now) if i != acting.id]
        revoked = await self._revoke(tx, others, reason, user.id)
        await tx.sessions.set_token_hash(acting.id, unreachable_token_hash(), user_epoch=epoch)
        rekeyed = SessionEvent(
            EventKind.REKEYED, (acting.id,), reason, origin=origin, user_id=user.id
        )
        rekeyed = await self._broadcast(tx, rekeyed, now)
        ticket = new_ticket()
        await tx.tickets.add(
            hash_token(ticket), acting.id, bound_token_hash, now, now + self.policy.ticket_ttl
        )
        moved = await tx.sessions.get_with_user(acting.id)
        assert moved is not None
        assert moved[1] is not None
        events = [rekeyed] + ([revoked] if revoked is not None else [])
        ended = len(revoked.session_ids) if revoked is not None else 0
        detail = f"{ended} other session(s)"
        await self._audit(
            tx,
            kind,
            user=user,
            session=acting,
            client=client,
            detail=f"{note}; {detail}" if note else detail,
        )
        return Rekeyed(SignedIn(moved[0], moved[1]), ticket, ended), events

    async def _rekeyed(self, result: Rekeyed, events: list[SessionEvent]) -> Rekeyed:
        """After commit: this process's views hear of the re-key at once."""
        for event in events:
            await publish_quietly(self._events, event)
        return result
