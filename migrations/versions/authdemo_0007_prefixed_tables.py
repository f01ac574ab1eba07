"""authdemo's tables take the authdemo_ prefix, so they sit beside an app's own.

A database built by authdemo 0.1.0 has ``users``, ``sessions``, …: they are renamed with
their indexes, constraints and (PostgreSQL) sequences, every row kept. A database built by
the scripts ``0001`` to ``0006`` of today already has the prefixed names, and nothing happens.

The downgrade gives the tables 0.1.0's names back, unless one of those names is taken (an
app's own ``users``): then the tables keep their prefixed names, which the scripts below
this one work with too (``table_names``).

SQLite keeps a primary key's constraint name inside the table's definition and has no
namespace for it; it is left as it was (``pk_users``), since nothing compares or refers
to it. Every other name is renamed there too (a table is rebuilt to rename a unique or
foreign-key constraint; ``env.py`` runs SQLite migrations with foreign keys off and
checks them before committing, so no rebuild can cascade).

Revision ID: authdemo_0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

from authdemo.db.migrations import TABLE_PREFIX, table_names

revision: str = "authdemo_0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# NamedTuples, not dataclasses: alembic loads this file without registering it as a module.
class Fk(NamedTuple):
    column: str
    parent: str
    ondelete: str


class Layout(NamedTuple):
    serial: bool = False
    """Has an auto-incremented id (a sequence of its own on PostgreSQL)."""
    indexes: Mapping[str, list[str]] = {}
    """Index name suffix → columns (index ``ix_<table>_<suffix>``)."""
    uniques: Mapping[str, list[str]] = {}
    """Unique constraint suffix → columns (``uq_<table>_<suffix>``)."""
    fks: Sequence[Fk] = ()
    """Foreign keys (``fk_<table>_<column>_<parent>``)."""


# authdemo's tables at revision 0006, parents before the tables that refer to them.
TABLES: dict[str, Layout] = {
    "app_secrets": Layout(),
    "users": Layout(serial=True, uniques={"username_key": ["username_key"]}),
    "sessions": Layout(
        serial=True,
        indexes={
            "absolute_expires_at": ["absolute_expires_at"],
            "user_id": ["user_id"],
            "idle_expires_at": ["idle_expires_at"],
        },
        uniques={"token_hash": ["token_hash"]},
        fks=[Fk("user_id", "users", "CASCADE")],
    ),
    "auth_tickets": Layout(
        serial=True,
        indexes={"expires_at": ["expires_at"], "session_id": ["session_id"]},
        uniques={"ticket_hash": ["ticket_hash"]},
        fks=[Fk("session_id", "sessions", "CASCADE")],
    ),
    "login_throttle": Layout(indexes={"updated_at": ["updated_at"]}),
    "session_broadcasts": Layout(
        serial=True, indexes={"created_at": ["created_at"], "txid": ["txid"]}
    ),
    "auth_events": Layout(
        serial=True,
        indexes={"at": ["at"], "user_id": ["user_id", "id"]},
        fks=[Fk("user_id", "users", "SET NULL")],
    ),
    "user_mfa": Layout(fks=[Fk("user_id", "users", "CASCADE")]),
    "mfa_recovery_codes": Layout(
        serial=True,
        uniques={"user_id": ["user_id", "code_digest"]},
        fks=[Fk("user_id", "users", "CASCADE")],
    ),
    "mfa_challenges": Layout(
        serial=True,
        indexes={"expires_at": ["expires_at"], "user_id": ["user_id"]},
        uniques={"challenge_hash": ["challenge_hash"]},
        fks=[Fk("user_id", "users", "CASCADE")],
    ),
}


def upgrade() -> None:
    if table_names().legacy:
        _rename(lambda table: table, lambda table: TABLE_PREFIX + table)


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if any(inspector.has_table(table) for table in TABLES):
        return  # a name 0.1.0 used is someone else's now: the prefixed names stay
    _rename(lambda table: TABLE_PREFIX + table, lambda table: table)


def _rename(old: Callable[[str], str], new: Callable[[str], str]) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        op.rename_table(old(table), new(table))
    for table, layout in TABLES.items():
        was, now = old(table), new(table)
        if postgres:
            _rename_postgres(table, layout, old, new)
            continue
        if layout.uniques or layout.fks:
            with op.batch_alter_table(now, recreate="always") as batch:
                for suffix, columns in layout.uniques.items():
                    batch.drop_constraint(f"uq_{was}_{suffix}", type_="unique")
                    batch.create_unique_constraint(f"uq_{now}_{suffix}", columns)
                for fk in layout.fks:
                    batch.drop_constraint(
                        f"fk_{was}_{fk.column}_{old(fk.parent)}", type_="foreignkey"
                    )
                    batch.create_foreign_key(
                        f"fk_{now}_{fk.column}_{new(fk.parent)}",
                        new(fk.parent),
                        [fk.column],
                        ["id"],
                        ondelete=fk.ondelete,
                    )
        for suffix, columns in layout.indexes.items():
            op.drop_index(f"ix_{was}_{suffix}", table_name=now)
            op.create_index(f"ix_{now}_{suffix}", now, columns)


def _rename_postgres(
    table: str, layout: Layout, old: Callable[[str], str], new: Callable[[str], str]
) -> None:
    was, now = old(table), new(table)
    renames = [f"ALTER TABLE {now} RENAME CONSTRAINT pk_{was} TO pk_{now}"]
    if layout.serial:
        renames.append(f"ALTER SEQUENCE {was}_id_seq RENAME TO {now}_id_seq")
    renames += [
        f"ALTER TABLE {now} RENAME CONSTRAINT uq_{was}_{suffix} TO uq_{now}_{suffix}"
        for suffix in layout.uniques
    ]
    renames += [
        f"ALTER TABLE {now} RENAME CONSTRAINT fk_{was}_{fk.column}_{old(fk.parent)} "
        f"TO fk_{now}_{fk.column}_{new(fk.parent)}"
        for fk in layout.fks
    ]
    renames += [
        f"ALTER INDEX ix_{was}_{suffix} RENAME TO ix_{now}_{suffix}" for suffix in layout.indexes
    ]
    for statement in renames:
        op.execute(statement)
