"""For an app's own alembic ``env.py``: authdemo's tables beside the app's, in one database.

authdemo keeps its own history (``authdemo migrate``, version table
``authdemo_alembic_version``); the app keeps its own (``alembic``, ``alembic_version``).
Three things make the two agree:

- :func:`include_object` (and, optionally, :func:`include_name`) keep authdemo's tables
  out of the app's autogenerate and ``alembic check``: nothing of authdemo's is created,
  dropped or reported as drift by the app's history;
- :func:`users_table` puts a stand-in for authdemo's user table into the app's
  ``MetaData``, so that an app model can hold ``ForeignKey("authdemo_users.id")``
  (:data:`USERS_TABLE`, key column ``id``);
- :func:`database_url` is the URL ``authdemo run`` and ``authdemo migrate`` use
  (``AUTHDEMO_DATABASE_URL``, or the default ``./authdemo.db``), so the app's alembic
  cannot migrate another database than the one the server reads.

The guide's "Beside your own alembic migrations" page shows the whole ``env.py``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table
from sqlalchemy.schema import SchemaItem

from .config import Settings
from .db.migrations import TABLE_PREFIX, VERSION_TABLE, is_authdemo_table

__all__ = [
    "TABLE_PREFIX",
    "USERS_TABLE",
    "VERSION_TABLE",
    "database_url",
    "include_name",
    "include_object",
    "users_table",
]

USERS_TABLE = "authdemo_users"
"""authdemo's user table; its key column is ``id`` (an integer)."""


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """alembic's ``include_name`` hook: never reflect authdemo's tables.

    Typed to accept alembic's own argument types; pass it as
    ``context.configure(include_name=include_name)``.
    """
    return not (type_ == "table" and name is not None and is_authdemo_table(name))


def include_object(
    object: SchemaItem,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    """alembic's ``include_object`` hook: leave out authdemo's tables, their columns,
    indexes and constraints, whether found in the database or in the app's ``MetaData``
    (the stand-in of :func:`users_table`). An app table's foreign key *to* authdemo's
    users is the app's, and stays in."""
    if type_ == "table":
        return not (name is not None and is_authdemo_table(name))
    table = getattr(object, "table", None)
    if isinstance(table, Table):
        return not is_authdemo_table(table.name)
    return True


def users_table(metadata: MetaData) -> Table:
    """A stand-in for authdemo's user table in the app's ``metadata`` (its key column
    only), so that ``ForeignKey("authdemo_users.id")`` in an app model resolves.

    :func:`include_object` keeps it out of the app's migrations: authdemo's own history
    creates and changes the real table. Returns the table already there when called
    twice on one ``metadata``.
    """
    if USERS_TABLE in metadata.tables:
        return metadata.tables[USERS_TABLE]
    key = BigInteger().with_variant(Integer(), "sqlite")
    return Table(USERS_TABLE, metadata, Column("id", key, primary_key=True))


def database_url() -> str:
    """The URL ``authdemo migrate`` migrates: ``AUTHDEMO_DATABASE_URL`` (or its default,
    ``./authdemo.db``), with its async driver; behind a pooler, ``AUTHDEMO_LISTEN_URL``.

    Raises :class:`authdemo.ConfigError` when an ``AUTHDEMO_*`` setting is invalid.
    """
    return Settings.from_env().migration_url
