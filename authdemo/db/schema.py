"""Is the database there and at the revision this code was written for?"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..domain import SchemaNotReady
from .engine import sqlite_path

# The newest alembic revision in migrations/versions; a test keeps the two in step.
HEAD_REVISION = "0006"

UPGRADE_HINT = "run `alembic upgrade head` from the authdemo directory"


async def current_revision(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT version_num FROM alembic_version"))
            rows = [r[0] for r in result]
    except (OperationalError, ProgrammingError) as error:
        if "alembic_version" in str(error):
            return None  # connected, but never migrated
        raise
    return rows[0] if len(rows) == 1 else None


async def check_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaNotReady` with a one-line fix when the schema is not at head."""
    url = engine.url.render_as_string(hide_password=True)
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None and not path.exists():
        raise SchemaNotReady(f"The database {path} does not exist: {UPGRADE_HINT}.")
    try:
        revision = await current_revision(engine)
    except (OSError, DBAPIError) as error:
        raise SchemaNotReady(f"Cannot open the database {url}: {_first_line(error)}") from None
    if revision is None:
        raise SchemaNotReady(f"The database {url} has no authdemo tables yet: {UPGRADE_HINT}.")
    if revision != HEAD_REVISION:
        raise SchemaNotReady(
            f"The database {url} is at revision {revision}, this version of authdemo "
            f"needs {HEAD_REVISION}: {UPGRADE_HINT}."
        )


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__
