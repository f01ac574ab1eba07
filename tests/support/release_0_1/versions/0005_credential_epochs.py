"""Credential epochs and commit-ordered broadcasts.

``users.credential_epoch`` is bumped by every password change, disable and "end all
sessions"; each session copies it when it opens (``sessions.user_epoch``) and may act
only while the two are equal, so a sign-in that verified a password before the change
can never open a session that outlives it.

``session_broadcasts.txid`` is the writing transaction's id on PostgreSQL
(``pg_current_xact_id()``): the follower reads only past the oldest transaction still
running, so a row committed out of id order is never skipped. NULL on SQLite, whose
single writer commits in id order.

``session_broadcasts.user_id`` names whose sessions an event changes, so that every open
"Your sessions" list of that user, on any worker or host, follows sign-ins and ends.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("credential_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("user_epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("session_broadcasts") as batch:
        batch.add_column(sa.Column("txid", Id, nullable=True))
        batch.add_column(sa.Column("user_id", Id, nullable=True))
    op.create_index("ix_session_broadcasts_txid", "session_broadcasts", ["txid"])


def downgrade() -> None:
    op.drop_index("ix_session_broadcasts_txid", table_name="session_broadcasts")
    with op.batch_alter_table("session_broadcasts") as batch:
        batch.drop_column("user_id")
        batch.drop_column("txid")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("user_epoch")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("credential_epoch")
