"""Roles and permissions: ``authdemo_roles`` (a unique name, a description),
``authdemo_role_permissions`` (the permission patterns a role grants: a permission the
app declares, ``prefix:*`` or ``*``) and ``authdemo_user_roles`` (who holds which role).

The built-in role ``admin`` is created here, granting ``authdemo:admin`` (the admin
page's permission); nobody holds it until an operator grants it
(``authdemo role grant USER admin``).

Deleting a user or a role deletes its holdings (``ON DELETE CASCADE``); the service
deletes them itself too, so that it can announce the change to the holders' open views.

Revision ID: authdemo_0009
Revises: authdemo_0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "authdemo_0009"
down_revision: str | None = "authdemo_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ROLES = "authdemo_roles"
ROLE_PERMISSIONS = "authdemo_role_permissions"
USER_ROLES = "authdemo_user_roles"
USERS = "authdemo_users"  # authdemo_0007 gave every table its prefix


def upgrade() -> None:
    roles = op.create_table(
        ROLES,
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{ROLES}"),
        sa.UniqueConstraint("name", name=f"uq_{ROLES}_name"),
    )
    grants = op.create_table(
        ROLE_PERMISSIONS,
        sa.Column("role_id", Id, nullable=False),
        sa.Column("pattern", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_id"],
            [f"{ROLES}.id"],
            name=f"fk_{ROLE_PERMISSIONS}_role_id_{ROLES}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("role_id", "pattern", name=f"pk_{ROLE_PERMISSIONS}"),
    )
    op.create_table(
        USER_ROLES,
        sa.Column("user_id", Id, nullable=False),
        sa.Column("role_id", Id, nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{USERS}.id"],
            name=f"fk_{USER_ROLES}_user_id_{USERS}",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            [f"{ROLES}.id"],
            name=f"fk_{USER_ROLES}_role_id_{ROLES}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=f"pk_{USER_ROLES}"),
    )
    op.create_index(f"ix_{USER_ROLES}_role_id", USER_ROLES, ["role_id"])
    # The built-in role; its id is 1 in a table just created (on either backend).
    op.bulk_insert(
        roles,
        [
            {
                "id": 1,
                "name": "admin",
                "description": "Administrators: the admin page and everything on it",
                "created_at": datetime.now(UTC),
            }
        ],
    )
    op.bulk_insert(grants, [{"role_id": 1, "pattern": "authdemo:admin"}])
    if op.get_context().dialect.name == "postgresql":
        # An explicit id leaves the sequence behind: the next role would collide with 1.
        op.execute("SELECT setval('authdemo_roles_id_seq', (SELECT max(id) FROM authdemo_roles))")


def downgrade() -> None:
    op.drop_index(f"ix_{USER_ROLES}_role_id", table_name=USER_ROLES)
    op.drop_table(USER_ROLES)
    op.drop_table(ROLE_PERMISSIONS)
    op.drop_table(ROLES)
