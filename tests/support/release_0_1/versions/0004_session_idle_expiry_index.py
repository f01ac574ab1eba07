"""Index sessions by idle expiry, so purge-expired never scans the table.

Without it, ``absolute_expires_at <= now OR (idle_expires_at <= now AND revoked_at IS
NULL)`` can only be answered by a full scan, once per batch: with a million live rows
ahead of the expired ones, purging a million expired rows took minutes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_idle_expires_at", "sessions", ["idle_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_idle_expires_at", table_name="sessions")
