from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import event

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.engine import create_engine
from authdemo.db.schema import check_schema
from authdemo.domain import ClientInfo, InvalidCredentials, SchemaNotReady, address_key
from authdemo.security import hash_token
from tests.conftest import cheap_hasher
from tests.support.db import migrate, sqlite_url
from tests.support.fakes import BROWSER


async def test_login_rotation_and_logout_on_a_real_database(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", "correct horse")
        anonymous = service.new_token()
        result = await service.login(
            hash_token(anonymous), "alice", "correct horse", ClientInfo("::1", "ua")
        )
        token = (await service.redeem_ticket(result.ticket, anonymous)).token
        resolved = await service.resolve(token)
        assert resolved.signed_in is not None
        assert resolved.signed_in.user.username == "alice"
        assert (await service.resolve(anonymous)).needs_new_token
        await service.logout(result.signed_in.session.id)
        assert (await service.resolve(token)).needs_new_token


async def test_successful_sign_ins_give_their_reservations_back(settings: Settings) -> None:
    """Every attempt is counted before hashing; a success gives it back. Twice the
    address limit of good sign-ins from one address (with a failure between them, so
    the address row exists) is never throttled, and leaves nothing to remember."""
    limit = 3
    settings = replace(settings, throttle_address_failures=limit)
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", "correct horse")
        client = ClientInfo("198.51.100.9", "ua")
        for attempt in range(2 * limit):
            if attempt == 1:
                with pytest.raises(InvalidCredentials):
                    await service.login(BROWSER, "alice", "wrong", client)
            await service.login(BROWSER, "alice", "correct horse", client)
        async with rt.uow() as tx:
            left = await tx.throttle.get([address_key(client.addr)])
        assert left[address_key(client.addr)].failures == 1  # the one failure, no more


async def test_a_sign_in_locks_the_shared_address_row_only_for_its_last_statement(
    settings: Settings,
) -> None:
    """Everyone behind one address shares its throttle row, and the statement that gives
    the attempt back holds the row's lock until the commit. It is the sign-in's last
    statement, so the lock lasts one round trip, not the whole write (forty tabs behind
    one address once queued past the database timeout for it)."""
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", "correct horse")
        seen: list[str] = []

        def statement(*args: object) -> None:
            seen.append(" ".join(str(args[2]).split()))

        engine = rt.engine.sync_engine
        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "commit", lambda _conn: seen.append("COMMIT"))
        await service.login(BROWSER, "alice", "correct horse", ClientInfo("198.51.100.9", "ua"))
        opened = next(i for i, sql in enumerate(seen) if "INSERT INTO authdemo_sessions" in sql)
        committed = seen.index("COMMIT", opened)
        last = seen[committed - 1]
        assert last.startswith("UPDATE authdemo_login_throttle"), seen[opened:committed]


async def test_the_token_key_survives_restarts(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        token = rt.service.new_token()
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        assert not (await rt.service.resolve(token)).needs_new_token


async def test_a_missing_database_file_is_reported_not_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "missing.db"
    engine = create_engine(sqlite_url(path))
    with pytest.raises(SchemaNotReady, match="does not exist: run `authdemo migrate`"):
        await check_schema(engine)
    await engine.dispose()
    assert not path.exists()


async def test_an_unmigrated_database_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "empty.db"
    path.touch()
    engine = create_engine(sqlite_url(path))
    with pytest.raises(SchemaNotReady, match="no authdemo tables yet"):
        await check_schema(engine)
    await engine.dispose()


def test_a_database_behind_head_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from authdemo.db import schema

    path = tmp_path / "old.db"
    migrate(sqlite_url(path))

    async def check() -> None:
        engine = create_engine(sqlite_url(path))
        try:
            await check_schema(engine)
        finally:
            await engine.dispose()

    original = schema.HEAD_REVISION
    schema.HEAD_REVISION = "9999"
    try:
        with pytest.raises(SchemaNotReady, match="needs 9999"):
            asyncio.run(check())
    finally:
        schema.HEAD_REVISION = original


async def test_a_password_refused_unhashed_reads_no_user(settings: Settings) -> None:
    """An empty (or absurdly long) password is counted and refused without hashing, and
    without reading the account it names."""
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        await rt.service.create_user("alice", "correct horse")
        seen: list[str] = []
        event.listen(
            rt.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(str(a[2]))
        )
        with pytest.raises(InvalidCredentials):
            await rt.service.login(BROWSER, "alice", "", ClientInfo("198.51.100.9", "ua"))
        assert any("authdemo_login_throttle" in sql for sql in seen)  # counted
        assert not any("FROM authdemo_users" in sql for sql in seen), seen
