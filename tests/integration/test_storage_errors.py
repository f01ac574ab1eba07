"""Issue 13: what the database refuses never escapes as a raw driver error. Sign-ins
answer with the generic message and leave their throttle and audit rows; every test
runs on SQLite and on PostgreSQL (whose columns, unlike SQLite's, have lengths)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.domain import (
    AuditEvent,
    AuditKind,
    ClientInfo,
    InvalidCredentials,
    InvalidUsername,
    StorageRefused,
)
from authdemo.security import hash_token
from tests.conftest import cheap_hasher

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def test_sign_ins_with_names_that_fold_longer_than_a_column_are_recorded(
    settings: Settings,
) -> None:
    """Each name is "ß" * 63 and a digit: 64 characters as typed, 127 once folded."""
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        for i in range(6):
            with pytest.raises(InvalidCredentials) as refused:
                await rt.service.login(
                    hash_token(rt.service.new_token()), "ß" * 63 + str(i), "whatever pw", CLIENT
                )
            assert str(refused.value) == "Incorrect username or password."
        failed = [e for e in await rt.service.audit_events(None, 100) if e.kind == "login_failed"]
        assert len(failed) == 6
        async with rt.uow() as tx:
            states = await tx.throttle.get([f"address:{CLIENT.addr}"])
        assert states[f"address:{CLIENT.addr}"].failures == 6


async def test_creating_a_user_whose_name_folds_too_long_is_refused(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        with pytest.raises(InvalidUsername, match="at most 64"):
            await rt.service.create_user("ß" * 40, "correct horse")
        assert await rt.service.list_users() == []


async def test_a_statement_the_database_refuses_surfaces_as_storage_refused(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    naive = datetime(2026, 1, 1)  # the mistake under test: the column type refuses it

    async def write() -> None:
        async with sql_uow(write=True) as tx:
            await tx.audit.add(AuditEvent(at=naive, kind=AuditKind.LOGOUT))
            await tx.commit()

    with pytest.raises(StorageRefused):
        await write()


async def test_free_text_no_backend_can_store_is_stored_replaced(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    """NUL (PostgreSQL text cannot hold it) and unpaired surrogates (no UTF-8 form) in a
    user agent or a detail must not make the audit row, and with it the sign-in, fail."""
    event = AuditEvent(
        at=datetime.now(UTC),
        kind=AuditKind.LOGIN_FAILED,
        user_agent="curl\x00/8 \ud800",
        detail="x" * 1000,
    )
    async with sql_uow(write=True) as tx:
        await tx.audit.add(event)
        await tx.commit()
    async with sql_uow() as tx:
        (stored,) = await tx.audit.list(None, 10)
    assert stored.user_agent == "curl\ufffd/8 \ufffd"
    assert stored.detail == "x" * 255
