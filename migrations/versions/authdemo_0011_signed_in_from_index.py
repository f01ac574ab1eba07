"""Index sessions by the pre-sign-in cookie their first cookie replaced.

A ticket's redemption asks whether another sign-in replaced the same cookie already (two
tabs of one browser that signed in at the same moment both present it): without an index
that question scans every session, once per sign-in.

Revision ID: authdemo_0011
Revises: authdemo_0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from authdemo.db.migrations import table_names

revision: str = "authdemo_0011"
down_revision: str | None = "authdemo_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    t = table_names()
    op.create_index(f"ix_{t.sessions}_signed_in_from", t.sessions, ["signed_in_from"])


def downgrade() -> None:
    t = table_names()
    op.drop_index(f"ix_{t.sessions}_signed_in_from", table_name=t.sessions)
