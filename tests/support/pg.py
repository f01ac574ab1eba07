"""PostgreSQL databases for tests, when AUTHDEMO_TEST_POSTGRES_URL names a server.

Each test run gets its own template database (migrated once by alembic) and each test
its own copy of it, named after the run, so that runs and tests cannot collide.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.db import in_thread, migrate

ENV = "AUTHDEMO_TEST_POSTGRES_URL"
SKIP_REASON = (
    f"PostgreSQL variant: set {ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test) to run it"
)


def admin_url() -> str | None:
    return os.environ.get(ENV) or None


def _admin_dsn() -> str:
    url = admin_url()
    assert url is not None
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(statement: str) -> None:
    async def main() -> None:
        conn: Any = await asyncpg.connect(_admin_dsn())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    in_thread(lambda: asyncio.run(main()))


def app_url(database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the configured server."""
    url = admin_url()
    assert url is not None
    return (
        make_url(url)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )


class PostgresDatabases:
    def __init__(self) -> None:
        self.run_id = f"authdemo_t{secrets.token_hex(4)}"
        self.template = f"{self.run_id}_template"
        self._counter = itertools.count()
        self._ready = False

    def _ensure_template(self) -> None:
        if not self._ready:
            _run(f'CREATE DATABASE "{self.template}"')
            migrate(app_url(self.template))
            self._ready = True

    def fresh(self, migrated: bool = True) -> str:
        """A new database: a copy of the migrated template, or empty."""
        name = f"{self.run_id}_{next(self._counter)}"
        if migrated:
            self._ensure_template()
            _run(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        else:
            _run(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._ready:
            self.drop(self.template)


def database_of(url: str) -> str:
    name = make_url(url).database
    assert name is not None
    return name


async def connections(database: str) -> dict[str, int]:
    """Client connections to ``database`` now, by ``application_name``."""
    conn: Any = await asyncpg.connect(_admin_dsn())
    try:
        rows = await conn.fetch(
            "SELECT application_name, count(*) AS n FROM pg_stat_activity"
            " WHERE datname = $1 AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() GROUP BY 1",
            database,
        )
    finally:
        await conn.close()
    return {str(row["application_name"]): int(row["n"]) for row in rows}


async def terminate(database: str, application_name: str) -> int:
    """``pg_terminate_backend`` every connection of that name to ``database``."""
    conn: Any = await asyncpg.connect(_admin_dsn())
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = $2",
                database,
                application_name,
            )
        )
    finally:
        await conn.close()


def name_connections_by_default(database: str, application_name: str) -> None:
    """``ALTER DATABASE … SET application_name``: what PgBouncer's server connections
    say when no client names them (freshly opened, or after its ``DISCARD ALL``)."""
    _run(f"ALTER DATABASE \"{database}\" SET application_name = '{application_name}'")
