"""A worker's garbage collection (``tests/support/collector.py``) and the apps a test
builds (``_apps_released``): no full collection while a test body runs, the collected
tests kept out of every collection, and every app freed when its test ends."""

from __future__ import annotations

from pathlib import Path

from tests.support.inner import run_module

CONFTEST = """
from tests.conftest import _apps_released  # noqa: F401

pytest_plugins = ["tests.support.collector"]
"""

MODULE = """
import gc

import pytest
from sanic import Sanic

from tests.support.collector import NEVER

DEFAULT = gc.get_threshold()
NAME = "kept_by_sanic_until_released"


@pytest.fixture
def around_the_body():
    assert gc.get_threshold() == DEFAULT  # setup: Python's own thresholds
    yield
    assert gc.get_threshold() == DEFAULT  # teardown: back again


def test_a_body_makes_no_full_collection(around_the_body):
    assert gc.get_threshold() == (DEFAULT[0], DEFAULT[1], NEVER)
    assert gc.get_freeze_count() > 0  # modules and collected tests: out of sight


def test_a_failing_body_gives_the_thresholds_back(around_the_body):
    raise RuntimeError("on purpose")


def test_builds_an_app():
    app = Sanic(NAME)
    app.route("/")(lambda request: None)
    app.router.finalize()
    app.router.get("/", "GET", None)  # the router's class-wide cache holds it too
    assert NAME in Sanic._app_registry


def test_the_app_of_the_test_before_is_gone():
    assert NAME not in Sanic._app_registry
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Sanic) and o.name == NAME]
"""


def test_full_collections_wait_for_the_body_and_apps_are_freed(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_it.py").write_text(MODULE)
    done = run_module(tmp_path, "pytest", "-n", "0", "-p", "no:cacheprovider", "-q")
    assert "1 failed, 3 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RuntimeError: on purpose" in done.stdout
    assert "error" not in done.stdout.rsplit("\n", 2)[-2]  # no teardown failed
