"""Is the database there and at the revision this code was written for?"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..domain import SchemaNotReady
from .engine import sqlite_path
from .migrations import (
    LEGACY_VERSION_TABLE,
    MIGRATE_HINT,
    VERSION_TABLE,
    VersionState,
    first_line,
    known_revisions,
    read_versions,
)
from .models import Base

# The newest alembic revision in migrations/versions; a test keeps the two in step.
HEAD_REVISION = "authdemo_0011"

UPGRADE_HINT = MIGRATE_HINT


async def current_revision(engine: AsyncEngine) -> str | None:
    """authdemo's revision, from its own version table (None: none recorded there)."""
    return (await _versions(engine, frozenset())).current


async def _versions(engine: AsyncEngine, known: frozenset[str]) -> VersionState:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: read_versions(c, known))


async def check_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaNotReady` with a one-line fix when the schema is not at head."""
    url = engine.url.render_as_string(hide_password=True)
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None and not path.exists():
        raise SchemaNotReady(f"The database {path} does not exist: {UPGRADE_HINT}.")
    legacy: str | None = None
    try:
        revision = await current_revision(engine)
        if revision is None:
            # Only on the way to an error: the script directory is read from disk.
            legacy = (await _versions(engine, known_revisions())).legacy
    except (OSError, DBAPIError) as error:
        raise SchemaNotReady(f"Cannot open the database {url}: {first_line(error)}") from None
    if revision is None and legacy is not None:
        raise SchemaNotReady(
            f"The database {url} records authdemo's revision {legacy} in the shared "
            f"{LEGACY_VERSION_TABLE} table; authdemo now keeps its own ({VERSION_TABLE}): "
            f"{UPGRADE_HINT} to move it there."
        )
    if revision is None:
        raise SchemaNotReady(f"The database {url} has no authdemo tables yet: {UPGRADE_HINT}.")
    if revision != HEAD_REVISION:
        raise SchemaNotReady(
            f"The database {url} is at revision {revision}, this version of authdemo "
            f"needs {HEAD_REVISION}: {UPGRADE_HINT}."
        )
    # A version row proves nothing by itself (it can be copied, or its tables dropped):
    # the tables of this revision must be there too.
    async with engine.connect() as conn:
        present = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    missing = sorted(set(Base.metadata.tables) - present)
    if missing:
        raise SchemaNotReady(
            f"The database {url} records authdemo's revision {revision} but lacks its "
            f"tables {', '.join(missing)}: restore them from a backup, or point "
            "AUTHDEMO_DATABASE_URL at authdemo's database."
        )
