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
from tests.support.docs import example
from tests.support.idom_client import IdomClient
from tests.support.ports import free_port

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
    assert "authdemo/ui/static/app.css" in names


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


def readme_example(name: str) -> str:
    """An example of the README or the docs (the alembic recipe is in docs/guide/alembic.md)."""
    return example(name)


def readme_app() -> str:
    return readme_example("app.py")


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
file_template = %%(rev)s_%%(slug)s
prepend_sys_path = .
path_separator = os
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

# The app's own history, numbered as many apps number theirs: its own users and sessions.
APP_HISTORY = [
    (
        "0005",
        None,
        'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("email", sa.String(200), nullable=False))\n'
        '    op.create_table("sessions", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")), '
        'sa.Column("data", sa.String(200)))',
    ),
    (
        "0006",
        "0005",
        "op.execute(\"INSERT INTO users (id, email) VALUES (1, 'ann@example.com')\")\n"
        "    op.execute(\"INSERT INTO sessions (id, user_id, data) VALUES (7, 1, 'cart')\")",
    ),
]


# What the app's history above made, as its models.py declares it beside the README's.
APP_OWN_MODELS = """
Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False),
)
Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id")),
    Column("data", String(200)),
)
"""


def make_app_folder(folder: Path) -> None:
    """An app of its own: alembic.ini, the README's env.py and models.py, its history."""
    (folder / "migrations" / "versions").mkdir(parents=True)
    (folder / "alembic.ini").write_text(APP_ALEMBIC_INI)
    (folder / "migrations" / "env.py").write_text(readme_example("env.py"))
    (folder / "migrations" / "script.py.mako").write_text(APP_SCRIPT_TEMPLATE)
    (folder / "models.py").write_text(readme_example("models.py") + APP_OWN_MODELS)
    for rev, down, upgrade in APP_HISTORY:
        (folder / "migrations" / "versions" / f"{rev}.py").write_text(
            APP_REVISION.format(rev=rev, down=down, upgrade=upgrade)
        )


APP_SCRIPT_TEMPLATE = """\
import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
"""


def app_rows(venv: Venv, folder: Path, url: str) -> str:
    """The app's own rows and alembic_version, read through the venv's SQLAlchemy."""
    script = (
        "import asyncio, sys\n"
        "from sqlalchemy import text\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main():\n"
        "    engine = create_async_engine(sys.argv[1])\n"
        "    async with engine.connect() as c:\n"
        "        for q in ('SELECT id, email FROM users', 'SELECT id, user_id, data FROM sessions',"
        " 'SELECT version_num FROM alembic_version'):\n"
        "            print([tuple(r) for r in await c.execute(text(q))])\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    return check_ok(venv.run("python", "-c", script, url, cwd=folder))


@pytest.mark.parametrize("order", ["app_first", "authdemo_first"])
async def test_beside_an_apps_own_users_sessions_and_history_with_a_foreign_key(
    venv: Venv, tmp_path: Path, empty_db_url: str, order: str
) -> None:
    """The app's users, sessions and alembic_version at 0006 stay exactly as they were;
    authdemo's tables are all authdemo_*; the app's model with a foreign key to
    authdemo's users autogenerates cleanly and `alembic check` passes on both histories."""
    folder = tmp_path / "myapp"
    folder.mkdir()
    make_app_folder(folder)
    url = empty_db_url
    env = {"AUTHDEMO_DATABASE_URL": url}

    def alembic(*args: str) -> str:
        return check_ok(venv.run("alembic", *args, cwd=folder, **env))

    if order == "app_first":
        alembic("upgrade", "head")
        before = app_rows(venv, folder, url)
        migrated = check_ok(venv.run("authdemo", "migrate", cwd=folder, **env))
        assert "Created authdemo's tables" in migrated
        assert app_rows(venv, folder, url) == before  # rows and alembic_version untouched
    else:
        check_ok(venv.run("authdemo", "migrate", cwd=folder, **env))
        alembic("upgrade", "head")
    assert app_rows(venv, folder, url).splitlines() == [
        "[(1, 'ann@example.com')]",
        "[(7, 1, 'cart')]",
        "[('0006',)]",
    ]

    # The app adds its model with a foreign key to authdemo_users, by autogenerate.
    alembic("revision", "--autogenerate", "--rev-id", "0007", "-m", "notes")
    (generated,) = (folder / "migrations" / "versions").glob("0007_*.py")
    script = generated.read_text()
    upgrade, downgrade = script.split("def downgrade", 1)
    assert "op.create_table('notes'" in upgrade
    assert "['authdemo_users.id']" in upgrade  # the foreign key, to authdemo's table
    # Nothing else: none of authdemo's tables, and the app's own are as its models say.
    assert upgrade.count("op.") == 1, script
    assert "'authdemo_" not in upgrade.replace("['authdemo_users.id']", ""), script
    assert downgrade.count("op.") == 1 and "op.drop_table('notes')" in downgrade, script
    alembic("upgrade", "head")
    assert "No new upgrade operations detected" in alembic("check")
    assert "up to date" in check_ok(venv.run("authdemo", "migrate", "--check", cwd=folder, **env))
    assert app_rows(venv, folder, url).splitlines()[-1] == "[('0007',)]"

    check_ok(
        venv.run(
            "authdemo",
            "create-user",
            "alice",
            "--password-stdin",
            cwd=folder,
            input=PASSWORD + "\n",
            **env,
        )
    )
    (folder / "app.py").write_text(readme_app())
    with sanic_serving(venv, folder, url) as base_url:
        await sign_in(base_url)


def test_the_readmes_alembic_recipe_passes_mypy_strict_against_the_wheel(
    venv: Venv, tmp_path: Path
) -> None:
    for name in ("env.py", "models.py"):
        (tmp_path / name).write_text(readme_example(name))
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-executable",
            str(venv.bin / "python"),
            "env.py",
            "models.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("mode", [(), ("--single-process",)], ids=["workers", "single-process"])
def test_sanic_app_on_an_unready_database_refuses_in_one_line_naming_it(
    venv: Venv, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    folder = tmp_path / "myapp"
    folder.mkdir()
    (folder / "app.py").write_text(readme_app())

    def serve(**env: str) -> str:
        args = ("sanic", "app:app", "--port", str(free_port()), *mode)
        done = subprocess.run(
            [str(venv.bin / args[0]), *args[1:]],
            cwd=folder,
            env=venv.env(**env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 3, done.stdout + done.stderr
        output = done.stdout + done.stderr
        assert "Traceback" not in output and "╭" not in output
        # Besides ours, Sanic's own one line at most ("Experienced exception while trying
        # to serve", as the main process stops the manager it had started).
        assert [
            e for e in output.splitlines() if " ERROR: " in e and "trying to serve" not in e
        ] == []
        (line,) = [
            line for line in output.splitlines() if "authdemo" in line and "INFO" not in line
        ]
        return line

    missing = serve()
    assert missing == (
        "authdemo cannot start: The database authdemo.db does not exist: run `authdemo "
        "migrate`. (database sqlite+aiosqlite:///authdemo.db, the default: "
        "AUTHDEMO_DATABASE_URL is not set)"
    )
    assert not (folder / "authdemo.db").exists()
    (folder / "empty.db").touch()
    unmigrated = serve(AUTHDEMO_DATABASE_URL="sqlite:///empty.db")
    assert "has no authdemo tables yet: run `authdemo migrate`" in unmigrated
    assert unmigrated.endswith(
        "(database sqlite+aiosqlite:///empty.db, from AUTHDEMO_DATABASE_URL)"
    )
