"""Databases as authdemo 0.1.0 made them: its frozen migration scripts
(tests/support/release_0_1), its table names, its version table."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from tests.support.db import in_thread

SCRIPTS = Path(__file__).resolve().parent / "release_0_1"

TABLES_0_1 = frozenset(
    {
        "users",
        "sessions",
        "auth_tickets",
        "app_secrets",
        "auth_events",
        "login_throttle",
        "session_broadcasts",
        "user_mfa",
        "mfa_recovery_codes",
        "mfa_challenges",
    }
)
"""The tables of 0.1.0 at its last revision (0006)."""


def migrate_as_0_1(
    url: str, revision: str = "0006", *, version_table: str = "authdemo_alembic_version"
) -> None:
    """Run 0.1.0's scripts up to ``revision``, recording it in ``version_table``: 0.1.0's
    own by default; ``alembic_version`` for the layout of the releases before it."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    config.attributes["version_table"] = version_table
    in_thread(lambda: command.upgrade(config, revision))
