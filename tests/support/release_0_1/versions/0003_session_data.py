"""Session data (use_session) and the origin of session broadcasts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("session_broadcasts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(length=32), server_default="", nullable=False)
        )

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("data")

    with op.batch_alter_table("session_broadcasts", schema=None) as batch_op:
        batch_op.drop_column("origin")
