"""Users, sessions, cookie tickets and deployment secrets.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from authdemo.db.migrations import table_names

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    t = table_names(creating=True)
    op.create_table(
        t.app_secrets,
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f(f"pk_{t.app_secrets}")),
    )
    op.create_table(
        t.users,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("username_key", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t.users}")),
        sa.UniqueConstraint("username_key", name=op.f(f"uq_{t.users}_username_key")),
    )
    op.create_table(
        t.sessions,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("absolute_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_addr", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{t.users}.id"],
            name=op.f(f"fk_{t.sessions}_user_id_{t.users}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t.sessions}")),
        sa.UniqueConstraint("token_hash", name=op.f(f"uq_{t.sessions}_token_hash")),
    )
    with op.batch_alter_table(t.sessions, schema=None) as batch_op:
        batch_op.create_index(
            f"ix_{t.sessions}_absolute_expires_at", ["absolute_expires_at"], unique=False
        )
        batch_op.create_index(f"ix_{t.sessions}_user_id", ["user_id"], unique=False)

    op.create_table(
        t.auth_tickets,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("bound_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            [f"{t.sessions}.id"],
            name=op.f(f"fk_{t.auth_tickets}_session_id_{t.sessions}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t.auth_tickets}")),
        sa.UniqueConstraint("ticket_hash", name=op.f(f"uq_{t.auth_tickets}_ticket_hash")),
    )
    with op.batch_alter_table(t.auth_tickets, schema=None) as batch_op:
        batch_op.create_index(f"ix_{t.auth_tickets}_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f(f"ix_{t.auth_tickets}_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    t = table_names()
    with op.batch_alter_table(t.auth_tickets, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{t.auth_tickets}_session_id"))
        batch_op.drop_index(f"ix_{t.auth_tickets}_expires_at")

    op.drop_table(t.auth_tickets)
    with op.batch_alter_table(t.sessions, schema=None) as batch_op:
        batch_op.drop_index(f"ix_{t.sessions}_user_id")
        batch_op.drop_index(f"ix_{t.sessions}_absolute_expires_at")

    op.drop_table(t.sessions)
    op.drop_table(t.users)
    op.drop_table(t.app_secrets)
