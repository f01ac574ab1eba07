"""Real databases for tests, built by alembic exactly as users build theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def copy_database(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return sqlite_url(target)
