"""SQL repositories over one ``AsyncSession``. They may flush; they never commit."""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
import re
import typing
import weakref
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Result,
    Row,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import ScalarSelect

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
from ..mfa import Challenge, MfaRecord
from ..permissions import Role, RoleExists
from ..ports import BROADCAST_BATCH, AccountRows, BroadcastCursor, ClaimedTicket
from .engine import DEFERRABLE
from .models import (
    AuditRow,
    BroadcastRow,
    ChallengeRow,
    MfaRow,
    RecoveryCodeRow,
    RolePermissionRow,
    RoleRow,
    SecretRow,
    SessionRow,
    ThrottleRow,
    TicketRow,
    UserRoleRow,
    UserRow,
)
from .notify import CHANNEL

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str, limit: int) -> str:
    """Free text (user agents, typed names, details) as every backend can store it: no
    NUL (PostgreSQL text cannot hold one), no unpaired surrogate (no UTF-8 form), at
    most ``limit`` characters (the column's length; PostgreSQL refuses longer)."""
    return _UNSTORABLE.sub("\ufffd", text[:limit])


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        is_active=row.is_active,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        credential_epoch=row.credential_epoch,
        email=row.email,
        email_verified_at=row.email_verified_at,
        signup_expires_at=row.signup_expires_at,
    )


def _session(row: SessionRow | Row[Any]) -> AuthSession:
    # An ORM row or a Core one (``_SESSIONS``'s columns): the same attribute names.
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
        user_epoch=row.user_epoch,
        signed_in_from=row.signed_in_from,
    )


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _insert_of(dialect: str) -> Any:
    """The ``insert`` with ``ON CONFLICT`` of a backend. Imported here: the PostgreSQL
    dialect package (all its drivers) takes 50 ms to import, which every command and
    server on SQLite would otherwise pay at start."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _dialect_insert(session: AsyncSession) -> Any:
    return _insert_of(_dialect(session))


def _live(
    now: datetime | ColumnElement[datetime], row: Any = SessionRow
) -> list[ColumnElement[bool]]:
    """Live as of ``now``; ``row`` is ``SessionRow`` or, in a Core statement, ``_SESSIONS.c``."""
    return [
        row.revoked_at.is_(None),
        row.idle_expires_at > now,
        row.absolute_expires_at > now,
    ]


def _may_act_as_user() -> ColumnElement[bool]:
    """Anonymous, or the user is active and on the epoch the session was opened under (in
    a Core statement on ``_SESSIONS``)."""
    session, user = _SESSIONS.c, _USERS.c
    current_user = (
        select(user.id)
        .where(
            user.id == session.user_id,
            user.is_active.is_(True),
            user.credential_epoch == session.user_epoch,
        )
        .exists()
    )
    return or_(session.user_id.is_(None), current_user)


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
            credential_epoch=0,
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
        row = await self._s.scalar(_USER_BY_KEY, {"key": key})
        return _user(row) if row else None

    async def get_credentials(self, key: str) -> UserCredentials | None:
        row = await self._s.scalar(_USER_BY_KEY, {"key": key})
        return UserCredentials(_user(row), row.password_hash) if row else None

    async def lock(self, user_id: int) -> UserCredentials | None:
        row = await self._s.scalar(_USER_LOCKED, {"key": user_id})
        return UserCredentials(_user(row), row.password_hash) if row else None

    async def lock_signing_in(self, user_id: int) -> tuple[UserCredentials, bool] | None:
        found = (await self._s.execute(_USER_SIGNING_IN, {"key": user_id})).first()
        if found is None:
            return None
        row, confirmed_at = found
        return UserCredentials(_user(row), row.password_hash), confirmed_at is not None

    async def set_password_hash(
        self, user_id: int, password_hash: str, changed_at: datetime
    ) -> int:
        return await self._bump(
            user_id, password_hash=password_hash, password_changed_at=changed_at
        )

    async def upgrade_hash(self, user_id: int, verified_hash: str, new_hash: str) -> bool:
        result = await self._s.execute(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.password_hash == verified_hash)
            .values(password_hash=new_hash)
        )
        return bool(_rows(result))

    async def set_active(self, user_id: int, active: bool) -> int:
        if not active:
            return await self._bump(user_id, is_active=False)
        await self._s.execute(update(UserRow).where(UserRow.id == user_id).values(is_active=True))
        return int(
            await self._s.scalar(select(UserRow.credential_epoch).where(UserRow.id == user_id)) or 0
        )

    async def bump_epoch(self, user_id: int) -> int:
        return await self._bump(user_id)

    async def _bump(self, user_id: int, **values: object) -> int:
        """One statement: the epoch moves on atomically, whoever else is writing."""
        epoch = await self._s.scalar(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(credential_epoch=UserRow.credential_epoch + 1, **values)
            .returning(UserRow.credential_epoch)
        )
        return int(epoch or 0)

    async def list(self) -> list[User]:
        rows = await self._s.scalars(select(UserRow).order_by(UserRow.username_key))
        return [_user(r) for r in rows]


class RowSource(typing.Protocol):
    """What the reads of one statement run on: an ``AsyncSession`` (inside a unit of
    work) or an ``AsyncConnection`` (a unit of work of one statement, no ORM session)."""

    async def execute(
        self, statement: Executable, params: dict[str, Any], /
    ) -> Result[*tuple[Any, ...]]: ...


class SqlSessionReads:
    """The session reads of one statement each (``ports.SessionReads``): Core statements
    on a ``RowSource``."""

    def __init__(self, rows: RowSource) -> None:
        self._rows = rows

    async def find_by_token_hash(self, token_hash: str) -> tuple[AuthSession, User | None] | None:
        return await self._with_user(_SESSION_BY_TOKEN_HASH, token_hash)

    async def get_with_user(self, session_id: int) -> tuple[AuthSession, User | None] | None:
        return await self._with_user(_SESSION_BY_ID, session_id)

    async def _with_user(
        self, query: Select[Any], key: object
    ) -> tuple[AuthSession, User | None] | None:
        found = (await self._rows.execute(query, {"key": key})).first()
        if found is None:
            return None
        return _session_at(found), _user_at(found)

    async def list_for_user(self, user_id: int, now: datetime) -> list[AuthSession]:
        rows = await self._rows.execute(_LIVE_SESSIONS_OF, {"key": user_id, "now": now})
        return [_session_at(row) for row in rows]

    async def accounts_of(
        self, session_ids: Collection[int], now: datetime
    ) -> dict[int, AccountRows]:
        asked = set(session_ids)
        if not asked:
            return {}
        rows = (
            await self._rows.execute(_ACCOUNTS_OF, {"session_ids": sorted(asked), "now": now})
        ).all()
        by_user: dict[int, list[Row[*tuple[Any, ...]]]] = {}
        for row in rows:
            by_user.setdefault(row[_S], []).append(row)  # the user's id, first of its fields
        found: dict[int, AccountRows] = {}
        for user_rows in by_user.values():
            sessions = [_session_at(row) for row in user_rows]
            # Every live session of the user, and the asked ones live or not: an asked
            # session is listed (to the others asked too) only while it is live.
            live = [s for s in sessions if s.id not in asked or s.is_live(now)]
            for row, session in zip(user_rows, sessions, strict=True):
                if session.id not in asked:
                    continue
                user = _user_at(row)
                assert user is not None  # an inner join
                confirmed_at, left = row[_S + _U], row[_S + _U + 1]
                found[session.id] = AccountRows(
                    session, user, live, confirmed_at is not None, int(left or 0)
                )
        return found


class SqlSessionRepository(SqlSessionReads):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
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
        user_epoch: int = 0,
    ) -> AuthSession:
        values: dict[str, Any] = {
            "token_hash": token_hash,
            "user_id": user_id,
            "created_at": now,
            "last_seen_at": now,
            "idle_expires_at": idle_expires_at,
            "absolute_expires_at": absolute_expires_at,
            "revoked_at": now if revoked else None,
            "client_addr": _storable(client.addr, 64),
            "user_agent": _storable(client.user_agent, 512),
            "data": data,
            "user_epoch": user_epoch,
        }
        # One statement, no savepoint: a taken token inserts nothing (and, unlike a
        # failed INSERT, leaves a PostgreSQL transaction usable).
        stored = (await self._s.execute(_add_session(_dialect(self._s)), values)).first()
        if stored is None:
            raise DuplicateToken("a session with this token exists")
        return _session(stored)

    async def retire_token(self, token_hash: str, now: datetime, expires_at: datetime) -> None:
        values: dict[str, Any] = {
            "token_hash": token_hash,
            "created_at": now,
            "last_seen_at": now,
            "idle_expires_at": expires_at,
            "absolute_expires_at": expires_at,
            "revoked_at": now,
            "user_epoch": 0,
        }
        await self._s.execute(_retire_token(_dialect(self._s)), values)

    async def get(self, session_id: int) -> AuthSession | None:
        row = await self._s.get(SessionRow, session_id)
        return _session(row) if row else None

    async def get_with_user(
        self, session_id: int, *, lock: bool = False
    ) -> tuple[AuthSession, User | None] | None:
        return await self._with_user(_SESSION_BY_ID_LOCKED if lock else _SESSION_BY_ID, session_id)

    async def touch(
        self,
        session_id: int,
        last_seen_at: datetime,
        idle_expires_at: datetime,
        now: datetime,
        user_epoch: int,
    ) -> bool:
        values = {
            "session_id": session_id,
            "epoch": user_epoch,
            "now": now,
            "seen": last_seen_at,
            "idle": idle_expires_at,
        }
        return _rows(await self._s.execute(_TOUCH, values)) > 0

    async def get_data_for_update(self, session_id: int) -> dict[str, Any] | None:
        """The session's data, locking the row until the transaction ends (PostgreSQL;
        SQLite's write transactions hold the database lock already)."""
        row = await self._s.scalar(
            select(SessionRow.data)
            .where(SessionRow.id == session_id)
            .with_for_update(key_share=True)
        )
        return dict(row) if row else {}

    async def set_data(self, session_id: int, data: dict[str, Any] | None) -> None:
        await self._s.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(data=data)
        )

    async def set_token_hash(
        self,
        session_id: int,
        token_hash: str,
        user_epoch: int | None = None,
        *,
        replaced: str | None = None,
        unless_taken: bool = False,
    ) -> bool:
        statement = _set_token_hash(
            user_epoch is not None, replaced is not None, replaced is not None and unless_taken
        )
        values = {
            "session_id": session_id,
            "new_hash": token_hash,
            "epoch": user_epoch,
            "replaced": replaced,
        }
        return _rows(await self._s.execute(statement, values)) > 0

    async def revoke(self, session_ids: list[int], now: datetime) -> list[int]:
        if not session_ids:
            return []
        revoked = await self._s.scalars(_REVOKE, {"ids": session_ids, "now": now})
        return sorted(revoked)

    async def sign_out(
        self, session_id: int, now: datetime, *, epoch: int | None
    ) -> tuple[AuthSession, str] | None:
        values = {"session_id": session_id, "now": now, "epoch": epoch}
        found = (await self._s.execute(_sign_out(epoch is not None), values)).one_or_none()
        if found is None:
            return None
        return _session(found), found.owner_name or ""

    async def revoke_one(
        self, session_id: int, now: datetime, *, user_id: int | None
    ) -> AuthSession | None:
        anyone = SessionRow.user_id.is_not(None)  # an operator's: any signed-in session
        owner = anyone if user_id is None else SessionRow.user_id == user_id
        revoked = await self._s.scalars(
            update(SessionRow)
            .where(SessionRow.id == session_id, owner, *_live(now))
            .values(revoked_at=now)
            .returning(SessionRow),
            execution_options={"synchronize_session": False, "populate_existing": True},
        )
        row = revoked.one_or_none()
        return _session(row) if row is not None else None

    async def live_ids_for_user(self, user_id: int, now: datetime) -> list[int]:
        return list(
            await self._s.scalars(
                select(SessionRow.id).where(SessionRow.user_id == user_id, *_live(now))
            )
        )

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
        return _rows(result)

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
        values = {
            "ticket_hash": ticket_hash,
            "session_id": session_id,
            "bound_token_hash": bound_token_hash,
            "created_at": now,
            "expires_at": expires_at,
        }
        await self._s.execute(_ADD_TICKET, values)

    async def claim(self, ticket_hash: str, now: datetime) -> ClaimedTicket | None:
        # One conditional write: of two redemptions at once, one sets redeemed_at (and
        # gets the row back); the other waits for its lock, then matches nothing.
        values = {"hash": ticket_hash, "now": now}
        claimed = (await self._s.execute(_CLAIM_TICKET, values)).first()
        if claimed is not None:
            return ClaimedTicket(claimed[0], claimed[1], claimed[2], already_redeemed=False)
        used = (await self._s.execute(_TICKET_BY_HASH, values)).first()
        if used is None:
            return None
        return ClaimedTicket(used[0], used[1], used[2], already_redeemed=True)

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
        values = {
            "at": event.at,
            "kind": str(event.kind),
            "user_id": event.user_id,
            "username": _storable(event.username, 64),
            "session": _storable(event.session, 8),
            "client_addr": _storable(event.client_addr, 64),
            "user_agent": _storable(event.user_agent, 512),
            "detail": _storable(event.detail, 255),
        }
        await self._s.execute(_ADD_AUDIT, values)

    async def purge(self, before: datetime, limit: int) -> int:
        doomed = (
            select(AuditRow.id).where(AuditRow.at < before).limit(limit).scalar_subquery()
        )  # found through ix_auth_events_at
        result = await self._s.execute(
            delete(AuditRow).where(AuditRow.id.in_(doomed)),
            execution_options={"synchronize_session": False},
        )
        return _rows(result)

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

    async def lock(self, keys: list[str], now: datetime) -> dict[str, ThrottleState]:
        keys = sorted(set(keys))  # one lock order everywhere: no deadlock between two
        # One statement: a missing row is inserted, an existing one "updated" to itself,
        # which takes its row lock (PostgreSQL processes the rows in the order given and
        # re-checks a row a concurrent transaction deleted) and returns it as it is.
        # Sent as one INSERT of every key, in this order (SQLAlchemy's "insertmanyvalues").
        values = [{"key": k, "failures": 0, "updated_at": now} for k in keys]
        rows = await self._s.execute(_lock_throttle(_dialect(self._s)), values)
        return {r.key: ThrottleState(r.failures, r.blocked_until, r.updated_at) for r in rows}

    async def save(
        self, key: str, failures: int, blocked_until: datetime | None, now: datetime
    ) -> None:
        values = {"failures": failures, "blocked_until": blocked_until, "updated_at": now}
        updated = await self._s.execute(
            update(ThrottleRow).where(ThrottleRow.key == key).values(**values)
        )
        if _rows(updated):
            return
        try:
            async with self._s.begin_nested():
                self._s.add(ThrottleRow(key=key, **values))
        except IntegrityError:  # another process inserted it first
            await self._s.execute(
                update(ThrottleRow).where(ThrottleRow.key == key).values(**values)
            )

    async def save_all(self, states: dict[str, ThrottleState]) -> None:
        if len(states) < 2:
            for key, state in states.items():
                await self.save(key, state.failures, state.blocked_until, state.updated_at)
            return
        keys = sorted(states)
        values: dict[str, object] = {}
        for i, key in enumerate(keys):
            state = states[key]
            values[f"key_{i}"] = key
            values[f"failures_{i}"] = state.failures
            values[f"blocked_until_{i}"] = state.blocked_until
            values[f"updated_at_{i}"] = state.updated_at
        updated = await self._s.execute(_save_throttles(len(keys)), values)
        if _rows(updated) != len(keys):
            # A row not there (a caller that did not lock them first): one by one.
            for key in keys:
                state = states[key]
                await self.save(key, state.failures, state.blocked_until, state.updated_at)

    async def clear(self, key: str) -> None:
        await self._s.execute(delete(ThrottleRow).where(ThrottleRow.key == key))

    async def settle(self, forget: str, refund: str, threshold: int) -> None:
        # ``clear(forget)`` and ``refund(refund, threshold)`` in one statement, leaving
        # rows with no failures to the purge (``ThrottlePolicy.forgotten``) instead of
        # deleting them. The sub-select takes the two row locks in key order (PostgreSQL;
        # SQLite has one writer), as ``lock`` does: no deadlock with a reservation.
        values = {"forget": forget, "refund": refund, "threshold": threshold}
        await self._s.execute(_SETTLE_THROTTLES, values)

    async def refund(self, key: str, threshold: int) -> None:
        # ThrottlePolicy.refund, in SQL: without reading the row first, and with the row
        # locked only by the statement that changes it.
        await self._s.execute(
            delete(ThrottleRow).where(ThrottleRow.key == key, ThrottleRow.failures <= 1)
        )
        left = ThrottleRow.failures - 1
        await self._s.execute(
            update(ThrottleRow)
            .where(ThrottleRow.key == key, ThrottleRow.failures > 1)
            .values(
                failures=left,
                blocked_until=case((left >= threshold, ThrottleRow.blocked_until), else_=None),
            )
        )

    async def purge(self, idle_since: datetime, now: datetime, limit: int) -> int:
        forgotten = and_(  # ThrottlePolicy.forgotten, in SQL
            or_(ThrottleRow.blocked_until.is_(None), ThrottleRow.blocked_until <= now),
            or_(ThrottleRow.failures == 0, ThrottleRow.updated_at < idle_since),
        )
        doomed = select(ThrottleRow.key).where(forgotten).limit(limit).scalar_subquery()
        # One statement, the condition repeated on the rows it deletes: a reservation that
        # counts a failure on a row after the sub-select found it forgotten holds that
        # row's lock; PostgreSQL then re-checks the row's new version once the lock is
        # released and keeps it. Deleting by key would drop the fresh count.
        result = await self._s.execute(
            delete(ThrottleRow).where(ThrottleRow.key.in_(doomed), forgotten),
            execution_options={"synchronize_session": False},
        )
        return _rows(result)


_CURRENT_XACT = text("pg_current_xact_id()::text::bigint")
_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


def _event(row: BroadcastRow) -> SessionEvent:
    return SessionEvent(
        EventKind(row.kind),
        tuple(int(i) for i in json.loads(row.session_ids)),
        row.reason,
        row.token_hash,
        row.origin,
        row.user_id,
    )


class SqlBroadcastRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    def _postgres(self) -> bool:
        return self._s.get_bind().dialect.name == "postgresql"

    async def add(self, event: SessionEvent, now: datetime) -> int:
        (row_id,) = await self.add_all([event], now)
        return row_id

    async def add_all(self, events: list[SessionEvent], now: datetime) -> list[int]:
        if not events:
            return []
        postgres = self._postgres()
        rows = [
            {
                "created_at": now,
                "kind": str(event.kind),
                "session_ids": json.dumps(list(event.session_ids)),
                "reason": event.reason[:32],
                "token_hash": event.token_hash,
                "origin": event.origin[:32],
                "user_id": event.user_id,
            }
            for event in events
        ]
        # One statement. Both backends number the rows of one INSERT in the order of its
        # VALUES (SQLite's rowid, PostgreSQL's nextval per row), whatever order RETURNING
        # gives them back in: sorted, they pair with the events. Several rows are sent
        # as one INSERT by SQLAlchemy's "insertmanyvalues", in the order given. The
        # NOTIFY (PostgreSQL) rides in the same statement (a data-modifying CTE):
        # delivered at commit, and only if it commits; it wakes every other host, which
        # then reads every new row, so one per transaction is enough.
        if postgres and self._first_notify():
            numbered = {f"{name}_{i}": v for i, row in enumerate(rows) for name, v in row.items()}
            statement = _add_broadcasts_notifying(len(rows), tuple(rows[0]))
            ids = sorted(await self._s.scalars(statement, numbered))
        else:
            ids = sorted(await self._s.scalars(_add_broadcast(postgres), rows))
        return [int(i) for i in ids]

    def _first_notify(self) -> bool:
        """True once per transaction of this session: the first broadcast in it."""
        session = self._s.sync_session
        # Begun here when this is the transaction's first statement (no I/O yet): the
        # transaction must exist to be remembered.
        current = session.get_transaction() or session.begin()
        notified: weakref.WeakSet[Any] = self._s.info.setdefault("notified", weakref.WeakSet())
        if current in notified:
            return False
        notified.add(current)
        return True

    async def position(self) -> BroadcastCursor:
        if not self._postgres():
            last = await self._s.scalar(select(func.max(BroadcastRow.id)))
            return BroadcastCursor(last_id=int(last or 0))
        horizon = await self._horizon()
        # Rows at or past the horizon that are visible now are history too.
        seen = await self._s.scalars(select(BroadcastRow.id).where(BroadcastRow.txid >= horizon))
        return BroadcastCursor(horizon=horizon, seen=frozenset(seen))

    async def changes(
        self, cursor: BroadcastCursor
    ) -> tuple[BroadcastCursor, list[tuple[int, SessionEvent]]]:
        if cursor.horizon is None:
            # SQLite: one writer at a time, so rows commit in id order and "after the
            # last id read" misses nothing.
            rows = list(
                await self._s.scalars(
                    select(BroadcastRow)
                    .where(BroadcastRow.id > cursor.last_id)
                    .order_by(BroadcastRow.id)
                    .limit(BROADCAST_BATCH)
                )
            )
            last = rows[-1].id if rows else cursor.last_id
            return BroadcastCursor(last_id=last), [(r.id, _event(r)) for r in rows]
        # PostgreSQL: ids are taken before commit, so a row with a lower id can become
        # visible after one with a higher id. Transaction ids say what can still come:
        # every transaction older than the snapshot's xmin has ended, so rows written by
        # them are all visible now and final. Take the horizon FIRST, then read every
        # row at or past the old horizon (a later snapshot sees at least as much).
        horizon = await self._horizon()
        rows = list(
            await self._s.scalars(
                select(BroadcastRow)
                .where(BroadcastRow.txid >= cursor.horizon)
                .order_by(BroadcastRow.id)
            )
        )
        fresh = [(r.id, _event(r)) for r in rows if r.id not in cursor.seen]
        pending = frozenset(r.id for r in rows if r.txid is not None and r.txid >= horizon)
        return BroadcastCursor(horizon=max(horizon, cursor.horizon), seen=pending), fresh

    async def _horizon(self) -> int:
        return int(await self._s.scalar(text(_XMIN)) or 0)

    async def purge(self, before: datetime, limit: int) -> int:
        ids = list(
            await self._s.scalars(
                select(BroadcastRow.id).where(BroadcastRow.created_at < before).limit(limit)
            )
        )
        if ids:
            await self._s.execute(delete(BroadcastRow).where(BroadcastRow.id.in_(ids)))
        return len(ids)


def _notifying(added: Any) -> Any:
    """``added`` (an ``INSERT … RETURNING id`` into the outbox) that also sends the
    NOTIFY for its last row, in one round trip: ``WITH added AS (INSERT …),
    notified AS (SELECT pg_notify(…, max(id)) FROM added) SELECT id FROM added, notified``."""
    rows = added.cte("added")
    notified = (
        select(func.pg_notify(CHANNEL, cast(func.max(rows.c.id), Text)).label("sent"))
        .select_from(rows)
        .cte("notified")
    )
    return select(rows.c.id).select_from(rows.join(notified, true()))


def _rows(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _mfa(row: MfaRow) -> MfaRecord:
    return MfaRecord(
        user_id=row.user_id,
        sealed_secret=row.sealed_secret,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        pending_expires_at=row.pending_expires_at,
        last_step=row.last_step,
    )


class SqlMfaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, user_id: int) -> MfaRecord | None:
        row = await self._s.scalar(
            select(MfaRow).where(MfaRow.user_id == user_id),
            execution_options={"populate_existing": True},
        )
        return _mfa(row) if row else None

    async def start(
        self, user_id: int, sealed_secret: str, now: datetime, expires_at: datetime
    ) -> bool:
        await self._s.execute(
            delete(MfaRow).where(MfaRow.user_id == user_id, MfaRow.confirmed_at.is_(None))
        )
        if await self._s.scalar(select(MfaRow.user_id).where(MfaRow.user_id == user_id)):
            return False
        await self._s.execute(
            insert(MfaRow).values(
                user_id=user_id,
                sealed_secret=sealed_secret,
                created_at=now,
                confirmed_at=None,
                pending_expires_at=expires_at,
                last_step=0,
            )
        )
        return True

    async def confirm(self, user_id: int, sealed_secret: str, step: int, now: datetime) -> bool:
        result = await self._s.execute(
            update(MfaRow)
            .where(
                MfaRow.user_id == user_id,
                MfaRow.sealed_secret == sealed_secret,
                MfaRow.confirmed_at.is_(None),
                MfaRow.pending_expires_at > now,
            )
            .values(confirmed_at=now, pending_expires_at=None, last_step=step)
        )
        return _rows(result) == 1

    async def accept_step(self, user_id: int, step: int) -> bool:
        result = await self._s.execute(
            update(MfaRow)
            .where(
                MfaRow.user_id == user_id,
                MfaRow.confirmed_at.is_not(None),
                MfaRow.last_step < step,
            )
            .values(last_step=step)
        )
        return _rows(result) == 1

    async def delete(self, user_id: int, *, pending_only: bool = False) -> bool:
        condition = [MfaRow.user_id == user_id]
        if pending_only:
            condition.append(MfaRow.confirmed_at.is_(None))
        result = await self._s.execute(delete(MfaRow).where(*condition))
        if not pending_only:
            await self._s.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            await self.drop_challenges(user_id)
        return _rows(result) > 0

    async def enabled_user_ids(self) -> set[int]:
        return set(
            await self._s.scalars(select(MfaRow.user_id).where(MfaRow.confirmed_at.is_not(None)))
        )

    async def sealed_secrets(self) -> list[tuple[int, str]]:
        rows = await self._s.execute(
            select(MfaRow.user_id, MfaRow.sealed_secret).order_by(MfaRow.user_id)
        )
        return [(int(user_id), str(sealed)) for user_id, sealed in rows]

    async def replace_sealed(self, user_id: int, old: str, new: str) -> bool:
        result = await self._s.execute(
            update(MfaRow)
            .where(MfaRow.user_id == user_id, MfaRow.sealed_secret == old)
            .values(sealed_secret=new)
        )
        return _rows(result) == 1

    async def add_recovery_codes(self, user_id: int, digests: list[str], now: datetime) -> None:
        await self._s.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
        if digests:
            await self._s.execute(
                insert(RecoveryCodeRow),
                [
                    {"user_id": user_id, "code_digest": d, "created_at": now, "used_at": None}
                    for d in digests
                ],
            )

    async def spend_recovery_code(self, user_id: int, digest: str, now: datetime) -> bool:
        result = await self._s.execute(
            update(RecoveryCodeRow)
            .where(
                RecoveryCodeRow.user_id == user_id,
                RecoveryCodeRow.code_digest == digest,
                RecoveryCodeRow.used_at.is_(None),
            )
            .values(used_at=now)
        )
        return _rows(result) == 1

    async def recovery_codes_left(self, user_id: int) -> int:
        count = await self._s.scalar(
            select(func.count())
            .select_from(RecoveryCodeRow)
            .where(RecoveryCodeRow.user_id == user_id, RecoveryCodeRow.used_at.is_(None))
        )
        return int(count or 0)

    async def add_challenge(self, challenge_hash: str, challenge: Challenge, now: datetime) -> None:
        await self._s.execute(
            insert(ChallengeRow).values(
                challenge_hash=challenge_hash,
                user_id=challenge.user_id,
                user_epoch=challenge.user_epoch,
                bound_token_hash=challenge.bound_token_hash,
                carry_from=challenge.carry_from,
                created_at=now,
                expires_at=challenge.expires_at,
            )
        )

    async def get_challenge(self, challenge_hash: str) -> Challenge | None:
        row = await self._s.scalar(
            select(ChallengeRow).where(ChallengeRow.challenge_hash == challenge_hash)
        )
        if row is None:
            return None
        return Challenge(
            user_id=row.user_id,
            user_epoch=row.user_epoch,
            bound_token_hash=row.bound_token_hash,
            carry_from=row.carry_from,
            expires_at=row.expires_at,
        )

    async def take_challenge(self, challenge_hash: str) -> bool:
        result = await self._s.execute(
            delete(ChallengeRow).where(ChallengeRow.challenge_hash == challenge_hash)
        )
        return _rows(result) == 1

    async def drop_challenges(self, user_id: int) -> int:
        result = await self._s.execute(delete(ChallengeRow).where(ChallengeRow.user_id == user_id))
        return _rows(result)

    async def purge(self, now: datetime, limit: int) -> int:
        challenges = select(ChallengeRow.id).where(ChallengeRow.expires_at <= now).limit(limit)
        done = _rows(
            await self._s.execute(delete(ChallengeRow).where(ChallengeRow.id.in_(challenges)))
        )
        pending = (
            select(MfaRow.user_id)
            .where(MfaRow.confirmed_at.is_(None), MfaRow.pending_expires_at <= now)
            .limit(max(0, limit - done))
        )
        done += _rows(await self._s.execute(delete(MfaRow).where(MfaRow.user_id.in_(pending))))
        return done


# The separator as SQL text: a string argument becomes a parameter SQLAlchemy renders
# into the statement at every execution ("literal execute": a regular-expression pass
# over the compiled SQL, about 30 us of every permission check).
_SPACE: Any = literal_column("' '")  # typed as str by SQLAlchemy; any SQL expression works


def _joined_patterns(user_id: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ScalarSelect[Any]:
    """Every pattern of every role ``user_id`` holds, as one string (NULL for none): a
    correlated subquery, so the row it sits in is read in the same statement."""
    return (
        select(func.aggregate_strings(RolePermissionRow.pattern, _SPACE))
        .join(UserRoleRow, UserRoleRow.role_id == RolePermissionRow.role_id)
        .where(UserRoleRow.user_id == user_id)
        .scalar_subquery()
    )


def _split_patterns(joined: str | None) -> builtins.list[str]:
    # A pattern never holds a space (``PermissionRegistry.check_pattern`` refuses one).
    return sorted(set(joined.split(" "))) if joined else []


# The reads made per page view, connect, re-check and guarded event, built once with
# their key as a parameter: a statement built per call spends CPU on building it and on
# its cache key every time (0.4-0.7 ms of a 1.8-2.5 ms permission check, bench row 9).
# They select columns, not mapped entities (Core rows, no ORM loading or identity map),
# so that they run as they are on a bare ``AsyncConnection`` in a unit of work of one
# statement (``uow.SqlOneRead``): what the ORM session cost those reads was about half
# of their CPU (docs/performance.md, "Reads without an ORM session"). The columns are
# the domain objects' fields, in their order, so a row's slice is the object's arguments.
_SESSION_FIELDS = tuple(getattr(SessionRow, f.name) for f in dataclasses.fields(AuthSession))
_USER_FIELDS = tuple(getattr(UserRow, f.name) for f in dataclasses.fields(User))
_S = len(_SESSION_FIELDS)
_U = len(_USER_FIELDS)


def _session_at(row: Row[*tuple[Any, ...]]) -> AuthSession:
    """The session of a row that starts with ``_SESSION_FIELDS``."""
    return AuthSession(*row[:_S])


def _user_at(row: Row[*tuple[Any, ...]]) -> User | None:
    """The user of a row with ``_USER_FIELDS`` after the session's (None: an outer join
    that found none)."""
    return User(*row[_S : _S + _U]) if row[_S] is not None else None


def _session_with_user(*also: ColumnElement[Any] | ScalarSelect[Any]) -> Select[Any]:
    return select(*_SESSION_FIELDS, *_USER_FIELDS, *also).outerjoin(
        UserRow, SessionRow.user_id == UserRow.id
    )


_SESSION_BY_TOKEN_HASH = _session_with_user().where(SessionRow.token_hash == bindparam("key"))
_SESSION_BY_ID = _session_with_user().where(SessionRow.id == bindparam("key"))
# NO KEY UPDATE: a ticket inserted for this session need not wait.
_SESSION_BY_ID_LOCKED = _SESSION_BY_ID.with_for_update(of=SessionRow, key_share=True)
_ACTING_WITH_PATTERNS = _session_with_user(_joined_patterns(SessionRow.user_id)).where(
    SessionRow.id == bindparam("key")
)
_ACTIVE_PATTERNS = select(UserRow.is_active, _joined_patterns(UserRow.id)).where(
    UserRow.id == bindparam("key")
)
_PATTERNS_OF = (
    select(RolePermissionRow.pattern)
    .join(UserRoleRow, UserRoleRow.role_id == RolePermissionRow.role_id)
    .where(UserRoleRow.user_id == bindparam("key"))
    .distinct()
)
_LIVE_SESSIONS_OF = (
    select(*_SESSION_FIELDS)
    .where(SessionRow.user_id == bindparam("key"), *_live(bindparam("now")))
    .order_by(SessionRow.last_seen_at.desc())
)

# What the account components show, for any number of sessions in one statement
# (``accounts_of``): every live session of each asked session's owner (and the asked ones,
# live or not), with the user, whether two-factor is on, and how many recovery codes are
# left. The ids are one expanding parameter (SQLAlchemy renders the list at execution), so
# the statement is compiled once whatever their number.
_ASKED: BindParameter[list[int]] = bindparam("session_ids", expanding=True)
_ACCOUNTS_OF = (
    select(
        *_SESSION_FIELDS,
        *_USER_FIELDS,
        MfaRow.confirmed_at,
        select(func.count())
        .select_from(RecoveryCodeRow)
        .where(RecoveryCodeRow.user_id == UserRow.id, RecoveryCodeRow.used_at.is_(None))
        .scalar_subquery(),
    )
    .join(UserRow, SessionRow.user_id == UserRow.id)
    .outerjoin(MfaRow, MfaRow.user_id == UserRow.id)
    .where(
        SessionRow.user_id.in_(select(SessionRow.user_id).where(SessionRow.id.in_(_ASKED))),
        or_(SessionRow.id.in_(_ASKED), and_(*_live(bindparam("now")))),
    )
    .order_by(SessionRow.last_seen_at.desc(), SessionRow.id.desc())
)


# The sign-in cycle's statements, built once in the same way (docs/performance.md,
# "Statements built once"). Writes go through the tables (Core), not the mapped classes:
# the same INSERT or UPDATE through a mapped class costs 15-50 % more CPU
# (``bench/sql_overhead.py``); reads that load entities stay ORM. Statements whose SQL
# differs by backend (ON CONFLICT) or by shape are built on first use and kept. Several
# rows of one INSERT are executed as a list of rows ("insertmanyvalues"), never as
# ``.values([...])``, which SQLAlchemy cannot cache (tests/integration/test_statement_cache.py).
def _table(row: type[Any]) -> Table:
    return typing.cast(Table, row.__table__)


_SESSIONS = _table(SessionRow)
_USERS = _table(UserRow)
_TICKETS = _table(TicketRow)
_THROTTLES = _table(ThrottleRow)
_BROADCASTS = _table(BroadcastRow)

_SESSION_NOW = bindparam("now", type_=_SESSIONS.c.revoked_at.type)
# A renewal: live, on its epoch, and its user still allowed to act.
_TOUCH = (
    update(_SESSIONS)
    .where(
        _SESSIONS.c.id == bindparam("session_id"),
        _SESSIONS.c.user_epoch == bindparam("epoch"),
        *_live(_SESSION_NOW, _SESSIONS.c),
        _may_act_as_user(),
    )
    .values(
        last_seen_at=bindparam("seen", type_=_SESSIONS.c.last_seen_at.type),
        idle_expires_at=bindparam("idle", type_=_SESSIONS.c.idle_expires_at.type),
    )
)
_REVOKE = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id.in_(bindparam("ids", expanding=True)), *_live(_SESSION_NOW, _SESSIONS.c))
    .values(revoked_at=_SESSION_NOW)
    .returning(_SESSIONS.c.id)
)
_USER_BY_KEY = select(UserRow).where(UserRow.username_key == bindparam("key"))
# FOR NO KEY UPDATE: rows that merely reference the user (a new session, an audit row)
# take KEY SHARE for their foreign key and must not wait for it.
_USER_LOCKED = (
    select(UserRow)
    .where(UserRow.id == bindparam("key"))
    .with_for_update(key_share=True)
    .execution_options(populate_existing=True)
)
# As ``_USER_LOCKED``, of the user's row only (the outer join's nullable side cannot be
# locked, and need not be), with whether two-factor sign-in is on.
_USER_SIGNING_IN = (
    select(UserRow, MfaRow.confirmed_at)
    .outerjoin(MfaRow, MfaRow.user_id == UserRow.id)
    .where(UserRow.id == bindparam("key"))
    .with_for_update(key_share=True, of=UserRow)
    .execution_options(populate_existing=True)
)

_ADD_AUDIT = insert(_table(AuditRow)).inline().execution_options(**{DEFERRABLE: True})
_ADD_TICKET = insert(_TICKETS)
# One conditional write: of two redemptions at once, one sets redeemed_at (and gets the
# row back); the other waits for its lock, then matches nothing.
_TICKET_FIELDS = (_TICKETS.c.session_id, _TICKETS.c.bound_token_hash, _TICKETS.c.expires_at)
_CLAIM_TICKET = (
    update(_TICKETS)
    .where(_TICKETS.c.ticket_hash == bindparam("hash"), _TICKETS.c.redeemed_at.is_(None))
    .values(redeemed_at=bindparam("now", type_=_TICKETS.c.redeemed_at.type))
    .returning(*_TICKET_FIELDS)
)
_TICKET_BY_HASH = select(*_TICKET_FIELDS).where(_TICKETS.c.ticket_hash == bindparam("hash"))


@functools.cache
def _add_session(dialect: str) -> Any:
    return (
        _insert_of(dialect)(_SESSIONS)
        .on_conflict_do_nothing(index_elements=[_SESSIONS.c.token_hash])
        .returning(*_SESSIONS.c)
    )


@functools.cache
def _retire_token(dialect: str) -> Any:
    added = _insert_of(dialect)(_SESSIONS)
    return added.on_conflict_do_update(
        index_elements=[_SESSIONS.c.token_hash],
        set_={"revoked_at": func.coalesce(_SESSIONS.c.revoked_at, added.excluded.revoked_at)},
    )


@functools.cache
def _set_token_hash(with_epoch: bool, replacing: bool, unless_taken: bool) -> Any:
    c = _SESSIONS.c
    values: dict[str, Any] = {"token_hash": bindparam("new_hash")}
    if with_epoch:
        values["user_epoch"] = bindparam("epoch")
    where = [c.id == bindparam("session_id")]
    if replacing:  # kept from the first cookie on: later rotations keep it
        values["signed_in_from"] = func.coalesce(c.signed_in_from, bindparam("replaced"))
        if unless_taken:
            other = _SESSIONS.alias("other")
            taken = select(other.c.id).where(
                other.c.signed_in_from == bindparam("replaced"),
                other.c.id != bindparam("session_id"),
            )
            where.append(~taken.exists())
    return update(_SESSIONS).where(*where).values(values)


@functools.cache
def _sign_out(on_epoch: bool) -> Any:
    c = _SESSIONS.c
    where = [c.id == bindparam("session_id"), *_live(_SESSION_NOW, c)]
    if on_epoch:
        where.append(c.user_epoch == bindparam("epoch"))
    owner_name = select(_USERS.c.username).where(_USERS.c.id == c.user_id)
    return (
        update(_SESSIONS)
        .where(*where)
        .values(revoked_at=_SESSION_NOW)
        .returning(*c, owner_name.scalar_subquery().label("owner_name"))
    )


@functools.cache
def _lock_throttle(dialect: str) -> Any:
    c = _THROTTLES.c
    return (
        _insert_of(dialect)(_THROTTLES)
        .on_conflict_do_update(index_elements=[c.key], set_={"failures": c.failures})
        .returning(c.key, c.failures, c.blocked_until, c.updated_at)
    )


@functools.lru_cache(maxsize=16)
def _save_throttles(count: int) -> Any:
    c = _THROTTLES.c

    def per_key(column: Any) -> Any:
        whens = [
            (c.key == bindparam(f"key_{i}"), bindparam(f"{column.name}_{i}", type_=column.type))
            for i in range(count)
        ]
        return case(*whens, else_=column)

    return (
        update(_THROTTLES)
        .where(c.key.in_([bindparam(f"key_{i}") for i in range(count)]))
        .values(
            failures=per_key(c.failures),
            blocked_until=per_key(c.blocked_until),
            updated_at=per_key(c.updated_at),
        )
    )


# ``clear(forget)`` and ``refund(refund, threshold)`` in one statement, leaving rows with
# no failures to the purge (``ThrottlePolicy.forgotten``) instead of deleting them. The
# sub-select takes the two row locks in key order (PostgreSQL; SQLite has one writer), as
# ``lock`` does: no deadlock with a reservation.
def _settle() -> Any:
    c = _THROTTLES.c
    keys: list[Any] = [bindparam("forget"), bindparam("refund")]
    locked = select(c.key).where(c.key.in_(keys)).order_by(c.key).with_for_update()
    left = c.failures - 1
    forgetting = c.key == bindparam("forget")
    return (
        update(_THROTTLES)
        .where(c.key.in_(locked.scalar_subquery()), or_(forgetting, c.failures > 0))
        .values(
            failures=case((forgetting, 0), else_=left),
            blocked_until=case(
                (forgetting, None),
                (left >= bindparam("threshold"), c.blocked_until),
                else_=None,
            ),
        )
    )


_SETTLE_THROTTLES = _settle()


@functools.cache
def _add_broadcast(postgres: bool) -> Any:
    """One outbox row, or several in one INSERT when executed with several."""
    if postgres:  # the writing transaction's id, which the followers' horizon reads
        return insert(_BROADCASTS).values(txid=_CURRENT_XACT).returning(_BROADCASTS.c.id)
    return insert(_BROADCASTS).returning(_BROADCASTS.c.id)


@functools.lru_cache(maxsize=16)
def _add_broadcasts_notifying(count: int, names: tuple[str, ...]) -> Any:
    """PostgreSQL: ``count`` rows of the columns ``names`` (values ``<column>_<i>``) and
    the NOTIFY, one statement.
    An INSERT inside a CTE cannot be sent as "insertmanyvalues"; with more than one row it
    is SQLAlchemy's multi-row VALUES, which SQLAlchemy compiles anew at every execution
    (its cache does not take them)."""
    c = _BROADCASTS.c
    rows: list[dict[str, Any]] = [
        {name: bindparam(f"{name}_{i}", type_=c[name].type) for name in names} for i in range(count)
    ]
    for row in rows:
        row["txid"] = _CURRENT_XACT
    added = insert(_BROADCASTS).values(rows[0] if count == 1 else rows)
    return _notifying(added.returning(c.id))


class SqlRoleReads:
    """The checks' reads of one statement each (``ports.RoleReads``): Core statements on
    a ``RowSource``."""

    def __init__(self, rows: RowSource) -> None:
        self._rows = rows

    async def patterns_of(self, user_id: int) -> builtins.list[str]:
        return list((await self._rows.execute(_PATTERNS_OF, {"key": user_id})).scalars())

    async def acting_with_patterns(
        self, session_id: int
    ) -> tuple[AuthSession, User | None, builtins.list[str]] | None:
        found = (await self._rows.execute(_ACTING_WITH_PATTERNS, {"key": session_id})).first()
        if found is None:
            return None
        return _session_at(found), _user_at(found), _split_patterns(found[_S + _U])

    async def active_patterns(self, user_id: int) -> builtins.list[str] | None:
        found = (await self._rows.execute(_ACTIVE_PATTERNS, {"key": user_id})).first()
        if found is None or not found[0]:
            return None
        return _split_patterns(found[1])


class SqlRoleRepository(SqlRoleReads):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._s = session

    async def add(self, name: str, description: str, patterns: list[str], now: datetime) -> Role:
        row = RoleRow(name=name, description=_storable(description, 255), created_at=now)
        self._s.add(row)
        try:
            await self._s.flush()
        except IntegrityError:
            raise RoleExists(name) from None
        unique = sorted(set(patterns))
        if unique:
            await self._s.execute(
                insert(RolePermissionRow), [{"role_id": row.id, "pattern": p} for p in unique]
            )
        return Role(row.id, row.name, row.description, tuple(unique))

    async def get(self, name: str, *, lock: bool = False) -> Role | None:
        query = select(RoleRow).where(RoleRow.name == name)
        if lock:
            # FOR UPDATE: a grant's foreign key takes KEY SHARE on this row, so a grant
            # of a role being deleted waits for the delete, then finds the role gone.
            query = query.with_for_update()
        row = await self._s.scalar(query, execution_options={"populate_existing": True})
        if row is None:
            return None
        patterns = await self._s.scalars(
            select(RolePermissionRow.pattern)
            .where(RolePermissionRow.role_id == row.id)
            .order_by(RolePermissionRow.pattern)
        )
        return Role(row.id, row.name, row.description, tuple(patterns))

    async def list(self) -> list[Role]:
        rows = (await self._s.scalars(select(RoleRow).order_by(RoleRow.name))).all()
        patterns: dict[int, builtins.list[str]] = {}
        for role_id, pattern in await self._s.execute(
            select(RolePermissionRow.role_id, RolePermissionRow.pattern).order_by(
                RolePermissionRow.pattern
            )
        ):
            patterns.setdefault(role_id, []).append(pattern)
        counted = await self._s.execute(
            select(UserRoleRow.role_id, func.count()).group_by(UserRoleRow.role_id)
        )
        holders: dict[int, int] = {role_id: count for role_id, count in counted}
        return [
            Role(r.id, r.name, r.description, tuple(patterns.get(r.id, ())), holders.get(r.id, 0))
            for r in rows
        ]

    async def delete(self, role_id: int) -> builtins.list[int]:
        held = await self._s.scalars(
            delete(UserRoleRow).where(UserRoleRow.role_id == role_id).returning(UserRoleRow.user_id)
        )
        holders = sorted(held)
        await self._s.execute(delete(RolePermissionRow).where(RolePermissionRow.role_id == role_id))
        await self._s.execute(delete(RoleRow).where(RoleRow.id == role_id))
        return holders

    async def grant(self, user_id: int, role_id: int, now: datetime) -> bool:
        statement = (
            _dialect_insert(self._s)(UserRoleRow)
            .values(user_id=user_id, role_id=role_id, granted_at=now)
            .on_conflict_do_nothing()
        )
        result = await self._s.execute(statement)
        return bool(_rows(result))

    async def revoke(self, user_id: int, role_id: int) -> bool:
        result = await self._s.execute(
            delete(UserRoleRow).where(
                UserRoleRow.user_id == user_id, UserRoleRow.role_id == role_id
            )
        )
        return bool(_rows(result))

    async def names_by_user(self) -> dict[int, builtins.list[str]]:
        found: dict[int, builtins.list[str]] = {}
        for user_id, name in await self._s.execute(
            select(UserRoleRow.user_id, RoleRow.name)
            .join(RoleRow, RoleRow.id == UserRoleRow.role_id)
            .order_by(RoleRow.name)
        ):
            found.setdefault(user_id, []).append(name)
        return found
