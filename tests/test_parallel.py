"""The suite runs on pytest-xdist (``-n auto``): the modules that must stay whole on one
worker do, under the installed pytest and xdist; every other test is a unit of its own."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import work_unit
from tests.support.inner import run_module


def test_browser_and_costly_modules_are_one_unit_and_other_tests_their_own() -> None:
    browser = "tests/browser/test_sign_in.py"
    assert work_unit(f"{browser}::test_a[idom-sqlite]") == browser
    assert work_unit(f"{browser}::test_b[reactpy-postgresql]") == browser
    wheel = "tests/packaging/test_wheel.py"
    assert work_unit(f"{wheel}::test_the_wheel") == wheel
    web = "tests/web/test_login_flow.py::test_x[idom-sqlite]"
    assert work_unit(web) == web


MODULE = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(8))
def test_one(n):
    with open(Path(__file__).parent / "ran.txt", "a") as out:
        out.write(f"{{__name__}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")
"""


def test_under_xdist_a_browser_module_runs_whole_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_xdist_make_scheduler  # noqa: F401\n"
    )
    for folder in ("tests/browser", "tests/web"):
        (tmp_path / folder).mkdir(parents=True)
    for module in ("tests/browser/test_b1.py", "tests/browser/test_b2.py", "tests/web/test_w.py"):
        (tmp_path / module).write_text(MODULE.format())
    done = run_module(tmp_path, "pytest", "-n", "2", "-q", "tests")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "24 passed" in done.stdout
    workers: dict[str, set[str]] = {}
    for line in (tmp_path / "tests/browser/ran.txt").read_text().splitlines():
        module, worker = line.split()
        workers.setdefault(module, set()).add(worker)
    assert {module: len(seen) for module, seen in workers.items()} == {"test_b1": 1, "test_b2": 1}
    assert len((tmp_path / "tests/web/ran.txt").read_text().splitlines()) == 8
