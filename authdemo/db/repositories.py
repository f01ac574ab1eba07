"""SQL repositories over one ``AsyncSession``. They may flush; they never commit."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import (
    AuditEvent,
    AuditKind,
    AuthSession,
    ClientInfo,
    DuplicateToken,
    ThrottleState,
    User,
    UserCredentials,
    UsernameTaken,
)
from ..events import EventKind, SessionEvent
from ..ports import ClaimedTicket
from .models import (
    AuditRow,
    BroadcastRow,
    SecretRow,
    SessionRow,
    ThrottleRow,
    TicketRow,
    UserRow,
)
from .notify import notify_statement


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        is_active=row.is_active,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
    )


def _session(row: SessionRow) -> AuthSession:
    return AuthSession(
        id=row.id,
        token_hash=row.token_hash,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        idle_expires_at=row.idle_expires_at,
        absolute_expires_at=row.absolute_expires_at,
        revoked_at=row.revoked_at,
        client_addr=row.client_addr,
        user_agent=row.user_agent,
        data=row.data,
    )


def _live(now: datetime) -> list[ColumnElement[bool]]:
    return [
        SessionRow.revoked_at.is_(None),
        SessionRow.idle_expires_at > now,
        SessionRow.absolute_expires_at > now,
    ]


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, username: str, key: str, password_hash: str, now: datetime) -> User:
        row = UserRow(
            username=username,
            username_key=key,
            password_hash=password_hash,
            is_active=True,
            created_at=now,
            password_changed_at=now,
        )
        self._s.add(row)
        try:
            await self._s.flush()
        except IntegrityError:
            raise UsernameTaken(username) from None
        return _user(row)

    async def get(self, user_id: int) -> User | None:
        row = await self._s.get(UserRow, user_id)
        return _user(row) if row else None

    async def get_by_key(self, key: str) -> User | None:
        row = await self._s.scalar(select(UserRow).where(UserRow.username_key == key))
        return _user(row) if row else None

    async def get_credentials(self, key: str) -> UserCredentials | None:
        row = await self._s.scalar(select(UserRow).where(UserRow.username_key == key))
        return UserCredentials(_user(row), row.password_hash) if row else None

    async def set_password_hash(
        self, user_id: int, password_hash: str, changed_at: datetime | None
    ) -> None:
        values: dict[str, object] = {"password_hash": password_hash}
        if changed_at is not None:
            values["password_changed_at"] = changed_at
        await self._s.execute(update(UserRow).where(UserRow.id == user_id).values(**values))

    async def set_active(self, user_id: int, active: bool) -> None:
        await self._s.execute(update(UserRow).where(UserRow.id == user_id).values(is_active=active))

    async def list(self) -> list[User]:
        rows = await self._s.scalars(select(UserRow).order_by(UserRow.username_key))
        return [_user(r) for r in rows]


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

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
    ) -> AuthSession:
        client = client.clipped()
        row = SessionRow(
            token_hash=token_hash,
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            idle_expires_at=idle_expires_at,
            absolute_expires_at=absolute_expires_at,
            revoked_at=now if revoked else None,
            client_addr=client.addr,
            user_agent=client.user_agent,
            data=data,
        )
        try:
            async with self._s.begin_nested():
                self._s.add(row)
        except IntegrityError:
            raise DuplicateToken("a session with this token exists") from None
        return _session(row)

    async def get(self, session_id: int) -> AuthSession | None:
        row = await self._s.get(SessionRow, session_id)
        return _session(row) if row else None

    async def find_by_token_hash(self, token_hash: str) -> tuple[AuthSession, User | None] | None:
        return await self._one_with_user(SessionRow.token_hash == token_hash)

    async def get_with_user(self, session_id: int) -> tuple[AuthSession, User | None] | None:
        return await self._one_with_user(SessionRow.id == session_id)

    async def _one_with_user(
        self, where: ColumnElement[bool]
    ) -> tuple[AuthSession, User | None] | None:
        result = await self._s.execute(
            select(SessionRow, UserRow)
            .outerjoin(UserRow, SessionRow.user_id == UserRow.id)
            .where(where)
        )
        found = result.first()
        if found is None:
            return None
        session_row, user_row = found
        return _session(session_row), (_user(user_row) if user_row is not None else None)

    async def touch(
        self, session_id: int, last_seen_at: datetime, idle_expires_at: datetime
    ) -> None:
        await self._s.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(last_seen_at=last_seen_at, idle_expires_at=idle_expires_at)
        )

    async def get_data_for_update(self, session_id: int) -> dict[str, Any] | None:
        """The session's data, locking the row until the transaction ends (PostgreSQL;
        SQLite's write transactions hold the database lock already)."""
        row = await self._s.scalar(
            select(SessionRow.data).where(SessionRow.id == session_id).with_for_update()
        )
        return dict(row) if row else {}

    async def set_data(self, session_id: int, data: dict[str, Any] | None) -> None:
        await self._s.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(data=data)
        )

    async def set_token_hash(self, session_id: int, token_hash: str) -> None:
        await self._s.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(token_hash=token_hash)
        )

    async def revoke(self, session_ids: list[int], now: datetime) -> list[int]:
        if not session_ids:
            return []
        live = list(
            await self._s.scalars(
                select(SessionRow.id).where(SessionRow.id.in_(session_ids), *_live(now))
            )
        )
        if live:
            await self._s.execute(
                update(SessionRow).where(SessionRow.id.in_(live)).values(revoked_at=now)
            )
        return live

    async def live_ids_for_user(self, user_id: int, now: datetime) -> list[int]:
        return list(
            await self._s.scalars(
                select(SessionRow.id).where(SessionRow.user_id == user_id, *_live(now))
            )
        )

    async def list_for_user(self, user_id: int, now: datetime) -> list[AuthSession]:
        rows = await self._s.scalars(
            select(SessionRow)
            .where(SessionRow.user_id == user_id, *_live(now))
            .order_by(SessionRow.last_seen_at.desc())
        )
        return [_session(r) for r in rows]

    async def list_live(self, user_id: int | None, now: datetime) -> list[tuple[AuthSession, User]]:
        query = (
            select(SessionRow, UserRow)
            .join(UserRow, SessionRow.user_id == UserRow.id)
            .where(*_live(now))
            .order_by(SessionRow.last_seen_at.desc())
        )
        if user_id is not None:
            query = query.where(SessionRow.user_id == user_id)
        result = await self._s.execute(query)
        return [(_session(s), _user(u)) for s, u in result.all()]

    async def count_live_by_user(self, now: datetime) -> dict[int, int]:
        result = await self._s.execute(
            select(SessionRow.user_id, func.count())
            .where(SessionRow.user_id.is_not(None), *_live(now))
            .group_by(SessionRow.user_id)
        )
        return {int(uid or 0): int(n) for uid, n in result.all()}

    async def purge_expired(self, now: datetime, limit: int) -> int:
        # A revoked row is kept until its absolute expiry: until then it makes a replayed
        # cookie "revoked" (replaced) rather than "unknown".
        doomed = (
            select(SessionRow.id)
            .where(
                or_(
                    SessionRow.absolute_expires_at <= now,
                    (SessionRow.idle_expires_at <= now) & SessionRow.revoked_at.is_(None),
                )
            )
            .limit(limit)
            .scalar_subquery()
        )
        # One statement: the ids never travel to Python and back.
        result = await self._s.execute(
            delete(SessionRow).where(SessionRow.id.in_(doomed)),
            execution_options={"synchronize_session": False},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(SessionRow)) or 0)


class SqlTicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self,
        ticket_hash: str,
        session_id: int,
        bound_token_hash: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        self._s.add(
            TicketRow(
                ticket_hash=ticket_hash,
                session_id=session_id,
                bound_token_hash=bound_token_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )
        await self._s.flush()

    async def claim(self, ticket_hash: str, now: datetime) -> ClaimedTicket | None:
        row = await self._s.scalar(select(TicketRow).where(TicketRow.ticket_hash == ticket_hash))
        if row is None:
            return None
        claimed = await self._s.execute(
            update(TicketRow)
            .where(TicketRow.id == row.id, TicketRow.redeemed_at.is_(None))
            .values(redeemed_at=now)
        )
        return ClaimedTicket(
            session_id=row.session_id,
            bound_token_hash=row.bound_token_hash,
            expires_at=row.expires_at,
            already_redeemed=claimed.rowcount != 1,  # type: ignore[attr-defined]
        )

    async def purge_expired(self, now: datetime, limit: int) -> int:
        ids = list(
            await self._s.scalars(
                select(TicketRow.id).where(TicketRow.expires_at <= now).limit(limit)
            )
        )
        if ids:
            await self._s.execute(delete(TicketRow).where(TicketRow.id.in_(ids)))
        return len(ids)


class SqlSecretRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, name: str) -> str | None:
        return await self._s.scalar(select(SecretRow.value).where(SecretRow.name == name))

    async def add(self, name: str, value: str) -> bool:
        try:
            async with self._s.begin_nested():
                self._s.add(SecretRow(name=name, value=value))
        except IntegrityError:
            return False
        return True


class SqlAuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, event: AuditEvent) -> None:
        self._s.add(
            AuditRow(
                at=event.at,
                kind=str(event.kind),
                user_id=event.user_id,
                username=event.username[:64],
                session=event.session[:8],
                client_addr=event.client_addr[:64],
                user_agent=event.user_agent[:512],
                detail=event.detail[:255],
            )
        )
        await self._s.flush()

    async def list(self, user_id: int | None, limit: int) -> list[AuditEvent]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if user_id is not None:
            query = query.where(AuditRow.user_id == user_id)
        return [
            AuditEvent(
                at=r.at,
                kind=AuditKind(r.kind),
                username=r.username,
                session=r.session,
                client_addr=r.client_addr,
                user_agent=r.user_agent,
                detail=r.detail,
                user_id=r.user_id,
            )
            for r in await self._s.scalars(query)
        ]


class SqlThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, keys: list[str]) -> dict[str, ThrottleState]:
        rows = await self._s.scalars(select(ThrottleRow).where(ThrottleRow.key.in_(keys)))
        return {r.key: ThrottleState(r.failures, r.blocked_until, r.updated_at) for r in rows}

    async def save(
        self, key: str, failures: int, blocked_until: datetime | None, now: datetime
    ) -> None:
        values = {"failures": failures, "blocked_until": blocked_until, "updated_at": now}
        updated = await self._s.execute(
            update(ThrottleRow).where(ThrottleRow.key == key).values(**values)
        )
        if updated.rowcount:  # type: ignore[attr-defined]
            return
        try:
            async with self._s.begin_nested():
                self._s.add(ThrottleRow(key=key, **values))
        except IntegrityError:  # another process inserted it first
            await self._s.execute(
                update(ThrottleRow).where(ThrottleRow.key == key).values(**values)
            )

    async def clear(self, key: str) -> None:
        await self._s.execute(delete(ThrottleRow).where(ThrottleRow.key == key))

    async def purge(self, idle_since: datetime, now: datetime, limit: int) -> int:
        ids = list(
            await self._s.scalars(
                select(ThrottleRow.key)
                .where(
                    ThrottleRow.updated_at < idle_since,
                    or_(ThrottleRow.blocked_until.is_(None), ThrottleRow.blocked_until <= now),
                )
                .limit(limit)
            )
        )
        if ids:
            await self._s.execute(delete(ThrottleRow).where(ThrottleRow.key.in_(ids)))
        return len(ids)


class SqlBroadcastRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, event: SessionEvent, now: datetime) -> int:
        row = BroadcastRow(
            created_at=now,
            kind=str(event.kind),
            session_ids=json.dumps(list(event.session_ids)),
            reason=event.reason[:32],
            token_hash=event.token_hash,
            origin=event.origin[:32],
        )
        self._s.add(row)
        await self._s.flush()
        if self._s.get_bind().dialect.name == "postgresql":
            # Delivered at commit (and only if it commits): wakes every other host.
            await self._s.execute(text(notify_statement()))
        return row.id

    async def after(self, last_id: int, limit: int) -> list[tuple[int, SessionEvent]]:
        rows = await self._s.scalars(
            select(BroadcastRow)
            .where(BroadcastRow.id > last_id)
            .order_by(BroadcastRow.id)
            .limit(limit)
        )
        return [
            (
                r.id,
                SessionEvent(
                    EventKind(r.kind),
                    tuple(int(i) for i in json.loads(r.session_ids)),
                    r.reason,
                    r.token_hash,
                    r.origin,
                ),
            )
            for r in rows
        ]

    async def last_id(self) -> int:
        return int(await self._s.scalar(select(func.max(BroadcastRow.id))) or 0)

    async def purge(self, before: datetime, limit: int) -> int:
        ids = list(
            await self._s.scalars(
                select(BroadcastRow.id).where(BroadcastRow.created_at < before).limit(limit)
            )
        )
        if ids:
            await self._s.execute(delete(BroadcastRow).where(BroadcastRow.id.in_(ids)))
        return len(ids)
