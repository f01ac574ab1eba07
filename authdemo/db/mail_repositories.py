"""SQL repositories for accounts by e-mail: addresses and codes, rate limits, the mail
outbox. They may flush; they never commit. Every check that grants something is one
conditional statement whose row count (or returned row) decides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import User
from ..mail import CodePurpose, EmailCode, EmailTaken, OutgoingMail, QueuedMail
from .engine import DEFERRABLE
from .models import EmailCodeRow, MailRow, RateLimitRow, UserRow
from .repositories import _dialect_insert, _rows, _storable, _table, _user


class SqlEmailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find_user(self, email_key: str) -> User | None:
        row = await self._s.scalar(select(UserRow).where(UserRow.email_key == email_key))
        return _user(row) if row else None

    async def set_email(
        self,
        user_id: int,
        email: str | None,
        email_key: str | None,
        verified_at: datetime | None,
        *,
        signup_expires_at: datetime | None = None,
    ) -> None:
        statement = (
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(
                email=email,
                email_key=email_key,
                email_verified_at=verified_at,
                signup_expires_at=signup_expires_at,
            )
        )
        try:
            async with self._s.begin_nested():  # a taken address leaves the transaction usable
                await self._s.execute(statement)
        except IntegrityError:
            raise EmailTaken() from None

    async def mark_verified(self, user_id: int, now: datetime) -> bool:
        result = await self._s.execute(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.signup_expires_at.is_not(None))
            .values(email_verified_at=now, signup_expires_at=None)
        )
        return _rows(result) == 1

    async def purge_unverified(self, now: datetime, limit: int) -> int:
        doomed = (
            select(UserRow.id)
            .where(UserRow.signup_expires_at <= now)
            .limit(limit)
            .scalar_subquery()
        )
        result = await self._s.execute(
            delete(UserRow).where(UserRow.id.in_(doomed), UserRow.signup_expires_at <= now),
            execution_options={"synchronize_session": False},
        )
        return _rows(result)

    async def drop_unverified(self, user_id: int) -> bool:
        result = await self._s.execute(
            delete(UserRow).where(UserRow.id == user_id, UserRow.signup_expires_at.is_not(None)),
            execution_options={"synchronize_session": False},
        )
        return _rows(result) == 1

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
        values = {
            "user_id": user_id,
            "purpose": str(purpose),
            "email": email,
            "email_key": email_key,
            "code_digest": code_digest,
            "created_at": now,
            "expires_at": expires_at,
            "tries": 0,
        }
        # One statement: the new code replaces the old one (which stops working) whoever
        # else is asking for one at the same moment.
        insert = _dialect_insert(self._s)(EmailCodeRow).values(**values)
        await self._s.execute(
            insert.on_conflict_do_update(
                index_elements=[EmailCodeRow.user_id, EmailCodeRow.purpose],
                set_={k: insert.excluded[k] for k in values if k not in ("user_id", "purpose")},
            )
        )

    async def get_code(self, user_id: int, purpose: CodePurpose) -> EmailCode | None:
        row = await self._s.scalar(
            select(EmailCodeRow).where(
                EmailCodeRow.user_id == user_id, EmailCodeRow.purpose == str(purpose)
            ),
            execution_options={"populate_existing": True},
        )
        if row is None:
            return None
        return EmailCode(
            id=row.id,
            user_id=row.user_id,
            purpose=CodePurpose(row.purpose),
            email=row.email,
            email_key=row.email_key,
            code_digest=row.code_digest,
            expires_at=row.expires_at,
            tries=row.tries,
        )

    async def spend_code(self, code_id: int, code_digest: str, now: datetime, tries: int) -> bool:
        result = await self._s.execute(
            delete(EmailCodeRow).where(
                EmailCodeRow.id == code_id,
                EmailCodeRow.code_digest == code_digest,
                EmailCodeRow.expires_at > now,
                EmailCodeRow.tries < tries,
            ),
            execution_options={"synchronize_session": False},
        )
        return _rows(result) == 1

    async def count_wrong(self, code_id: int, tries: int) -> int | None:
        count = await self._s.scalar(
            update(EmailCodeRow)
            .where(EmailCodeRow.id == code_id, EmailCodeRow.tries < tries)
            .values(tries=EmailCodeRow.tries + 1)
            .returning(EmailCodeRow.tries),
            execution_options={"synchronize_session": False},
        )
        return None if count is None else int(count)

    async def drop_codes(self, user_id: int, purpose: CodePurpose | None = None) -> None:
        statement = delete(EmailCodeRow).where(EmailCodeRow.user_id == user_id)
        if purpose is not None:
            statement = statement.where(EmailCodeRow.purpose == str(purpose))
        await self._s.execute(statement, execution_options={"synchronize_session": False})

    async def purge_codes(self, now: datetime, limit: int) -> int:
        doomed = (
            select(EmailCodeRow.id).where(EmailCodeRow.expires_at <= now).limit(limit)
        ).scalar_subquery()
        result = await self._s.execute(
            delete(EmailCodeRow).where(EmailCodeRow.id.in_(doomed)),
            execution_options={"synchronize_session": False},
        )
        return _rows(result)


class SqlRateLimitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def hit(self, key: str, now: datetime, window: timedelta) -> tuple[int, datetime]:
        insert = _dialect_insert(self._s)(RateLimitRow).values(
            key=key, count=1, window_ends_at=now + window
        )
        ended = RateLimitRow.window_ends_at <= now
        row = (
            await self._s.execute(
                insert.on_conflict_do_update(
                    index_elements=[RateLimitRow.key],
                    set_={
                        "count": case((ended, 1), else_=RateLimitRow.count + 1),
                        "window_ends_at": case(
                            (ended, insert.excluded.window_ends_at),
                            else_=RateLimitRow.window_ends_at,
                        ),
                    },
                ).returning(RateLimitRow.count, RateLimitRow.window_ends_at),
                execution_options={"populate_existing": True},
            )
        ).one()
        return int(row[0]), row[1]

    async def purge(self, now: datetime, limit: int) -> int:
        doomed = (
            select(RateLimitRow.key).where(RateLimitRow.window_ends_at <= now).limit(limit)
        ).scalar_subquery()
        result = await self._s.execute(
            delete(RateLimitRow).where(
                RateLimitRow.key.in_(doomed), RateLimitRow.window_ends_at <= now
            ),
            execution_options={"synchronize_session": False},
        )
        return _rows(result)


# Built once: a statement built per call is built, and its cache key computed, on every
# call (bench row 10; docs/performance.md, "Statements built once").
_ADD_MAIL = insert(_table(MailRow)).inline().execution_options(**{DEFERRABLE: True})


class SqlMailOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, mail: OutgoingMail, now: datetime) -> None:
        # A Core INSERT with its values as parameters, not an ORM object and a flush (about
        # 30 % less CPU added to the transaction), built once, and deferrable: it waits for
        # the transaction's next statement or commit (engine.DEFERRABLE).
        values = {
            "created_at": now,
            "recipient": mail.recipient,
            "subject": _storable(mail.subject, 255),
            "body_text": mail.text,
            "body_html": mail.html,
            "kind": mail.kind[:32],
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
        }
        await self._s.execute(_ADD_MAIL, values)

    def _due(self, now: datetime) -> Any:
        return and_(
            MailRow.sent_at.is_(None),
            MailRow.next_attempt_at <= now,
            or_(MailRow.claimed_until.is_(None), MailRow.claimed_until <= now),
        )

    async def claim_due(
        self, now: datetime, lease: timedelta, claim: str, limit: int
    ) -> list[QueuedMail]:
        # PostgreSQL: rows another sender is claiming right now are skipped, not waited
        # for; SQLite has one writer, so the select and the update cannot interleave.
        due = (
            select(MailRow.id)
            .where(self._due(now))
            .order_by(MailRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self._s.scalars(due))
        if not ids:
            return []
        rows = await self._s.scalars(
            update(MailRow)
            .where(MailRow.id.in_(ids), self._due(now))  # re-checked: a lease is one statement
            .values(claimed_until=now + lease, claim=claim)
            .returning(MailRow),
            execution_options={"synchronize_session": False, "populate_existing": True},
        )
        return sorted(
            (
                QueuedMail(
                    id=row.id,
                    mail=OutgoingMail(
                        row.recipient, row.subject, row.body_text, row.body_html, row.kind
                    ),
                    attempts=row.attempts,
                    created_at=row.created_at,
                    claim=claim,
                )
                for row in rows
            ),
            key=lambda queued: queued.id,
        )

    async def mark_sent(self, mail_id: int, claim: str, now: datetime) -> bool:
        result = await self._s.execute(
            update(MailRow)
            .where(MailRow.id == mail_id, MailRow.claim == claim, MailRow.sent_at.is_(None))
            .values(sent_at=now, attempts=MailRow.attempts + 1, claimed_until=None, last_error=""),
            execution_options={"synchronize_session": False},
        )
        return _rows(result) == 1

    async def mark_failed(
        self, mail_id: int, claim: str, error: str, next_attempt_at: datetime
    ) -> bool:
        result = await self._s.execute(
            update(MailRow)
            .where(MailRow.id == mail_id, MailRow.claim == claim, MailRow.sent_at.is_(None))
            .values(
                attempts=MailRow.attempts + 1,
                next_attempt_at=next_attempt_at,
                claimed_until=None,
                claim=None,
                last_error=_storable(error, 255),
            ),
            execution_options={"synchronize_session": False},
        )
        return _rows(result) == 1

    async def next_due(self) -> datetime | None:
        unsent = MailRow.sent_at.is_(None)
        waiting = await self._s.scalar(
            select(func.min(MailRow.next_attempt_at)).where(unsent, MailRow.claim.is_(None))
        )
        leased = await self._s.scalar(
            select(func.min(MailRow.claimed_until)).where(unsent, MailRow.claim.is_not(None))
        )
        times = [t for t in (waiting, leased) if t is not None]
        return min(times) if times else None

    async def pending(self) -> int:
        return int(
            await self._s.scalar(
                select(func.count()).select_from(MailRow).where(MailRow.sent_at.is_(None))
            )
            or 0
        )

    async def purge(self, before: datetime, limit: int) -> int:
        doomed = (
            select(MailRow.id).where(MailRow.created_at < before).limit(limit)
        ).scalar_subquery()
        result = await self._s.execute(
            delete(MailRow).where(MailRow.id.in_(doomed)),
            execution_options={"synchronize_session": False},
        )
        return _rows(result)
