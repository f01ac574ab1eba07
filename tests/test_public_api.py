"""The public API as an app author meets it: ``from authdemo import …``, checked by
``mypy --strict`` as a type checker sees an installed authdemo (its own modules are
not the app's to fix), and the API reference's promises about it."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import authdemo
from authdemo.domain import AuthError
from tests.support.db import ROOT
from tests.support.docs import example
from tests.web.test_session_data import readme_example


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def mypy_strict(code: str, folder: Path, cache: Path) -> tuple[int, str]:
    """Run ``mypy --strict`` on ``code`` as ``app.py`` in an empty folder, with no
    configuration of ours. authdemo is found on ``PYTHONPATH``, i.e. as an installed
    package (as after ``pip install authdemo``), not as part of the app's source."""
    (folder / "app.py").write_text(code)
    (folder / "mypy.ini").write_text("[mypy]\n")
    command = [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini"]
    result = subprocess.run(
        [*command, "--cache-dir", str(cache), "app.py"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("ui", ["idom", "reactpy"])
def test_the_readme_example_passes_mypy_strict_as_written(
    tmp_path: Path, mypy_cache: Path, ui: str
) -> None:
    status, output = mypy_strict(readme_example(ui), tmp_path, mypy_cache)
    assert status == 0, output


@pytest.mark.parametrize("module", ["authdemo", "authdemo.idom", "authdemo.reactpy"])
def test_a_misspelt_import_fails_mypy_strict(tmp_path: Path, mypy_cache: Path, module: str) -> None:
    status, output = mypy_strict(f"from {module} import use_auht\n", tmp_path, mypy_cache)
    assert status == 1
    assert f'Module "{module}" has no attribute "use_auht"' in output


@pytest.mark.parametrize(
    ("library", "module"), [("idom", "authdemo"), ("reactpy", "authdemo.reactpy")]
)
def test_require_auth_keeps_the_guarded_components_signature(
    tmp_path: Path, mypy_cache: Path, library: str, module: str
) -> None:
    code = (
        f"from {library} import html\n"
        f"from {library}.types import Component, VdomDict\n"
        f"from {module} import require_auth\n\n"
        "@require_auth\n"
        "def Page(title: str, *, size: int = 1) -> VdomDict:\n"
        "    return html.h1(title)\n\n"
        "ok: Component = Page('hi', size=2)\n"
        "wrong = Page(3)\n"
        "unknown = Page('hi', colour='red')\n"
    )
    status, output = mypy_strict(code, tmp_path, mypy_cache)
    assert status == 1
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["10", "11"], output
    assert 'incompatible type "int"; expected "str"' in errors[0]
    assert 'Unexpected keyword argument "colour"' in errors[1]


def test_every_public_name_resolves_and_no_other_does() -> None:
    """The web and UI halves' names come from a module ``__getattr__`` on first use
    (type checkers never see it: ``test_a_misspelt_import_fails_mypy_strict``)."""
    for name in authdemo.__all__:
        assert getattr(authdemo, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'use_auht'"):
        authdemo.use_auht  # type: ignore[attr-defined]  # noqa: B018
    assert set(authdemo.__all__) <= set(dir(authdemo))


def test_the_command_line_and_the_services_start_without_sanic_or_a_ui_library() -> None:
    """``authdemo create-user`` and the other operator commands import the package and
    the services, never Sanic, IDOM or ReactPy; nor alembic (only ``migrate`` and
    ``status`` read the history), asyncpg or SQLAlchemy's PostgreSQL dialect (PostgreSQL
    only), aiosqlite (SQLite only, with the first engine), or email_validator (only when
    an address is read). Half their start-up time."""
    code = (
        "import sys, authdemo, authdemo.cli, authdemo.bootstrap, authdemo.accounts\n"
        "heavy = ('sanic', 'idom', 'reactpy', 'alembic', 'asyncpg', 'email_validator',\n"
        "         'sqlalchemy.dialects.postgresql', 'aiosqlite')\n"
        "from authdemo import Settings, Accounts, InvalidCredentials\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from authdemo import use_auth, create_app\n"
        "print(sorted(m for m in ('sanic', 'idom') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split("\n")[:2] == ["[]", "['idom', 'sanic']"], result.stdout


def test_every_project_exception_an_app_can_meet_is_exported() -> None:
    exported = {name for name in authdemo.__all__ if inspect.isclass(getattr(authdemo, name))}
    meetable = {
        "AlreadySignedIn",
        "AuthError",
        "CookieRequired",
        "InvalidCredentials",
        "InvalidPassword",
        "InvalidSessionData",
        "NotSignedIn",
        "SessionDataTooLarge",
        "StorageRefused",
        "StorageUnavailable",
        "Throttled",
    }
    assert meetable <= exported
    for name in meetable:
        assert issubclass(getattr(authdemo, name), AuthError)


def api_table() -> str:
    """The API reference's "what raises what" table (docs/reference/api.md)."""
    page = (ROOT / "docs" / "reference" / "api.md").read_text()
    match = re.search(r"\n## At a glance: what raises what\n(.*?)\n## ", page, re.S)
    assert match, "the API reference has no 'what raises what' table"
    return match.group(1)


def test_the_api_reference_names_every_exported_exception_in_its_table() -> None:
    section = api_table()
    exceptions = [
        name
        for name in authdemo.__all__
        if inspect.isclass(getattr(authdemo, name))
        and issubclass(getattr(authdemo, name), Exception)
    ]
    missing = [name for name in exceptions if f"`{name}`" not in section]
    assert not missing, f"exceptions the API reference's table does not name: {missing}"


def test_every_account_operation_documents_what_it_raises_with_exported_names() -> None:
    from authdemo import domain

    operations = [
        (name, method)
        for name, method in inspect.getmembers(authdemo.Accounts)
        if not name.startswith("_") and (inspect.iscoroutinefunction(method) or name == "open")
    ]
    assert len(operations) >= 12
    for name, method in operations:
        doc = inspect.getdoc(method) or ""
        assert doc, name
        if "username" in inspect.signature(method).parameters:  # a user it looks up
            assert "``UnknownUser``" in doc or name == "create_user", name
        for named in re.findall(r"``([A-Z]\w+)``", doc):
            found = getattr(domain, named, None)
            if inspect.isclass(found) and issubclass(found, Exception):
                assert named in authdemo.__all__, (name, named)


def test_the_accounts_guides_script_runs_as_written(
    migrated_template: Path, tmp_path: Path
) -> None:
    import asyncio

    from authdemo import Settings
    from authdemo.bootstrap import runtime
    from authdemo.domain import ClientInfo
    from authdemo.security import hash_token
    from tests.support.db import copy_database

    url = copy_database(migrated_template, tmp_path / "app.db")
    (tmp_path / "accounts.py").write_text(example("accounts.py"))

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "accounts.py"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "AUTHDEMO_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert run().splitlines() == ["carol 0 live session(s)", "ended 0 session(s) of carol"]

    async def sign_in_carol() -> None:
        async with runtime(Settings(database_url=url)) as rt:
            anonymous = hash_token(rt.service.new_token())
            await rt.service.login(anonymous, "carol", "a long passphrase", ClientInfo())

    asyncio.run(sign_in_carol())
    assert run().splitlines() == [
        "carol exists already",
        "carol 1 live session(s)",
        "ended 1 session(s) of carol",
    ]


def test_the_accounts_guides_script_passes_mypy_strict(tmp_path: Path, mypy_cache: Path) -> None:
    status, output = mypy_strict(example("accounts.py"), tmp_path, mypy_cache)
    assert status == 0, output
