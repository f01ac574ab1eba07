"""authdemo's tables are ``authdemo_*``: a database that authdemo 0.1.0 built (``users``,
``sessions``, …) is renamed with every row kept, and an app's own ``users`` and
``sessions`` on the same database are never touched."""

from __future__ import annotations

import asyncio

from sqlalchemy import MetaData, Table, insert, inspect, select, text

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.engine import create_engine
from authdemo.db.migrations import VERSION_TABLE
from authdemo.db.models import Base
from authdemo.db.schema import HEAD_REVISION
from authdemo.domain import ClientInfo
from authdemo.security import hash_token
from tests.conftest import cheap_hasher
from tests.integration.test_migrations import (
    ADDED_SINCE_0_1,
    authdemo_migrate,
    rows,
    run_sql,
    schema_error,
    tables,
)
from tests.support.db import alembic_config, in_thread, migrate
from tests.support.release import TABLES_0_1, migrate_as_0_1

PASSWORD = "correct horse"
CLIENT = ClientInfo("::1", "ua")
PREFIXED = {f"authdemo_{name}" for name in TABLES_0_1} | ADDED_SINCE_0_1


def test_the_models_name_every_table_with_the_prefix() -> None:
    assert set(Base.metadata.tables) == PREFIXED


async def _sign_in(url: str) -> tuple[str, int]:
    """alice, created and signed in by today's code: (her session's cookie, her id)."""
    async with runtime(Settings(database_url=url), hasher_factory=cheap_hasher) as rt:
        user = await rt.service.create_user("alice", PASSWORD)
        anonymous = rt.service.new_token()
        result = await rt.service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
        token = (await rt.service.redeem_ticket(result.ticket, anonymous)).token
        return token, user.id


async def _copy_rows_into_0_1_tables(url: str) -> None:
    """Every row of today's tables into the 0.1.0 tables of the same database, parents
    first; then today's tables go, and 0.1.0's version row (0006) takes their place."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_copy)
    finally:
        await engine.dispose()


ORDER = [
    "app_secrets",
    "users",
    "sessions",
    "auth_tickets",
    "login_throttle",
    "session_broadcasts",
    "auth_events",
    "user_mfa",
    "mfa_recovery_codes",
    "mfa_challenges",
]


def _copy(conn: object) -> None:
    from sqlalchemy.engine import Connection

    assert isinstance(conn, Connection)
    meta = MetaData()
    for name in ORDER:
        source = Table(f"authdemo_{name}", meta, autoload_with=conn)
        target = Table(name, meta, autoload_with=conn)
        # Only 0.1.0's columns: the ones later revisions added (users' e-mail) stay behind.
        columns = [source.c[column.name] for column in target.c]
        found = [dict(row._mapping) for row in conn.execute(select(*columns))]
        if found:
            conn.execute(insert(target), found)
        if conn.dialect.name == "postgresql" and "id" in target.c:
            # As 0.1.0 would have left it: the sequence past the highest id.
            conn.execute(text(f"SELECT setval('{name}_id_seq', (SELECT max(id) FROM {name}))"))
    for name in sorted(ADDED_SINCE_0_1, key=lambda t: t == "authdemo_roles"):
        conn.execute(text(f"DROP TABLE {name}"))  # 0.1.0 had none of these
    for name in reversed(ORDER):
        conn.execute(text(f"DROP TABLE authdemo_{name}"))
    conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    conn.execute(text(f"ALTER TABLE release_version RENAME TO {VERSION_TABLE}"))


def make_0_1_database_with_alice(url: str) -> tuple[str, int]:
    """A database exactly as authdemo 0.1.0 left it (its scripts, its names, its version
    row), holding alice and her open session, made by today's code and carried over."""
    migrate(url)
    token, user_id = in_thread(lambda: asyncio.run(_sign_in(url)))
    migrate_as_0_1(url, version_table="release_version")
    in_thread(lambda: asyncio.run(_copy_rows_into_0_1_tables(url)))
    assert tables(url) == set(TABLES_0_1)
    assert rows(url, f"SELECT version_num FROM {VERSION_TABLE}") == [("0006",)]
    return token, user_id


async def _after_migration(url: str, token: str, user_id: int) -> None:
    async with runtime(Settings(database_url=url), hasher_factory=cheap_hasher) as rt:
        resolved = await rt.service.resolve(token)  # her open session is still valid
        assert resolved.signed_in is not None
        assert resolved.signed_in.user.id == user_id
        anonymous = rt.service.new_token()
        again = await rt.service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
        assert again.signed_in.user.id == user_id  # her password still signs her in
        bob = await rt.service.create_user("bob", PASSWORD)  # the renamed sequence goes on
        assert bob.id > user_id


def test_a_database_made_by_0_1_is_renamed_with_every_row_kept(empty_db_url: str) -> None:
    url = empty_db_url
    token, user_id = make_0_1_database_with_alice(url)
    counts = {name: rows(url, f"SELECT count(*) FROM {name}") for name in ORDER}
    assert counts["users"] == [(1,)] and counts["sessions"] != [(0,)]

    result = authdemo_migrate(url)
    assert result.exit_code == 0, result.output
    assert f"from authdemo revision 0006 to {HEAD_REVISION}" in result.output
    assert tables(url) == PREFIXED
    assert {name: rows(url, f"SELECT count(*) FROM authdemo_{name}") for name in ORDER} == counts
    assert schema_error(url) is None
    in_thread(lambda: asyncio.run(_after_migration(url, token, user_id)))
    # And alembic sees the models and the renamed schema as one (indexes, constraints).
    from alembic import command

    in_thread(lambda: command.check(alembic_config(url)))


def test_the_rename_downgrades_back_to_0_1s_names(empty_db_url: str) -> None:
    from alembic import command

    url = empty_db_url
    make_0_1_database_with_alice(url)
    migrate(url)
    in_thread(lambda: command.downgrade(alembic_config(url), "0006"))
    assert tables(url) == set(TABLES_0_1)
    assert rows(url, "SELECT username FROM users") == [("alice",)]
    assert rows(url, "SELECT count(*) FROM sessions") != [(0,)]


APP_TABLES = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL)",
    "CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), "
    "data VARCHAR(200))",
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    "INSERT INTO users (id, email) VALUES (1, 'ann@example.com'), (2, 'bo@example.com')",
    "INSERT INTO sessions (id, user_id, data) VALUES (10, 1, 'cart')",
)


def test_an_apps_own_users_sessions_and_history_at_0006_are_left_as_they_were(
    empty_db_url: str,
) -> None:
    url = empty_db_url
    run_sql(url, *APP_TABLES, "INSERT INTO alembic_version (version_num) VALUES ('0006')")

    error = schema_error(url)
    assert error is not None and "has no authdemo tables yet" in error
    result = authdemo_migrate(url)
    assert result.exit_code == 0, result.output
    assert "Created authdemo's tables" in result.output

    assert rows(url, "SELECT version_num FROM alembic_version") == [("0006",)]
    assert rows(url, "SELECT id, email FROM users ORDER BY id") == [
        (1, "ann@example.com"),
        (2, "bo@example.com"),
    ]
    assert rows(url, "SELECT id, user_id, data FROM sessions") == [(10, 1, "cart")]
    assert tables(url) == PREFIXED | {"users", "sessions", "alembic_version"}
    assert rows(url, f"SELECT version_num FROM {VERSION_TABLE}") == [(HEAD_REVISION,)]
    assert schema_error(url) is None
    # A second run finds nothing to do and still leaves the app's history alone.
    assert "nothing to do" in authdemo_migrate(url).output
    assert rows(url, "SELECT version_num FROM alembic_version") == [("0006",)]


def test_an_apps_revision_0005_with_some_tables_of_the_same_names_is_not_taken(
    empty_db_url: str,
) -> None:
    """The text of the row proves nothing: 0.1.0's tables of 0005 are not all there."""
    url = empty_db_url
    run_sql(
        url,
        *APP_TABLES,
        "CREATE TABLE auth_tickets (id INTEGER PRIMARY KEY)",
        "INSERT INTO alembic_version (version_num) VALUES ('0005')",
    )
    result = authdemo_migrate(url)
    assert result.exit_code == 0, result.output
    assert rows(url, "SELECT version_num FROM alembic_version") == [("0005",)]
    assert rows(url, f"SELECT version_num FROM {VERSION_TABLE}") == [(HEAD_REVISION,)]
    assert rows(url, "SELECT count(*) FROM auth_tickets") == [(0,)]


def test_downgrading_below_the_rename_keeps_the_prefix_when_an_app_owns_users(
    empty_db_url: str,
) -> None:
    from alembic import command

    url = empty_db_url
    run_sql(url, *APP_TABLES[:2], *APP_TABLES[3:])
    migrate(url)
    in_thread(lambda: command.downgrade(alembic_config(url), "0006"))
    assert tables(url) >= PREFIXED - ADDED_SINCE_0_1
    in_thread(lambda: command.downgrade(alembic_config(url), "base"))
    assert tables(url) == {"users", "sessions"}
    assert rows(url, "SELECT count(*) FROM users") == [(2,)]


def test_the_start_check_wants_the_tables_not_only_the_version_row(empty_db_url: str) -> None:
    url = empty_db_url
    migrate(url)
    run_sql(url, "DROP TABLE authdemo_mfa_challenges")
    error = schema_error(url)
    assert error is not None
    assert "lacks its tables authdemo_mfa_challenges" in error


def test_every_index_of_a_fresh_migration_carries_the_prefix(empty_db_url: str) -> None:
    url = empty_db_url
    migrate(url)

    async def index_names() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: {
                        str(ix["name"])
                        for t in inspect(c).get_table_names()
                        for ix in inspect(c).get_indexes(t)
                    }
                )
        finally:
            await engine.dispose()

    names = in_thread(lambda: asyncio.run(index_names()))
    assert names and all(name[:3] in ("ix_", "uq_") for name in names), names
    assert all(name[3:].startswith("authdemo_") for name in names), names


def test_a_row_whose_revision_has_more_tables_than_the_database_is_not_adopted(
    empty_db_url: str,
) -> None:
    """0.1.0's tables of 0001 under a row saying 0006: the row is not provably ours."""
    url = empty_db_url
    migrate_as_0_1(url, "0001", version_table="alembic_version")
    run_sql(url, "UPDATE alembic_version SET version_num = '0006'")
    result = authdemo_migrate(url)
    assert result.exit_code == 0, result.output
    assert "moved from alembic_version" not in result.output
    assert rows(url, "SELECT version_num FROM alembic_version") == [("0006",)]
    assert tables(url) >= PREFIXED
