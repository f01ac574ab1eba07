"""Alembic environment (async). The URL comes from AUTHDEMO_DATABASE_URL, like the app's.

authdemo records its revision in its own table (``authdemo_alembic_version``), so an
app's alembic history can keep ``alembic_version`` in the same database. A database
from before that table is adopted first, in the upgrade's own transaction.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import event
from sqlalchemy.engine import Connection

from authdemo.config import Settings
from authdemo.db.engine import WRITE_OPTION, create_engine
from authdemo.db.migrations import VERSION_TABLE, adopt_legacy_version, serialize_migrators
from authdemo.db.models import Base, UTCDateTime
from authdemo.domain import SchemaNotReady

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    # An explicit -x url=... or a URL set by a test wins; otherwise the app's setting.
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    return str(url) if url else Settings.from_env().database_url


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations spell our UTC wrapper as the plain type it stores.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
        compare_type=True,
        render_item=_render_item,
        literal_binds=connection is None,
        dialect_opts={"paramstyle": "named"} if connection is None else {},
    )


def run_migrations_offline() -> None:
    # Offline SQL starts from an empty database: there is no version row to adopt.
    _configure(url=database_url())
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    # One transaction for the adoption and every migration after it: begun here, so
    # alembic sees an external transaction and opens none of its own (on SQLite it
    # would otherwise commit after each migration).
    with connection.begin():
        serialize_migrators(connection)
        known = {rev.revision for rev in context.script.walk_revisions()}
        adopted = adopt_legacy_version(connection, known)
        if adopted is not None:
            config.attributes["adopted"] = adopted
        _configure(connection=connection)
        config.attributes["start"] = context.get_context().get_current_revision()
        context.run_migrations()
        check_foreign_keys(connection)


def check_foreign_keys(connection: Connection) -> None:
    # SQLite migrations run with foreign keys off (below); before the commit, every row
    # must still point at a row that exists, or the whole migration is rolled back.
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise SchemaNotReady(
            f"Cannot migrate: the migration would leave rows without their parent: {broken[:5]}"
        )


def foreign_keys_off(dbapi_connection: Any, _record: object) -> None:
    # SQLite rebuilds a table to alter it (batch mode): with foreign keys on, dropping the
    # old copy of a parent table would delete its children (ON DELETE CASCADE). The
    # pragma has no effect inside a transaction, so it is set as the connection opens.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=OFF")
    finally:
        cursor.close()


async def run_migrations_online() -> None:
    # The write option makes SQLite's BEGIN an IMMEDIATE one: the whole upgrade is one
    # transaction that holds the write lock, so an interrupted migration leaves nothing.
    engine = create_engine(database_url()).execution_options(**{WRITE_OPTION: True})
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", foreign_keys_off)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
