"""The account components and hooks as public API: the test apps use public names only
and pass ``mypy --strict``, a misspelt component fails it, and the demo is built from
exported names only (an app of the library like any other)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import authdemo
from tests.support.db import ROOT
from tests.test_public_api import mypy_cache, mypy_strict

__all__ = ["mypy_cache"]  # the fixture, shared with the public API's tests

APPS = ROOT / "tests" / "apps"
PUBLIC_MODULES = {"authdemo", "authdemo.idom", "authdemo.reactpy"}
ACCOUNT_NAMES = {
    "AccountPage",
    "ChangePassword",
    "SessionList",
    "TwoFactorSettings",
    "SessionControls",
    "TwoFactorControls",
    "MfaStatus",
    "Enrolment",
    "MfaStateConflict",
    "MfaUnavailable",
}
TEST_APPS = ["account_idom.py", "account_reactpy.py", "roles_idom.py", "roles_reactpy.py"]
"""The apps in ``tests/apps``, written with public names only."""
DEMO_MODULES = ("demo.py", "notepad.py")
"""The demo app's own modules (in ``authdemo/ui/components``)."""
UI_LIBRARY_NAMES = {"component", "html", "event", "use_state", "use_effect", "use_path"}
"""What ``ui/library.py`` passes through from the UI library itself (an app imports
these from ``idom`` or ``reactpy``; ``use_path`` is their ``use_location().pathname``):
not authdemo's API."""


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_the_account_names_are_exported_from_each_public_module(module: str) -> None:
    exported = set(importlib.import_module(module).__all__)
    assert exported >= ACCOUNT_NAMES


@pytest.mark.parametrize("app", TEST_APPS)
def test_the_test_apps_import_only_public_names(app: str) -> None:
    tree = ast.parse((APPS / app).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("authdemo"):
            assert node.module in PUBLIC_MODULES, node.module
            assert not [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            assert not [a.name for a in node.names if a.name.startswith("authdemo")]


@pytest.mark.parametrize("app", TEST_APPS)
def test_the_test_apps_pass_mypy_strict(tmp_path: Path, mypy_cache: Path, app: str) -> None:
    status, output = mypy_strict((APPS / app).read_text(), tmp_path, mypy_cache)
    assert status == 0, output


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("authdemo", "AcountPage"),
        ("authdemo.idom", "SessionLists"),
        ("authdemo.reactpy", "TwoFactorSetings"),
    ],
)
def test_a_misspelt_component_import_fails_mypy_strict(
    tmp_path: Path, mypy_cache: Path, module: str, name: str
) -> None:
    status, output = mypy_strict(f"from {module} import {name}\n", tmp_path, mypy_cache)
    assert status == 1
    assert f'Module "{module}" has no attribute "{name}"' in output


def test_the_demo_imports_no_private_name_of_the_library() -> None:
    folder = ROOT / "authdemo" / "ui" / "components"
    own = {Path(m).stem for m in DEMO_MODULES}
    for module in DEMO_MODULES:
        tree = ast.parse((folder / module).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            names = {a.name for a in node.names}
            if node.level == 1 and node.module in own:
                continue  # the demo's own modules
            if node.level == 2 and node.module == "library":
                assert names <= UI_LIBRARY_NAMES, (module, names - UI_LIBRARY_NAMES)
                continue
            if node.level == 0 and not (node.module or "").startswith("authdemo"):
                continue  # the standard library
            private = names - set(authdemo.__all__)
            assert not private, (
                f"{module} imports {sorted(private)}, which authdemo does not export"
            )


def test_the_readmes_account_example_passes_mypy_strict(tmp_path: Path, mypy_cache: Path) -> None:
    from tests.packaging.test_wheel import readme_example

    status, output = mypy_strict(readme_example("account.py"), tmp_path, mypy_cache)
    assert status == 0, output
