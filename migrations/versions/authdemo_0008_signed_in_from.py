"""Which pre-sign-in cookie a session's first cookie replaced.

``sessions.signed_in_from`` is the hash of the cookie the browser presented when it
redeemed the session's sign-in ticket (the ticket's bound cookie), kept through later
rotations. The other open tabs of that browser knew it by that cookie: when one of them
proves, by a request that carries the browser's current cookie, that the browser holds
this session now, the tab may follow the sign-in only if this column names the cookie it
knew. NULL for anonymous rows and for sessions signed in before this revision (their
tabs have long settled).

Revision ID: authdemo_0008
Revises: authdemo_0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from authdemo.db.migrations import table_names

revision: str = "authdemo_0008"
down_revision: str | None = "authdemo_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table(table_names().sessions) as batch:
        batch.add_column(sa.Column("signed_in_from", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(table_names().sessions) as batch:
        batch.drop_column("signed_in_from")
