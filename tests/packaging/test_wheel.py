"""The built wheel, installed into a fresh virtualenv outside the checkout, is enough:
its own migrations create the schema (alone, and beside an app's own alembic history in
the same database), and the README's app, served from an empty folder, signs a user in.

One virtualenv for the module (creating it installs the dependencies from the package
registry, about ten seconds with pip's cache); it has no system site-packages and no path
into the checkout, and the test checks that ``authdemo`` is imported from it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import authdemo
from authdemo.db.migrations import VERSION_TABLE
from authdemo.db.schema import HEAD_REVISION
from tests.support.db import ROOT
from tests.support.idom_client import IdomClient
from tests.support.live import free_port

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a shell that activated this venv, and nothing of ours."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AUTHDEMO_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        return {**env, **extra}

    def run(
        self, *args: str, cwd: Path, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=cwd,
            env=self.env(**env),
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


SOURCES = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "authdemo", "migrations")


def build(out: Path) -> tuple[Path, Path]:
    """``python -m build`` (sdist, then the wheel from it) of a copy of the sources, so
    the build leaves nothing in the checkout. Returns (sdist, wheel)."""
    src = out / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy(ROOT / name, src / name)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "-o", str(out / "dist"), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = (out / "dist").glob("authdemo-*.tar.gz")
    (wheel,) = (out / "dist").glob("authdemo-*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, artifacts: tuple[Path, Path]) -> Venv:
    _, wheel = artifacts
    venv = Venv(tmp_path_factory.mktemp("venv") / "venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv.path)], check=True)
    installed = subprocess.run(
        [str(venv.bin / "python"), "-m", "pip", "install", "-q", str(wheel)],
        env=venv.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv


def test_the_wheel_holds_every_module_and_the_migrations_of_the_checkout(
    artifacts: tuple[Path, Path],
) -> None:
    _, wheel = artifacts
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "authdemo").rglob("*.py")}
    assert modules - names == set()
    scripts = {
        "authdemo/" + p.relative_to(ROOT).as_posix()
        for p in (ROOT / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert any(s.startswith(f"authdemo/migrations/versions/{HEAD_REVISION}_") for s in scripts)
    assert {"authdemo/migrations/env.py", "authdemo/migrations/script.py.mako"} <= scripts
    assert scripts - names == set()
    assert "authdemo/web/static/app.css" in names


def test_the_license_is_in_the_sdist_and_in_the_wheel(artifacts: tuple[Path, Path]) -> None:
    sdist, wheel = artifacts
    in_wheel = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("/LICENSE")]
    assert in_wheel == [f"authdemo-{authdemo.__version__}.dist-info/licenses/LICENSE"]
    with tarfile.open(sdist) as tar:
        assert f"authdemo-{authdemo.__version__}/LICENSE" in tar.getnames()
        assert f"authdemo-{authdemo.__version__}/migrations/env.py" in tar.getnames()


def test_authdemo_version_prints_the_wheels_version(venv: Venv, tmp_path: Path) -> None:
    printed = check_ok(venv.run("authdemo", "--version", cwd=tmp_path))
    assert printed.strip() == f"authdemo, version {authdemo.__version__}"
    imported = check_ok(
        venv.run("python", "-c", "import authdemo; print(authdemo.__version__)", cwd=tmp_path)
    )
    assert imported.strip() == authdemo.__version__


def readme_app() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        r"<!-- example: app.py -->\s*```python\n(.*?)```\s*<!-- /example -->", readme, re.S
    )
    assert match, "the README's example block is missing"
    return match.group(1)


@contextlib.contextmanager
def sanic_serving(venv: Venv, folder: Path, db_url: str) -> Iterator[str]:
    """``sanic app:app --single-process`` in ``folder``, as the README says to serve it."""
    port = free_port()
    log = folder / "sanic.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(venv.bin / "sanic"),
                "app:app",
                "--single-process",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=folder,
            env=venv.env(AUTHDEMO_DATABASE_URL=db_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"sanic exited:\n{log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(base_url + "/", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"sanic did not answer:\n{log.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.1)
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


async def sign_in(base_url: str) -> None:
    """A browser's sign-in: the form, the ticket that sets the cookie, and a new view
    opened with that cookie still signed in."""
    client = await IdomClient.connect(base_url)
    try:
        assert client.find("login-form") is not None and client.find("hello") is None
        await client.login("alice", PASSWORD)
        await client.wait_for_id("hello")
        assert client.text("hello") == "Hello, alice"
        assert await client.tickets_fetched() == [303]
        cookie = client.cookie
    finally:
        await client.close()
    async with await IdomClient.connect(base_url, cookie=cookie) as again:
        assert again.text("hello") == "Hello, alice"


def version_rows(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute(f"SELECT version_num FROM {table}")]


def check_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_authdemo_is_imported_from_the_venv_not_the_checkout(venv: Venv, tmp_path: Path) -> None:
    found = check_ok(
        venv.run("python", "-c", "import authdemo; print(authdemo.__file__)", cwd=tmp_path)
    )
    assert Path(found.strip()).is_relative_to(venv.path)


async def test_in_an_empty_folder_migrate_create_user_and_the_readme_app(
    venv: Venv, tmp_path: Path
) -> None:
    folder = tmp_path / "myapp"
    folder.mkdir()
    db = folder / "app.db"
    url = f"sqlite+aiosqlite:///{db}"

    pending = venv.run("authdemo", "migrate", "--check", cwd=folder, AUTHDEMO_DATABASE_URL=url)
    assert pending.returncode == 3
    assert "run `authdemo migrate`" in pending.stderr and "Traceback" not in pending.stderr
    assert f"revision {HEAD_REVISION}" in check_ok(
        venv.run("authdemo", "migrate", cwd=folder, AUTHDEMO_DATABASE_URL=url)
    )
    assert "up to date" in check_ok(
        venv.run("authdemo", "migrate", "--check", cwd=folder, AUTHDEMO_DATABASE_URL=url)
    )
    check_ok(
        venv.run(
            "authdemo",
            "create-user",
            "alice",
            "--password-stdin",
            cwd=folder,
            input=PASSWORD + "\n",
            AUTHDEMO_DATABASE_URL=url,
        )
    )
    assert sorted(p.name for p in folder.iterdir()) == ["app.db"]  # no alembic.ini needed

    (folder / "app.py").write_text(readme_app())
    with sanic_serving(venv, folder, url) as base_url:
        await sign_in(base_url)
    assert version_rows(db, VERSION_TABLE) == [HEAD_REVISION]


APP_ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
sqlalchemy.url = sqlite:///%(here)s/app.db
"""

APP_ENV = """\
from alembic import context
from sqlalchemy import Column, Integer, MetaData, String, Table, engine_from_config, pool

from authdemo.db.migrations import is_authdemo_table

metadata = MetaData()
Table("notes", metadata, Column("id", Integer, primary_key=True), Column("body", String(200)))


def include_name(name, type_, parent_names):
    return not (type_ == "table" and is_authdemo_table(name))


config = context.config
engine = engine_from_config(
    config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()
"""

APP_REVISION = """\
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    {upgrade}


def downgrade():
    pass
"""


def write_app_revision(folder: Path, rev: str, down: str | None, upgrade: str) -> None:
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / f"{rev}.py").write_text(APP_REVISION.format(rev=rev, down=down, upgrade=upgrade))


async def test_beside_an_apps_own_alembic_history_on_the_same_database(
    venv: Venv, tmp_path: Path
) -> None:
    folder = tmp_path / "myapp"
    (folder / "migrations").mkdir(parents=True)
    (folder / "alembic.ini").write_text(APP_ALEMBIC_INI)
    (folder / "migrations" / "env.py").write_text(APP_ENV)
    write_app_revision(
        folder,
        "a1_notes",
        None,
        'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("body", sa.String(200)))',
    )
    db = folder / "app.db"
    url = f"sqlite+aiosqlite:///{db}"

    # The app's history first, then authdemo's, then the app's again: neither table of
    # versions gets in the other's way.
    check_ok(venv.run("alembic", "upgrade", "head", cwd=folder))
    check_ok(venv.run("authdemo", "migrate", cwd=folder, AUTHDEMO_DATABASE_URL=url))
    write_app_revision(
        folder,
        "a2_first_note",
        "a1_notes",
        "op.execute(\"INSERT INTO notes (body) VALUES ('hi')\")",
    )
    check_ok(venv.run("alembic", "upgrade", "head", cwd=folder))
    assert "a2_first_note (head)" in check_ok(venv.run("alembic", "current", cwd=folder))
    # The app's autogenerate sees none of authdemo's tables (include_name).
    assert "No new upgrade operations detected" in check_ok(
        venv.run("alembic", "check", cwd=folder)
    )
    assert "up to date" in check_ok(
        venv.run("authdemo", "migrate", "--check", cwd=folder, AUTHDEMO_DATABASE_URL=url)
    )
    assert version_rows(db, "alembic_version") == ["a2_first_note"]
    assert version_rows(db, VERSION_TABLE) == [HEAD_REVISION]

    check_ok(
        venv.run(
            "authdemo",
            "create-user",
            "alice",
            "--password-stdin",
            cwd=folder,
            input=PASSWORD + "\n",
            AUTHDEMO_DATABASE_URL=url,
        )
    )
    (folder / "app.py").write_text(readme_app())
    with sanic_serving(venv, folder, url) as base_url:
        await sign_in(base_url)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("hi",)]
