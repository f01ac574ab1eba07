"""The admin page in Chromium, on IDOM and ReactPy, with two hosts on one database (the
browsers on different hosts, the operator on the command line): rights granted and
revoked with ``authdemo role`` show on an open ``/admin`` within a second, and an
admin disabling a user signs that user's open page out within a second, saying why."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.browser.conftest import create_users, shown
from tests.browser.test_sign_in import sign_in
from tests.support.db import in_thread
from tests.support.server import ServerProcess, start_all

pytestmark = pytest.mark.browser


def authdemo(db_url: str, *args: str) -> str:
    """The ``authdemo`` command, as an operator runs it; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "authdemo", *args],
        env={**os.environ, "AUTHDEMO_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def two_hosts(db_url: str, tmp_path: Path, ui_name: str) -> Iterator[list[ServerProcess]]:
    async def make_alice_admin() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            await rt.service.grant_role("alice", "admin")

    def accounts() -> None:
        create_users(db_url, "alice", "bob", "carol")
        in_thread(lambda: asyncio.run(make_alice_admin()))

    hosts = [
        ServerProcess(db_url, tmp_path / f"host-{name}.log", ui=ui_name) for name in ("a", "b")
    ]
    start_all(hosts, meanwhile=accounts)
    yield hosts
    for host in hosts:
        host.stop()
        print(f"--- {host.base_url} log, last lines:\n{host.log()[-3000:]}")  # shown on failure


def open_admin(context: Any, host: ServerProcess, username: str) -> Any:
    page = context.new_page()
    page.goto(host.base_url + "/admin")
    sign_in(page, username)
    try:
        shown(page, "#admin-page, #forbidden")
    except Exception:
        print(f"--- {username}'s page, never signed in:\n{page.content()[-4000:]}")
        raise
    return page


def test_bobs_open_admin_page_follows_role_grant_and_revoke_within_a_second(
    context: Any, two_hosts: list[ServerProcess], db_url: str
) -> None:
    _, host_b = two_hosts
    page = open_admin(context, host_b, "bob")
    assert page.locator("#forbidden").count() == 1

    assert "Granted 'admin' to 'bob'." in authdemo(db_url, "role", "grant", "bob", "admin")
    shown(page, "#admin-users li[data-username=carol]", timeout=1_000)
    assert page.locator("#forbidden").count() == 0

    assert "Revoked 'admin' from 'bob'." in authdemo(db_url, "role", "revoke", "bob", "admin")
    shown(page, "#forbidden", timeout=1_000)
    assert page.locator("#admin-users").count() == 0


def test_alice_disables_carol_and_carols_open_page_signs_out_within_a_second(
    context: Any, browser: Any, two_hosts: list[ServerProcess]
) -> None:
    host_a, host_b = two_hosts
    carols_browser = browser.new_context()
    try:
        carol = carols_browser.new_page()
        carol.goto(host_b.base_url)
        sign_in(carol, "carol")
        shown(carol, "#greeting")
        alice = open_admin(context, host_a, "alice")
        alice.click("#admin-users li[data-username=carol] button.disable-user")
        shown(carol, "#signed-out-reason", timeout=1_000)
        assert "disabled" in carol.inner_text("#signed-out-reason")
        shown(alice, "#admin-users li[data-username=carol] button.enable-user")
        shown(alice, "#admin-events li", text="user_disabled carol")
    finally:
        carols_browser.close()
