"""`authdemo migrate`: upgrade, `--check`, `--sql`, and errors as one line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from authdemo.cli import main
from authdemo.db.engine import create_engine
from authdemo.db.migrations import VERSION_TABLE
from authdemo.db.schema import HEAD_REVISION
from tests.support.db import ROOT, migrate, revisions, sqlite_url
from tests.support.pg import SKIP_REASON as POSTGRES_SKIP_REASON
from tests.support.pg import PostgresDatabases
from tests.support.pg import app_url as pg_app_url
from tests.support.ports import free_port

PENDING = ", ".join(revisions())


def invoke(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["migrate", *args], env={"AUTHDEMO_DATABASE_URL": db_url})


def version_rows(url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
                return [str(row[0]) for row in result]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def one_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_migrate_creates_the_schema_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: the package finds its own scripts
    url = sqlite_url(tmp_path / "new.db")
    result = invoke(url)
    assert result.exit_code == 0, result.output
    assert f"Created authdemo's tables in {url} (revision {HEAD_REVISION})." in one_line(result)
    assert version_rows(url) == [HEAD_REVISION]
    again = invoke(url)
    assert again.exit_code == 0
    assert "nothing to do" in one_line(again)


def test_check_is_0_when_up_to_date(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.db")
    migrate(url)
    result = invoke(url, "--check")
    assert result.exit_code == 0, result.output
    assert f"is up to date (authdemo revision {HEAD_REVISION})" in one_line(result)


def test_check_lists_what_is_pending_and_applies_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.db")
    migrate(url, "0003")
    result = invoke(url, "--check")
    assert result.exit_code == 3
    line = one_line(result)
    assert "is at authdemo revision 0003; pending: 0004" in line
    assert line.endswith(f"{HEAD_REVISION}: run `authdemo migrate`.")
    assert version_rows(url) == ["0003"]
    upgraded = invoke(url)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from authdemo revision 0003 to {HEAD_REVISION}" in one_line(upgraded)
    assert invoke(url, "--check").exit_code == 0


def test_check_on_a_missing_database_neither_passes_nor_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = invoke(sqlite_url(path), "--check")
    assert result.exit_code == 3
    assert f"has no authdemo tables yet; pending: {PENDING}" in one_line(result)
    assert not path.exists()


def test_sql_prints_the_schema_without_opening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = invoke(sqlite_url(path), "--sql")
    assert result.exit_code == 0, result.output
    assert f"CREATE TABLE {VERSION_TABLE} (" in result.output
    assert "CREATE TABLE authdemo_users (" in result.output
    assert f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0001')" in result.output
    assert not path.exists()


def test_sql_follows_the_urls_dialect() -> None:
    result = invoke("postgresql+asyncpg://nobody@127.0.0.1:1/nothing", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE authdemo_users (" in result.output
    assert "BIGSERIAL" in result.output or "IDENTITY" in result.output or "BIGINT" in result.output


def test_sql_and_check_together_are_a_usage_error(tmp_path: Path) -> None:
    result = invoke(sqlite_url(tmp_path / "db.db"), "--sql", "--check")
    assert result.exit_code == 2
    assert "do not go together" in result.output


@pytest.mark.parametrize("args", [(), ("--check",)])
def test_an_unreachable_database_is_one_line(args: tuple[str, ...]) -> None:
    result = invoke("postgresql+asyncpg://nobody:secret@127.0.0.1:1/nothing", *args)
    assert result.exit_code == 3
    line = one_line(result)
    assert "Cannot open the database postgresql+asyncpg://nobody:***@127.0.0.1:1/nothing" in line
    assert "secret" not in line


def test_an_unopenable_sqlite_path_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such" / "dir"
    result = invoke(sqlite_url(folder / "db.db"))
    assert result.exit_code == 3
    assert f"the folder {folder} does not exist" in one_line(result)
    assert not (tmp_path / "no").exists()


def test_a_database_from_a_newer_authdemo_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.db")
    migrate(url)

    async def bump() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
        finally:
            await engine.dispose()

    asyncio.run(bump())
    for args in [(), ("--check",)]:
        result = invoke(url, *args)
        assert result.exit_code == 3
        assert "revision 9999, which this version of authdemo does not know" in one_line(result)
    assert version_rows(url) == ["9999"]


def test_behind_pgbouncer_migrate_goes_straight_to_postgresql(
    postgres: PostgresDatabases | None,
) -> None:
    """Queries go to a pooler (here: nothing listens there at all), the listener URL is
    PostgreSQL itself: the migration runs on the direct connection, where alembic's
    statements share one server session."""
    if postgres is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    name = postgres.fresh(migrated=False)
    try:
        direct = pg_app_url(name)
        pooler = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/{name}"
        env = {"AUTHDEMO_DATABASE_URL": pooler, "AUTHDEMO_LISTEN_URL": direct}
        result = CliRunner().invoke(main, ["migrate"], env=env)
        assert result.exit_code == 0, result.output
        assert f"(revision {HEAD_REVISION})" in one_line(result)
        assert version_rows(direct) == [HEAD_REVISION]
        # Without a listen URL of its own, the same pooler URL is where it would go.
        alone = CliRunner().invoke(main, ["migrate"], env={"AUTHDEMO_DATABASE_URL": pooler})
        assert alone.exit_code == 3, alone.output
    finally:
        postgres.drop(name)


def test_alembic_in_the_checkout_and_authdemo_migrate_from_elsewhere_build_the_same_schema(
    tmp_path: Path,
) -> None:
    """The top-level migrations/ (alembic.ini's) and the package's are one set of scripts."""
    by_alembic = tmp_path / "alembic.db"
    by_authdemo = tmp_path / "authdemo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHDEMO_")}
    subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**env, "AUTHDEMO_DATABASE_URL": sqlite_url(by_alembic)},
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-m", "authdemo", "migrate"],
        cwd=elsewhere,
        env={**env, "AUTHDEMO_DATABASE_URL": sqlite_url(by_authdemo)},
        check=True,
        capture_output=True,
    )

    def schema(path: Path) -> list[tuple[str, str]]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return sorted(db.execute("SELECT name, coalesce(sql, '') FROM sqlite_master"))

    assert schema(by_alembic) == schema(by_authdemo)
    assert "authdemo_users" in dict(schema(by_alembic))
