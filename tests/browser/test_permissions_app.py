"""An app's own guarded action and the admin page's recent-sign-in prompt, in Chromium
(``tests/apps/roles_<ui>.py``, served as an app author serves theirs), on IDOM and
ReactPy: a ``@requires`` button clicked without the permission changes nothing and
says so; an admin change after the recent-sign-in window asks for the password first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.browser.conftest import create_users, shown
from tests.browser.test_account_page import public_app
from tests.browser.test_sign_in import sign_in
from tests.support.db import in_thread

pytestmark = pytest.mark.browser


@pytest.fixture
def roles_app(db_url: str, tmp_path: Path, ui_name: str) -> Iterator[str]:
    create_users(db_url, "alice", "bob", "carol")

    async def make_alice_admin() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            await rt.service.grant_role("alice", "admin")

    in_thread(lambda: asyncio.run(make_alice_admin()))
    with public_app(db_url, tmp_path / "app.log", ui_name, app="roles") as base_url:
        yield base_url


def test_a_guarded_click_without_the_permission_changes_nothing_and_says_so(
    context: Any, roles_app: str
) -> None:
    page = context.new_page()
    page.goto(roles_app)
    sign_in(page, "bob")
    shown(page, "#can-write", text="no")
    page.click("#write")
    shown(page, "#permission-refused")
    assert "do not have permission" in page.inner_text("#permission-refused")
    assert page.inner_text("#written") == "0"


def test_an_admin_change_after_the_recent_sign_in_window_asks_for_the_password_first(
    context: Any, roles_app: str
) -> None:
    page = context.new_page()
    page.goto(roles_app + "/admin")
    sign_in(page, "alice")
    shown(page, "#admin-users li[data-username=carol]")
    time.sleep(3.5)  # the app's window is 3 s
    page.click("#admin-users li[data-username=carol] button.disable-user")
    shown(page, "form#reauth-form input[name=password]")
    assert page.locator("#admin-message").count() == 0
    page.fill("form#reauth-form input[name=password]", "correct horse")
    page.click("form#reauth-form button[type=submit]")
    shown(page, "#admin-message", text="Disabled carol")
    shown(page, "#admin-users li[data-username=carol] button.enable-user")
