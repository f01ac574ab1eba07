"""The connection budget ``authdemo run`` reads at start counts the hosts of its own
database: another database on the same server (another app, another test run) has
listeners and pools of its own, which take connections but are not hosts of this app."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from authdemo.config import Settings
from authdemo.db.budget import read_budget
from authdemo.db.engine import APPLICATION_NAME, create_engine
from authdemo.db.notify import APPLICATION_NAME as LISTEN_NAME
from authdemo.db.notify import asyncpg_dsn
from tests.support.pg import PostgresDatabases
from tests.support.pg import app_url as pg_app_url

pytestmark = pytest.mark.postgresql_only


async def hold(url: str, application_name: str) -> Any:
    return await asyncpg.connect(
        asyncpg_dsn(url), server_settings={"application_name": application_name}
    )


async def test_listeners_and_pools_of_another_database_are_others_not_hosts(
    db_url: str, postgres: PostgresDatabases
) -> None:
    name = postgres.fresh(migrated=False)
    other = pg_app_url(name)
    # Another app's two hosts on the same server: two listeners, three pooled connections.
    held = [
        await hold(other, name)
        for name in (LISTEN_NAME, LISTEN_NAME, APPLICATION_NAME, APPLICATION_NAME, "x")
    ]
    engine = create_engine(db_url)
    try:
        alone = await read_budget(engine, Settings(database_url=db_url), workers=4)
        held.append(await hold(db_url, LISTEN_NAME))  # a host of this app, already running
        joined = await read_budget(engine, Settings(database_url=db_url), workers=4)
    finally:
        await engine.dispose()
        for conn in held:
            await conn.close()
        postgres.drop(name)
    assert alone.hosts == 1  # this one: the other database's listeners are not ours
    assert alone.pooled == 1  # the connection reading the budget, no other database's
    assert alone.others >= 5  # but they do take connections of the server, one for one
    assert joined.hosts == 2
