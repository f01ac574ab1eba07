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
from typing import TYPE_CHECKING, TextIO, TypeVar

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

if TYPE_CHECKING:
    from alembic.config import Config

# alembic itself is imported where a migration, or the history, is read: every other
# command and the server start without it.

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

TABLE_PREFIX = "authdemo_"
"""Every table authdemo creates carries it (``authdemo_users``, ``authdemo_sessions``, …),
so that an app's own ``users`` and ``sessions`` can share the database."""


@dataclass(frozen=True)
class TableNames:
    """The names authdemo's tables go by in the database a migration script runs on.

    Revisions ``0001`` to ``0006`` were written for unprefixed names (authdemo 0.1.0); they
    now create prefixed tables on a new database and still work on a database that 0.1.0
    built, until ``authdemo_0007`` renames its tables. A script asks once, at its start:
    ``t = table_names()``, then writes ``t.users``, ``f"ix_{t.sessions}_user_id"``.
    """

    legacy: bool
    """True: the database still has 0.1.0's unprefixed names."""

    def _name(self, table: str) -> str:
        return table if self.legacy else TABLE_PREFIX + table

    @property
    def users(self) -> str:
        return self._name("users")

    @property
    def sessions(self) -> str:
        return self._name("sessions")

    @property
    def auth_tickets(self) -> str:
        return self._name("auth_tickets")

    @property
    def app_secrets(self) -> str:
        return self._name("app_secrets")

    @property
    def auth_events(self) -> str:
        return self._name("auth_events")

    @property
    def login_throttle(self) -> str:
        return self._name("login_throttle")

    @property
    def session_broadcasts(self) -> str:
        return self._name("session_broadcasts")

    @property
    def user_mfa(self) -> str:
        return self._name("user_mfa")

    @property
    def mfa_recovery_codes(self) -> str:
        return self._name("mfa_recovery_codes")

    @property
    def mfa_challenges(self) -> str:
        return self._name("mfa_challenges")


def table_names(*, creating: bool = False) -> TableNames:
    """For a migration script (inside alembic's context). ``creating``: the script makes
    authdemo's first tables, always under their prefixed names. Otherwise authdemo's user
    table is there under one of its two names, and it tells which: a database whose
    ``authdemo_users`` is missing was built by 0.1.0 (an app's own ``users`` beside a
    prefixed ``authdemo_users`` is never taken for ours). Offline SQL starts from an empty
    database: prefixed."""
    from alembic import context, op

    if creating or context.is_offline_mode():
        return TableNames(legacy=False)
    return TableNames(legacy=not inspect(op.get_bind()).has_table(TABLE_PREFIX + "users"))


T = TypeVar("T")


def alembic_config(url: str | None = None, *, output: TextIO | None = None) -> Config:
    """authdemo's alembic configuration, without an ini file.

    ``url`` overrides ``AUTHDEMO_DATABASE_URL``; ``output`` receives offline SQL.
    """
    from alembic.config import Config

    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes["url"] = url
    return config


def is_authdemo_table(name: str) -> bool:
    """One of authdemo's tables, or its version table (an app's alembic ``env.py`` uses
    :mod:`authdemo.alembic`, built on this)."""
    return name == VERSION_TABLE or name in Base.metadata.tables


def known_revisions() -> frozenset[str]:
    """Every revision in authdemo's history (not only those up to the head)."""
    from alembic.script import ScriptDirectory

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


_TABLES_0001 = ("users", "sessions", "auth_tickets", "app_secrets")
_TABLES_0002 = (*_TABLES_0001, "login_throttle", "session_broadcasts", "auth_events")
LEGACY_TABLES: dict[str, tuple[str, ...]] = {
    "0001": _TABLES_0001,
    "0002": _TABLES_0002,
    "0003": _TABLES_0002,
    "0004": _TABLES_0002,
    "0005": _TABLES_0002,
    "0006": (*_TABLES_0002, "user_mfa", "mfa_recovery_codes", "mfa_challenges"),
}
"""The revisions authdemo once recorded in the shared ``alembic_version``, and the
(unprefixed) tables it had built by each."""

_LEGACY_COLUMNS = {
    "users": {"id", "username_key", "password_hash", "is_active"},
    "sessions": {"id", "token_hash", "user_id", "absolute_expires_at", "revoked_at"},
}


def proven_legacy(connection: Connection, shared: Collection[str]) -> list[str]:
    """The rows of the shared ``alembic_version`` that are authdemo's, by fact: a row
    counts only when authdemo's tables of that revision are all there (with the columns
    that make ``users`` and ``sessions`` authdemo's). Its text alone proves nothing:
    ``0006`` is as likely an app's own revision."""
    candidates = [rev for rev in shared if rev in LEGACY_TABLES]
    if not candidates:
        return []
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    if TABLE_PREFIX + "users" in present:
        return []  # authdemo's tables have their own names: the row is an app's
    for table, columns in _LEGACY_COLUMNS.items():
        if table not in present:
            return []
        if not columns <= {str(c["name"]) for c in inspector.get_columns(table)}:
            return []
    return [rev for rev in candidates if set(LEGACY_TABLES[rev]) <= present]


def read_versions(connection: Connection, known: Collection[str]) -> VersionState:
    ours = _read(connection, VERSION_TABLE) or []
    shared = (_read(connection, LEGACY_VERSION_TABLE) or []) if known else []
    legacy = proven_legacy(connection, [rev for rev in shared if rev in known])
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

    Runs inside the caller's transaction. Only a row :func:`proven_legacy` finds is
    moved; rows of other histories stay where they are; ``alembic_version`` is dropped
    only when authdemo's proven row was its only one. Returns the
    revision moved, or None when there was nothing to move.
    """
    shared = _read(connection, LEGACY_VERSION_TABLE)
    if not shared:
        return None
    legacy = proven_legacy(connection, [rev for rev in shared if rev in known])
    if not legacy:
        return None  # the app's own history (or not provably ours): not ours to touch
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
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

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
    from alembic import command

    config = alembic_config(url)
    # Opened first on its own: a failure after this point is the migration's, not the
    # connection's ("Cannot migrate", not "Cannot open").
    _guarded(shown, lambda: asyncio.run(_read_state(url, frozenset())))
    _guarded(shown, lambda: command.upgrade(config, "head"), opened=True)
    start, adopted = config.attributes.get("start"), config.attributes.get("adopted")
    return Upgraded(str(start) if start else None, str(adopted) if adopted else None)


def upgrade_sql(url: str, output: TextIO | None = None) -> None:
    """Write the SQL that builds the schema from nothing up to the head (offline: the
    database is not opened; its dialect comes from the URL)."""
    from alembic import command

    config = alembic_config(url, output=output or sys.stdout)
    # Not guarded against OSError: nothing is opened but the output (a closed pipe).
    _guarded(_shown(url), lambda: command.upgrade(config, "head", sql=True), opens=False)


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise SchemaNotReady(f"AUTHDEMO_DATABASE_URL is not a database URL: {url!r}") from None


def _guarded(shown: str, action: Callable[[], T], *, opens: bool = True, opened: bool = False) -> T:
    """Run ``action``; a database or alembic failure becomes one line naming the database.
    ``opened``: the database was reached already, so a database error is the migration's."""
    from alembic.util import CommandError

    try:
        return action()
    except SchemaNotReady:
        raise
    except CommandError as error:
        raise SchemaNotReady(f"Cannot migrate {shown}: {error}") from None
    except DBAPIError as error:
        if opened:
            raise SchemaNotReady(f"Cannot migrate {shown}: {first_line(error)}") from None
        raise SchemaNotReady(f"Cannot open the database {shown}: {first_line(error)}") from None
    except OSError as error:
        if not opens:
            raise
        raise SchemaNotReady(f"Cannot open the database {shown}: {first_line(error)}") from None
    except (SQLAlchemyError, ImportError) as error:
        raise SchemaNotReady(f"Cannot migrate {shown}: {first_line(error)}") from None


def first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    return text.splitlines()[0] if text else type(original).__name__
