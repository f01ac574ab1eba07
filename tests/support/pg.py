"""PostgreSQL databases for tests, when AUTHDEMO_TEST_POSTGRES_URL names a server.

Each test run gets its own template database (migrated once by alembic) and each test
its own copy of it, named after the run, so that runs and tests cannot collide.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import secrets
import threading
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


def _drop_statement(name: str) -> str:
    """Drops ``name`` even while a test's server still holds connections to it."""
    return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'


class PostgresDatabases:
    """One xdist worker's databases: a migrated template, and a copy of it per test.

    A copy takes PostgreSQL about 0.2 s and a drop about 0.05 s (CREATE DATABASE writes
    the template's 8 MB of catalogs through the WAL): a helper thread makes the next
    test's copy while the current test runs, and drops finished ones, on one connection
    of its own. ``fresh()`` waits only when the copy is not ready yet.
    """

    def __init__(self) -> None:
        self.run_id = f"authdemo_t{secrets.token_hex(4)}"
        self.template = f"{self.run_id}_template"
        self._counter = itertools.count()
        self._ready = False
        self._orders: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._copies: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
        self._helper: threading.Thread | None = None

    def _ensure_template(self) -> None:
        if not self._ready:
            _run(f'CREATE DATABASE "{self.template}"')
            migrate(app_url(self.template))
            self._ready = True

    def _next_name(self) -> str:
        return f"{self.run_id}_{next(self._counter)}"

    def fresh(self, migrated: bool = True) -> str:
        """A new database: a copy of the migrated template, or empty."""
        if not migrated:
            name = self._next_name()
            _run(f'CREATE DATABASE "{name}"')
            return name
        self._ensure_template()
        if self._helper is None:
            self._helper = threading.Thread(target=self._serve, name="pg-copies", daemon=True)
            self._helper.start()
            self._orders.put(("copy", self._next_name()))
        made = self._copies.get(timeout=300)
        if isinstance(made, BaseException):
            if not self._helper.is_alive():  # its connection failed: the next call starts anew
                self._helper = None
            raise made
        self._orders.put(("copy", self._next_name()))  # the next test's, made meanwhile
        return made

    def drop(self, name: str) -> None:
        """Dropped by the helper once it is running (nobody waits for a drop)."""
        if self._helper is None:
            _run(_drop_statement(name))
        else:
            self._orders.put(("drop", name))

    def close(self) -> None:
        if self._helper is not None:
            self._orders.put(None)
            self._helper.join(timeout=300)
            while not self._copies.empty():  # the copy ordered for a test that never came
                made = self._copies.get()
                if isinstance(made, str):
                    _run(_drop_statement(made))
        if self._ready:
            _run(_drop_statement(self.template))

    def _serve(self) -> None:
        async def main() -> None:
            conn: Any = await asyncpg.connect(_admin_dsn())
            try:
                while (order := await asyncio.to_thread(self._orders.get)) is not None:
                    what, name = order
                    if what == "copy":
                        try:
                            await conn.execute(
                                f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'
                            )
                        except Exception as error:  # the waiting test reports it
                            self._copies.put(error)
                        else:
                            self._copies.put(name)
                    else:
                        await conn.execute(_drop_statement(name))
            finally:
                await conn.close()

        try:
            asyncio.run(main())
        except BaseException as error:  # a lost connection: the next fresh() says so
            self._copies.put(error)


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
