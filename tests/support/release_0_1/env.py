"""Runs authdemo 0.1.0's frozen scripts (tests only): the URL and the version table come
from the caller's config attributes, as tests/support/release.py sets them."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from authdemo.db.engine import create_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        version_table=config.attributes["version_table"],
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    engine = create_engine(config.attributes["url"])
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(main())
