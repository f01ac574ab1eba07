"""Self-service accounts by e-mail: addresses on users, mailed codes, limits, a mail outbox.

``authdemo_users`` gains an optional address (``email``, and ``email_key``, its
case-folded form, unique by an index so SQLite adds it without a table rebuild), when it
was verified, and ``signup_expires_at`` for accounts made by sign-up that are not yet
verified (they cannot sign in, and are purged after it).

``authdemo_email_codes`` keeps one code per user and purpose as a keyed digest with its
expiry and wrong tries; ``authdemo_rate_limits`` counts mails and sign-ups per address
and network in fixed windows, shared by every worker and host; ``authdemo_mail_outbox``
holds every mail from the transaction that causes it until a sender delivered it.

Revision ID: authdemo_0010
Revises: authdemo_0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "authdemo_0010"
down_revision: str | None = "authdemo_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
USERS = "authdemo_users"
CODES = "authdemo_email_codes"
LIMITS = "authdemo_rate_limits"
OUTBOX = "authdemo_mail_outbox"


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both backends: no table is rebuilt.
    op.add_column(USERS, sa.Column("email", sa.String(254), nullable=True))
    op.add_column(USERS, sa.Column("email_key", sa.String(254), nullable=True))
    op.add_column(USERS, sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(USERS, sa.Column("signup_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(f"ix_{USERS}_email_key", USERS, ["email_key"], unique=True)
    op.create_index(f"ix_{USERS}_signup_expires_at", USERS, ["signup_expires_at"])
    op.create_table(
        CODES,
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("email_key", sa.String(254), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["user_id"], [f"{USERS}.id"], name=f"fk_{CODES}_user_id_{USERS}", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{CODES}"),
        sa.UniqueConstraint("user_id", "purpose", name=f"uq_{CODES}_user_id"),
    )
    op.create_index(f"ix_{CODES}_expires_at", CODES, ["expires_at"])
    op.create_table(
        LIMITS,
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=f"pk_{LIMITS}"),
    )
    op.create_index(f"ix_{LIMITS}_window_ends_at", LIMITS, ["window_ends_at"])
    op.create_table(
        OUTBOX,
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name=f"pk_{OUTBOX}"),
    )
    op.create_index(f"ix_{OUTBOX}_due", OUTBOX, ["sent_at", "next_attempt_at"])
    op.create_index(f"ix_{OUTBOX}_created_at", OUTBOX, ["created_at"])


def downgrade() -> None:
    op.drop_index(f"ix_{OUTBOX}_created_at", table_name=OUTBOX)
    op.drop_index(f"ix_{OUTBOX}_due", table_name=OUTBOX)
    op.drop_table(OUTBOX)
    op.drop_index(f"ix_{LIMITS}_window_ends_at", table_name=LIMITS)
    op.drop_table(LIMITS)
    op.drop_index(f"ix_{CODES}_expires_at", table_name=CODES)
    op.drop_table(CODES)
    op.drop_index(f"ix_{USERS}_signup_expires_at", table_name=USERS)
    op.drop_index(f"ix_{USERS}_email_key", table_name=USERS)
    # SQLite rebuilds the table to drop columns (batch mode; env.py keeps foreign keys
    # off and checks them before the commit).
    with op.batch_alter_table(USERS) as batch:
        batch.drop_column("signup_expires_at")
        batch.drop_column("email_verified_at")
        batch.drop_column("email_key")
        batch.drop_column("email")
