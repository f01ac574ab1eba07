"""Two-factor sign-in: sealed TOTP secrets, recovery-code digests, pending second steps.

``user_mfa`` holds one sealed secret per user (AES-GCM; the key is never in the
database) and ``last_step``, the latest time step a code was accepted for: a code is
accepted only by ``UPDATE … WHERE last_step < :step``, so each works once.
``mfa_recovery_codes`` keeps keyed digests, spent by ``UPDATE … WHERE used_at IS NULL``.
``mfa_challenges`` holds correct passwords waiting for their code (short-lived, bound
to the browser's cookie and the user's credential epoch).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from authdemo.db.migrations import table_names

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    t = table_names()
    op.create_table(
        t.user_mfa,
        sa.Column("user_id", Id, nullable=False),
        sa.Column("sealed_secret", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{t.users}.id"],
            name=f"fk_{t.user_mfa}_user_id_{t.users}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=f"pk_{t.user_mfa}"),
    )
    op.create_table(
        t.mfa_recovery_codes,
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{t.users}.id"],
            name=f"fk_{t.mfa_recovery_codes}_user_id_{t.users}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t.mfa_recovery_codes}"),
        sa.UniqueConstraint("user_id", "code_digest", name=f"uq_{t.mfa_recovery_codes}_user_id"),
    )
    op.create_table(
        t.mfa_challenges,
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("challenge_hash", sa.String(64), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("user_epoch", sa.Integer(), nullable=False),
        sa.Column("bound_token_hash", sa.String(64), nullable=False),
        sa.Column("carry_from", Id, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{t.users}.id"],
            name=f"fk_{t.mfa_challenges}_user_id_{t.users}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t.mfa_challenges}"),
        sa.UniqueConstraint("challenge_hash", name=f"uq_{t.mfa_challenges}_challenge_hash"),
    )
    op.create_index(f"ix_{t.mfa_challenges}_expires_at", t.mfa_challenges, ["expires_at"])
    op.create_index(f"ix_{t.mfa_challenges}_user_id", t.mfa_challenges, ["user_id"])


def downgrade() -> None:
    t = table_names()
    op.drop_index(f"ix_{t.mfa_challenges}_user_id", table_name=t.mfa_challenges)
    op.drop_index(f"ix_{t.mfa_challenges}_expires_at", table_name=t.mfa_challenges)
    op.drop_table(t.mfa_challenges)
    op.drop_table(t.mfa_recovery_codes)
    op.drop_table(t.user_mfa)
