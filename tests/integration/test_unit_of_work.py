from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection

from authdemo.db.engine import NotOneRead, create_engine, one_statement_reads
from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.domain import ClientInfo, StorageUnavailable

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def test_nothing_is_kept_without_commit(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        await tx.users.add("alice", "alice", "h", NOW)
    async with sql_uow() as tx:
        assert await tx.users.get_by_key("alice") is None


async def test_an_error_rolls_back(sql_uow: SqlUnitOfWorkFactory) -> None:
    async def fail_midway() -> None:
        async with sql_uow(write=True) as tx:
            await tx.users.add("alice", "alice", "h", NOW)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_midway()
    async with sql_uow() as tx:
        assert await tx.users.get_by_key("alice") is None


async def test_commit_keeps_the_changes(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        await tx.users.add("alice", "alice", "h", NOW)
        await tx.commit()
    async with sql_uow() as tx:
        user = await tx.users.get_by_key("alice")
    assert user is not None and user.created_at == NOW


@pytest.mark.sqlite_only
async def test_sqlite_connections_have_wal_full_sync_foreign_keys_and_busy_timeout(
    db_url: str,
) -> None:
    engine = create_engine(db_url, timeout=7)
    try:
        # Several pooled connections, not just the first one.
        conns = [await engine.connect() for _ in range(3)]
        for conn in conns:
            values = [
                (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
            assert values == ["wal", 2, 1, 7000]
        for conn in conns:
            await conn.close()
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("bulk", [False, True])
async def test_only_bulk_engines_get_a_big_page_cache_and_memory_mapped_reads(
    db_url: str, bulk: bool
) -> None:
    engine = create_engine(db_url, bulk=bulk)
    try:
        async with engine.connect() as conn:
            cache = (await conn.execute(text("PRAGMA cache_size"))).scalar()
            mmap = (await conn.execute(text("PRAGMA mmap_size"))).scalar()
            sync = (await conn.execute(text("PRAGMA synchronous"))).scalar()
            checkpoint = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar()
            wal_limit = (await conn.execute(text("PRAGMA journal_size_limit"))).scalar()
        assert sync == 2  # durability is the same either way
        if bulk:
            # A memory map up to SQLite's ceiling (the pragma reads back what it got).
            assert (cache, mmap) == (-64 * 1024, 0x7FFF_0000)
            # Checkpoints every 256 MiB of WAL, not every 4 MiB; the file cut back to that.
            assert (checkpoint, wal_limit) == (65536, 256 * 1024 * 1024)
        else:  # servers keep SQLite's defaults: no SIGBUS from a mapped page
            assert cache == -2000 and mmap == 0
            assert (checkpoint, wal_limit) == (1000, 16 * 1024 * 1024)
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only
async def test_write_units_take_the_write_lock_when_they_begin(db_url: str) -> None:
    """BEGIN IMMEDIATE: a second writer waits at BEGIN instead of failing mid-transaction."""
    engine = create_engine(db_url, timeout=5)
    uow = SqlUnitOfWorkFactory(engine)
    order: list[str] = []
    try:
        async with uow(write=True) as first:
            await first.users.add("alice", "alice", "h", NOW)  # holds the lock from BEGIN

            async def second_writer() -> None:
                async with uow(write=True) as second:
                    await second.users.get_by_key("anyone")  # BEGIN IMMEDIATE blocks here
                    order.append("second began")
                    await second.users.add("bob", "bob", "h", NOW)
                    await second.commit()

            task = asyncio.create_task(second_writer())
            await asyncio.sleep(0.3)
            order.append("first commits")
            await first.commit()
        await asyncio.wait_for(task, 5)
        assert order == ["first commits", "second began"]
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only
async def test_a_write_queue_that_keeps_moving_is_waited_for_past_the_timeout(
    db_url: str,
) -> None:
    """Eight writers holding the turn 0.1 s each, with a 0.3 s timeout: the last waits
    ~0.8 s in all, but the queue moves, so none is refused (a saturated machine is not a
    stuck database)."""
    engine = create_engine(db_url, timeout=0.3)
    uow = SqlUnitOfWorkFactory(engine, timeout=0.3)
    done: list[int] = []

    async def writer(i: int) -> None:
        async with uow(write=True) as tx:
            await tx.users.add(f"user{i}", f"user{i}", "h", NOW)
            await asyncio.sleep(0.1)
            await tx.commit()
        done.append(i)

    try:
        started = time.monotonic()
        await asyncio.gather(*(writer(i) for i in range(8)))
        assert time.monotonic() - started > 0.6  # longer than the timeout, in all
        assert done == list(range(8))  # first come, first served
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only
async def test_a_writer_behind_a_stuck_one_is_refused_after_the_timeout(db_url: str) -> None:
    engine = create_engine(db_url, timeout=0.3)
    uow = SqlUnitOfWorkFactory(engine, timeout=0.3)
    release = asyncio.Event()

    async def stuck() -> None:
        async with uow(write=True) as tx:
            await tx.users.get_by_key("anyone")
            await release.wait()

    holder = asyncio.create_task(stuck())
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            async with uow(write=True):
                pass
        assert 0.25 < time.monotonic() - started < 1.0
    finally:
        release.set()
        await holder
        await engine.dispose()


@pytest.mark.parametrize("ending", ["commit", "no commit", "error", "read", "one read"])
async def test_every_ending_leaves_the_pooled_connection_outside_a_transaction(
    db_url: str, ending: str
) -> None:
    """The pool does not roll back connections given back to it (a round trip saved per
    transaction, ``pool_reset_on_return=None``): each unit of work ends its own. After
    any ending, the one pooled connection holds no lock (another engine writes at once)
    and no stale snapshot (it sees that write), and a write can begin on it."""
    engine = create_engine(db_url, timeout=1.0, pool_size=1, max_overflow=0)
    other = create_engine(db_url, timeout=1.0)
    uow, elsewhere = SqlUnitOfWorkFactory(engine, timeout=1.0), SqlUnitOfWorkFactory(other)
    try:
        async with uow(write=True) as tx:
            await tx.users.add("alice", "alice", "h", NOW)
            await tx.commit()
        if ending == "one read":
            async with uow(one_statement=True) as one:
                await one.sessions.get_with_user(1)
        with pytest.raises(RuntimeError) if ending == "error" else contextlib.nullcontext():
            async with uow(write=ending not in ("read", "one read")) as tx:
                await tx.users.get_by_key("alice")
                if ending not in ("read", "one read"):
                    await tx.throttle.save("ip:1", 1, None, NOW)  # a row lock / the write lock
                if ending == "commit":
                    await tx.commit()
                if ending == "error":
                    raise RuntimeError("boom")
        async with elsewhere(write=True) as tx:
            await tx.throttle.save("ip:1", 2, None, NOW)
            await tx.users.add("bob", "bob", "h", NOW)
            await tx.commit()
        async with uow() as tx:
            assert await tx.users.get_by_key("bob") is not None
        async with uow(write=True) as tx:
            await tx.users.add("carol", "carol", "h", NOW)
            await tx.commit()
    finally:
        await engine.dispose()
        await other.dispose()


@pytest.mark.parametrize("one_statement", [False, True])
async def test_drained_only_once_every_connection_is_back_in_the_pool(
    db_url: str, one_statement: bool
) -> None:
    """``drain`` is the server's last step before it disposes of the engine: a unit of
    work on its way out (rolling back, giving its connection back) still counts."""
    engine = create_engine(db_url)
    uow = SqlUnitOfWorkFactory(engine)
    out: list[int] = []
    event.listen(engine.sync_engine, "checkout", lambda *_: out.append(1))
    event.listen(engine.sync_engine, "checkin", lambda *_: out.append(-1))
    inside, leave = asyncio.Event(), asyncio.Event()

    async def reader() -> None:
        if one_statement:
            async with uow(one_statement=True) as one:
                await one.sessions.get_with_user(1)
                inside.set()
                await leave.wait()
            return
        async with uow() as tx:
            await tx.users.get_by_key("alice")
            inside.set()
            await leave.wait()

    task = asyncio.create_task(reader())
    try:
        await asyncio.wait_for(inside.wait(), 5)
        leave.set()  # it ends while drain waits
        assert await uow.drain(within=5)
        assert sum(out) == 0  # nothing in use: the engine may be disposed of now
        await task
    finally:
        await engine.dispose()


async def test_a_read_of_one_statement_reads_what_was_committed(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    """Its reads run on a bare connection and decode rows by position: every field of
    the session and of its user (none left at its default) comes back as written, as the
    repositories' decoding by name reads it (``sessions.add``, ``users.get``)."""
    async with sql_uow(write=True) as tx:
        user = await tx.users.add("alice", "alice", "h", NOW)
        await tx.emails.set_email(
            user.id,
            "alice@example.org",
            "alice@example.org",
            NOW,
            signup_expires_at=NOW + timedelta(days=1),
        )
        added = await tx.sessions.add(
            "hash-0",
            user.id,
            NOW,
            NOW + timedelta(hours=1),
            NOW + timedelta(hours=12),
            ClientInfo("203.0.113.9", "Firefox/140"),
            revoked=True,
            data={"cart": [1, 2], "theme": "dark"},
        )
        assert await tx.sessions.set_token_hash(added.id, "hash-1", 3, replaced="hash-0")
        owner = await tx.users.get(user.id)
        await tx.commit()
    written = replace(added, token_hash="hash-1", user_epoch=3, signed_in_from="hash-0")
    assert owner is not None and owner.email_verified_at == NOW and owner.signup_expires_at
    assert written.revoked_at == NOW and written.client_addr == "203.0.113.9"
    async with sql_uow(one_statement=True) as tx:
        by_hash = await tx.sessions.find_by_token_hash("hash-1")
    async with sql_uow(one_statement=True) as tx:
        by_id = await tx.sessions.get_with_user(written.id)
    async with sql_uow(one_statement=True) as tx:
        acting = await tx.roles.acting_with_patterns(written.id)
    async with sql_uow() as tx:  # an ordinary unit reads the same
        ordinary = await tx.sessions.get_with_user(written.id)
    assert acting is not None
    for found in (by_hash, by_id, acting[:2], ordinary):
        assert found is not None
        session, its_user = found
        # ``data`` is left out of equality: compared on its own.
        assert (session, session.data, its_user) == (written, written.data, owner)
    async with sql_uow(one_statement=True) as tx:
        assert await tx.sessions.find_by_token_hash("hash-0") is None
    async with sql_uow(one_statement=True) as tx:
        assert await tx.roles.acting_with_patterns(written.id + 1) is None


async def test_a_read_of_one_statement_refuses_a_second(sql_uow: SqlUnitOfWorkFactory) -> None:
    """Two statements need one snapshot: never two transactions of their own."""
    async with sql_uow(one_statement=True) as tx:
        await tx.sessions.get_with_user(1)
        with pytest.raises(NotOneRead, match="second statement"):
            await tx.roles.active_patterns(1)
    async with sql_uow(one_statement=True) as tx:  # the next one is fine
        assert await tx.sessions.get_with_user(1) is None


async def test_a_read_of_one_statement_gives_its_connection_back_with_the_rows(
    db_url: str,
) -> None:
    """The connection goes back to the pool when the statement has answered, not when
    the unit ends: with a pool of one, another unit reads while this one still holds
    rows it has not looked at, and those rows are all there."""
    engine = create_engine(db_url, timeout=1.0, pool_size=1, max_overflow=0)
    uow = SqlUnitOfWorkFactory(engine, timeout=1.0)
    try:
        async with uow(write=True) as tx:
            user = await tx.users.add("alice", "alice", "h", NOW)
            for n in range(3):
                await tx.sessions.add(
                    f"hash-{n}",
                    user.id,
                    NOW,
                    NOW + timedelta(hours=1),
                    NOW + timedelta(hours=2),
                    ClientInfo(),
                )
            await tx.commit()
        async with uow(one_statement=True) as one:
            rows = await one.execute(text("SELECT token_hash FROM authdemo_sessions"), {})
            async with asyncio.timeout(5):  # the pool's only connection is free
                async with uow(one_statement=True) as other:
                    assert await other.sessions.find_by_token_hash("hash-1") is not None
            assert sorted(rows.scalars()) == ["hash-0", "hash-1", "hash-2"]
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_refused_read_of_one_statement_gives_its_connection_back(db_url: str) -> None:
    """A statement that fails leaves the connection with the unit, which gives it back
    at its end: the pool's only connection is free again and reads."""
    engine = create_engine(db_url, timeout=1.0, pool_size=1, max_overflow=0)
    uow = SqlUnitOfWorkFactory(engine, timeout=1.0)
    try:
        with pytest.raises(NotOneRead):
            async with uow(one_statement=True) as one:
                await one.execute(text("DELETE FROM authdemo_roles"), {})
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with asyncio.timeout(5), uow(one_statement=True) as one:
            assert await one.sessions.get_with_user(1) is None
    finally:
        await engine.dispose()


async def test_an_interrupted_read_of_one_statement_drops_its_connection(db_url: str) -> None:
    """Cancelled mid-statement, the connection is dropped (it may be half-way through
    the wire protocol), never given back for the next read; the pool then opens a fresh
    one, and the unit counts as finished."""
    engine = create_engine(db_url, timeout=5.0, pool_size=1, max_overflow=0)
    uow = SqlUnitOfWorkFactory(engine, timeout=5.0)
    dropped: list[object] = []
    event.listen(engine.sync_engine, "invalidate", lambda *_: dropped.append(1))
    entered, release = threading.Event(), threading.Event()
    if engine.dialect.name == "sqlite":
        # A statement that runs until the test lets it go: no guessing how long it takes.
        def hold() -> int:
            entered.set()
            release.wait(10)
            return 1

        event.listen(
            engine.sync_engine,
            "connect",
            lambda conn, _: conn.create_function("authdemo_test_hold", 0, hold),
        )
        slow = "SELECT authdemo_test_hold()"

        async def under_way() -> None:
            assert await asyncio.to_thread(entered.wait, 10)

    else:
        slow = "SELECT pg_sleep(10)"

        async def under_way() -> None:
            watcher = create_engine(db_url)
            try:
                async with asyncio.timeout(10), watcher.connect() as conn:
                    while not await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE state = 'active' AND query = :slow"
                        ),
                        {"slow": slow},
                    ):
                        await conn.rollback()  # a fresh snapshot of the activity
                        await asyncio.sleep(0.02)
            finally:
                await watcher.dispose()

    async def read() -> None:
        async with uow(one_statement=True) as one:
            await one.execute(text(slow), {})

    try:
        task = asyncio.create_task(read())
        await under_way()
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert dropped and uow.active == 0
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with uow(one_statement=True) as one:  # the pool's fresh connection reads
            assert await one.sessions.get_with_user(1) is None
    finally:
        release.set()
        await engine.dispose()


@pytest.mark.postgresql_only  # SQLite: aiosqlite's failed connect leaves its thread a
# message for the test's event loop, which may be closed by then (a warning, not a failure)
async def test_a_read_of_one_statement_says_when_the_database_is_away(db_url: str) -> None:
    """Like any unit of work: ``StorageUnavailable`` (a 503, exit 3), not a driver error,
    and the unit counted as finished."""
    away = make_url(db_url).set(port=1)  # nothing listens there
    engine = create_engine(away.render_as_string(hide_password=False), timeout=1.0)
    uow = SqlUnitOfWorkFactory(engine, timeout=1.0)
    try:
        with pytest.raises(StorageUnavailable):
            async with uow(one_statement=True) as tx:
                await tx.sessions.get_with_user(1)
        assert uow.active == 0
    finally:
        await engine.dispose()


async def test_a_read_of_one_statement_cannot_write(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        reads = one_statement_reads(engine)
        async with reads.connect() as conn:
            with pytest.raises(NotOneRead, match="other than a SELECT"):
                # Outside a transaction this would commit at once.
                await conn.execute(text("DELETE FROM authdemo_roles"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM authdemo_roles"))).scalar()
    finally:
        await engine.dispose()


async def test_a_unit_of_work_of_one_statement_only_reads(sql_uow: SqlUnitOfWorkFactory) -> None:
    with pytest.raises(ValueError, match="only reads"):
        sql_uow(write=True, one_statement=True)


async def _open_transaction(conn: AsyncConnection) -> object:
    """asyncpg's transaction on this connection, if SQLAlchemy's adapter began one."""
    return (await conn.get_raw_connection()).dbapi_connection._transaction  # type: ignore[union-attr]


@pytest.mark.postgresql_only
async def test_postgres_reads_one_statement_without_a_transaction(db_url: str) -> None:
    """One round trip, not three (BEGIN, the SELECT, ROLLBACK); and the pooled
    connection's next ordinary read has its transaction again."""
    engine = create_engine(db_url, pool_size=1, max_overflow=0)
    try:
        async with one_statement_reads(engine).connect() as conn:
            await conn.execute(text("SELECT 1"))
            assert await _open_transaction(conn) is None
        async with engine.connect() as conn:  # the same server connection, from the pool
            await conn.execute(text("SELECT 1"))
            assert await _open_transaction(conn) is not None
            await conn.rollback()
    finally:
        await engine.dispose()


@pytest.mark.postgresql_only
async def test_behind_a_pooler_reads_of_one_statement_keep_their_transaction(
    db_url: str,
) -> None:
    """PgBouncer in transaction mode: asyncpg's prepare and execute are two round trips,
    which only a transaction keeps on one server connection."""
    engine = create_engine(db_url, pool=None, pooler=True)
    try:
        async with one_statement_reads(engine).connect() as conn:
            await conn.execute(text("SELECT 1"))
            assert await _open_transaction(conn) is not None
            await conn.rollback()
    finally:
        await engine.dispose()
