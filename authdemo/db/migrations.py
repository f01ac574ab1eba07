"""authdemo's alembic history, wherever authdemo is installed.

The scripts live in a checkout's top-level ``migrations/`` (where ``alembic.ini`` points)
and are mapped into the wheel as ``authdemo/migrations``, so ``authdemo migrate`` needs no
``alembic.ini`` and no checkout: the alembic configuration is built here from whichever
of the two holds them (:func:`script_location`).

authdemo records its revision in a version table of its own, :data:`VERSION_TABLE`, so
that an app with its own alembic history (in the default ``alembic_version``) can share
the database. Databases migrated before that table existed recorded authdemo's revision
in the shared ``alembic_version``; :func:`adopt_legacy_version` moves it over, in the
transaction of the upgrade that follows, so the move and the upgrade land together or
not at all.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ..domain import SchemaNotReady
from .engine import create_engine, sqlite_path
from .models import Base

_PACKAGE = Path(__file__).resolve().parent.parent


def script_location() -> Path:
    """authdemo's alembic scripts: ``authdemo/migrations`` in an installed wheel, the
    checkout's top-level ``migrations/`` when the package is used from a checkout."""
    packaged = _PACKAGE / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    return _PACKAGE.parent / "migrations"


VERSION_TABLE = "authdemo_alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"
"""alembic's default version table: authdemo's until 0.1, shared with an app's history."""

MIGRATE_HINT = "run `authdemo migrate`"

T = TypeVar("T")


def alembic_config(url: str | None = None, *, output: TextIO | None = None) -> Config:
    """authdemo's alembic configuration, without an ini file.

    ``url`` overrides ``AUTHDEMO_DATABASE_URL``; ``output`` receives offline SQL.
    """
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes["url"] = url
    return config


def is_authdemo_table(name: str) -> bool:
    """One of authdemo's tables, or its version table.

    For an app's own alembic ``env.py``, as ``include_name``, so that the app's
    autogenerate neither proposes dropping authdemo's tables nor reports them as drift::

        def include_name(name, type_, parent_names):
            return not (type_ == "table" and is_authdemo_table(name))
    """
    return name == VERSION_TABLE or name in Base.metadata.tables


def known_revisions() -> frozenset[str]:
    """Every revision in authdemo's history (not only those up to the head)."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def _version_table(name: str, metadata: MetaData | None = None) -> Table:
    # The shape alembic gives its version tables (alembic.ddl.impl.DefaultImpl).
    return Table(
        name,
        metadata or MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


def _read(connection: Connection, name: str) -> list[str] | None:
    """The rows of a version table, or None when it does not exist."""
    if not inspect(connection).has_table(name):
        return None
    table = _version_table(name)
    return [str(row) for row in connection.execute(select(table.c.version_num)).scalars()]


@dataclass(frozen=True)
class VersionState:
    current: str | None
    """authdemo's revision in :data:`VERSION_TABLE` (None: none recorded there)."""
    legacy: str | None
    """authdemo's revision still recorded in the shared ``alembic_version``."""


def read_versions(connection: Connection, known: Collection[str]) -> VersionState:
    ours = _read(connection, VERSION_TABLE) or []
    shared = (_read(connection, LEGACY_VERSION_TABLE) or []) if known else []
    legacy = [rev for rev in shared if rev in known]
    return VersionState(
        current=ours[0] if len(ours) == 1 else None,
        legacy=legacy[0] if len(legacy) == 1 else None,
    )


MIGRATION_LOCK = 0x61757468_64656D6F  # "authdemo": the advisory lock migrators queue on


def serialize_migrators(connection: Connection) -> None:
    """Make concurrent migrations (a deploy that runs ``authdemo migrate`` on every host)
    take turns: on PostgreSQL, a transaction-scoped advisory lock taken first; the next
    migrator then finds the work done. SQLite needs none: the migration's transaction
    begins IMMEDIATE, holding the write lock from the start."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))


def adopt_legacy_version(connection: Connection, known: Collection[str]) -> str | None:
    """Move authdemo's revision from ``alembic_version`` into :data:`VERSION_TABLE`.

    Runs inside the caller's transaction. Rows of other histories stay where they are;
    ``alembic_version`` is dropped only when authdemo's row was its only one. Returns the
    revision moved, or None when there was nothing to move.
    """
    shared = _read(connection, LEGACY_VERSION_TABLE)
    if not shared:
        return None
    legacy = [rev for rev in shared if rev in known]
    if not legacy:
        return None  # the app's own history: not ours to touch
    if len(legacy) > 1:
        raise SchemaNotReady(
            f"alembic_version holds several authdemo revisions ({', '.join(legacy)}); "
            "authdemo's history has one branch, so this database needs a look by hand."
        )
    ours = _read(connection, VERSION_TABLE)
    if ours:
        raise SchemaNotReady(
            f"authdemo's revision is recorded twice: {ours[0]} in {VERSION_TABLE} and "
            f"{legacy[0]} in alembic_version; delete the row that is wrong, then "
            f"{MIGRATE_HINT}."
        )
    metadata = MetaData()
    target = _version_table(VERSION_TABLE, metadata)
    source = _version_table(LEGACY_VERSION_TABLE, metadata)
    target.create(connection, checkfirst=True)
    connection.execute(insert(target).values(version_num=legacy[0]))
    connection.execute(delete(source).where(source.c.version_num == legacy[0]))
    left = connection.execute(select(func.count()).select_from(source)).scalar_one()
    if left == 0:
        source.drop(connection)
    return legacy[0]


# --- what `authdemo migrate` runs ------------------------------------------------------


@dataclass(frozen=True)
class Status:
    url: str
    """The database, password hidden."""
    current: str | None
    legacy: str | None
    head: str
    pending: list[str]
    """Revisions an upgrade would apply, oldest first."""

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head and not self.pending


def status(url: str) -> Status:
    """Where the database stands against authdemo's head; reads, never writes.

    A missing SQLite file is reported as empty and is not created.
    """
    shown = _shown(url)
    script = ScriptDirectory.from_config(alembic_config())
    known = frozenset(rev.revision for rev in script.walk_revisions())
    head = script.get_current_head()
    assert head is not None
    path = sqlite_path(url)
    if path is not None and not path.exists():
        state = VersionState(None, None)
    else:
        state = _guarded(shown, lambda: asyncio.run(_read_state(url, known)))
    start = state.current or state.legacy
    if start is not None and start not in known:
        raise SchemaNotReady(
            f"The database {shown} is at revision {start}, which this version of authdemo "
            "does not know (it was migrated by a newer one)."
        )
    try:
        steps = list(script.iterate_revisions(head, start))
    except CommandError as error:
        raise SchemaNotReady(f"Cannot plan the migration of {shown}: {error}") from None
    return Status(shown, state.current, state.legacy, head, [s.revision for s in reversed(steps)])


async def _read_state(url: str, known: frozenset[str]) -> VersionState:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: read_versions(c, known))
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Upgraded:
    start: str | None
    """The revision found once this migrator held the database (None: no tables)."""
    adopted: str | None
    """The revision moved out of ``alembic_version``, if any."""


def upgrade(url: str) -> Upgraded:
    """Upgrade to the head, adopting a legacy version row first; what was found is read
    inside the upgrade's transaction, so a migrator that waited for another reports what
    it did itself. Must not run inside an event loop."""
    shown = _shown(url)
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        # Said before aiosqlite tries: its failed connect leaves a thread behind that
        # reports to an event loop already closed.
        raise SchemaNotReady(
            f"Cannot open the database {shown}: the folder {path.parent} does not exist."
        )
    config = alembic_config(url)
    _guarded(shown, lambda: command.upgrade(config, "head"))
    start, adopted = config.attributes.get("start"), config.attributes.get("adopted")
    return Upgraded(str(start) if start else None, str(adopted) if adopted else None)


def upgrade_sql(url: str, output: TextIO | None = None) -> None:
    """Write the SQL that builds the schema from nothing up to the head (offline: the
    database is not opened; its dialect comes from the URL)."""
    config = alembic_config(url, output=output or sys.stdout)
    # Not guarded against OSError: nothing is opened but the output (a closed pipe).
    _guarded(_shown(url), lambda: command.upgrade(config, "head", sql=True), opens=False)


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise SchemaNotReady(f"AUTHDEMO_DATABASE_URL is not a database URL: {url!r}") from None


def _guarded(shown: str, action: Callable[[], T], *, opens: bool = True) -> T:
    """Run ``action``; a database or alembic failure becomes one line naming the database."""
    try:
        return action()
    except SchemaNotReady:
        raise
    except CommandError as error:
        raise SchemaNotReady(f"Cannot migrate {shown}: {error}") from None
    except (OSError, DBAPIError) as error:
        if not opens and not isinstance(error, DBAPIError):
            raise
        raise SchemaNotReady(f"Cannot open the database {shown}: {first_line(error)}") from None
    except (SQLAlchemyError, ImportError) as error:
        raise SchemaNotReady(f"Cannot migrate {shown}: {first_line(error)}") from None


def first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    return text.splitlines()[0] if text else type(original).__name__
