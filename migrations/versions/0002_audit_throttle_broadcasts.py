"""Audit trail (auth_events), login throttling, session broadcasts for other processes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from authdemo.db.migrations import table_names

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    t = table_names()
    op.create_table(
        t.login_throttle,
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f(f"pk_{t.login_throttle}")),
    )
    with op.batch_alter_table(t.login_throttle, schema=None) as batch_op:
        batch_op.create_index(f"ix_{t.login_throttle}_updated_at", ["updated_at"], unique=False)

    op.create_table(
        t.session_broadcasts,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("session_ids", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t.session_broadcasts}")),
    )
    with op.batch_alter_table(t.session_broadcasts, schema=None) as batch_op:
        batch_op.create_index(f"ix_{t.session_broadcasts}_created_at", ["created_at"], unique=False)

    op.create_table(
        t.auth_events,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("session", sa.String(length=8), nullable=False),
        sa.Column("client_addr", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{t.users}.id"],
            name=op.f(f"fk_{t.auth_events}_user_id_{t.users}"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t.auth_events}")),
    )
    with op.batch_alter_table(t.auth_events, schema=None) as batch_op:
        batch_op.create_index(f"ix_{t.auth_events}_at", ["at"], unique=False)
        batch_op.create_index(f"ix_{t.auth_events}_user_id", ["user_id", "id"], unique=False)


def downgrade() -> None:
    t = table_names()
    with op.batch_alter_table(t.auth_events, schema=None) as batch_op:
        batch_op.drop_index(f"ix_{t.auth_events}_user_id")
        batch_op.drop_index(f"ix_{t.auth_events}_at")

    op.drop_table(t.auth_events)
    with op.batch_alter_table(t.session_broadcasts, schema=None) as batch_op:
        batch_op.drop_index(f"ix_{t.session_broadcasts}_created_at")

    op.drop_table(t.session_broadcasts)
    with op.batch_alter_table(t.login_throttle, schema=None) as batch_op:
        batch_op.drop_index(f"ix_{t.login_throttle}_updated_at")

    op.drop_table(t.login_throttle)
