"""The knobs as a user sees them in Chromium: plain-http development on a host other than
localhost explains itself, and two apps on two ports with their own cookie names keep
their sign-ins apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS, create_users, require_chromium, shown
from tests.browser.test_sign_in import sign_in, ticket_redeemed
from tests.support.server import ServerProcess, start_all

pytestmark = pytest.mark.browser

DEVBOX = "devbox.test"
NOTICE = "#insecure-origin-notice"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """This module's Chromium resolves devbox.test to this machine, as a developer's
    /etc/hosts or LAN DNS would."""
    path = require_chromium()
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {DEVBOX} 127.0.0.1"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=args)
        yield browser
        browser.close()


def test_plain_http_on_another_host_shows_a_notice_and_logs_once(
    context: Any, server: ServerProcess
) -> None:
    page = context.new_page()
    page.goto(server.base_url)  # http://127.0.0.1:<port>: the browser keeps the cookie
    shown(page, "form#login-form")
    assert page.locator(NOTICE).count() == 0
    assert page.locator("#username").is_visible()

    devbox = f"http://{DEVBOX}:{server.port}"
    page.goto(devbox)
    shown(page, NOTICE)
    assert page.locator(NOTICE).is_visible()
    text = page.inner_text(NOTICE)
    assert text.startswith("Sign-in needs https on this address (or open it as localhost)")
    assert f"plain http from {DEVBOX}" in text
    assert page.locator("form#login-form button[type=submit]").is_disabled()
    assert page.locator("#cookie-warning, #login-error").count() == 0  # no second box
    assert context.cookies(devbox) == []  # what the notice is about: Chromium dropped it
    page.reload()
    shown(page, NOTICE)

    log = server.log()
    assert log.count(f"http://{DEVBOX}:{server.port} is plain http") == 1
    assert f"http://127.0.0.1:{server.port} is plain http" not in log


@pytest.fixture
def two_apps(
    db_url: str, tmp_path: Path, ui_name: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    shop = ServerProcess(
        db_url, tmp_path / "shop.log", env={"AUTHDEMO_COOKIE_NAME": "shop_session"}, ui=ui_name
    )
    admin = ServerProcess(
        db_url, tmp_path / "admin.log", env={"AUTHDEMO_COOKIE_NAME": "admin_session"}, ui=ui_name
    )
    start_all([shop, admin], meanwhile=lambda: create_users(db_url, "alice", "bob"))
    yield shop, admin
    shop.stop()
    admin.stop()


def greeting_after_reload(page: Any) -> str:
    page.reload()
    shown(page, "#greeting, form#login-form")
    return str(page.inner_text("#greeting")) if page.locator("#greeting").count() else "guest"


def test_two_apps_on_two_ports_with_two_cookie_names_stay_signed_in(
    context: Any, two_apps: tuple[ServerProcess, ServerProcess]
) -> None:
    shop, admin = two_apps
    shop_page = context.new_page()
    shop_page.goto(shop.base_url)
    sign_in(shop_page, "alice")
    shown(shop_page, "#greeting")
    ticket_redeemed(shop_page)

    admin_page = context.new_page()
    admin_page.goto(admin.base_url)
    sign_in(admin_page, "bob")
    shown(admin_page, "#greeting")
    ticket_redeemed(admin_page)

    # Cookies ignore ports: both go to both apps, each reads its own.
    names = {c["name"] for c in context.cookies(shop.base_url)}
    assert {"__Host-shop_session", "__Host-admin_session"} <= names
    assert "alice" in greeting_after_reload(shop_page)
    assert "bob" in greeting_after_reload(admin_page)
    assert "alice" in shop_page.inner_text("#greeting")
