"""Real databases for tests, built by alembic exactly as users build theirs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def revisions() -> list[str]:
    """authdemo's revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread: it may call ``asyncio.run`` even when this thread
    already has a running loop (Playwright's sync API keeps one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def migrate(url: str, revision: str = "head") -> None:
    in_thread(lambda: command.upgrade(alembic_config(url), revision))


def copy_database(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return sqlite_url(target)
