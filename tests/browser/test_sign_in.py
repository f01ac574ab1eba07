"""The whole flow in Chromium: no reloads, no JavaScript of ours, HttpOnly cookie only."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import PASSWORD, is_connected_message, shown
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

COOKIE = "__Host-authdemo_session"


def session_cookie(context: Any) -> dict[str, Any]:
    (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
    return dict(cookie)


def sign_in(page: Any, username: str = "alice", password: str = PASSWORD) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form#login-form button[type=submit]")


def reconnected(page: Any) -> Any:
    """Waits (as a context manager) for the UI library's client to open its websocket
    again."""
    return page.expect_console_message(
        lambda message: is_connected_message(message.text), timeout=30_000
    )


def ticket_redeemed(page: Any) -> None:
    page.wait_for_function("() => !document.querySelector('img[src^=\"/_auth/ticket/\"]')")


def test_a_wrong_password_shows_the_login_error(context: Any, server: ServerProcess) -> None:
    page = context.new_page()
    page.goto(server.base_url)
    sign_in(page, password="not the password")
    shown(page, "#login-error")
    assert page.inner_text("#login-error") == "Incorrect username or password."
    assert page.locator("#greeting").count() == 0


def test_sign_in_reload_second_tab_and_sign_out(context: Any, server: ServerProcess) -> None:
    page = context.new_page()
    page.goto(server.base_url)
    shown(page, "form#login-form")
    cookie = session_cookie(context)
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # invisible to scripts

    sign_in(page)
    shown(page, "#greeting")
    assert "alice" in page.inner_text("#greeting")
    # The ticket image handed the browser a brand-new cookie (rotation at login).
    ticket_redeemed(page)
    assert session_cookie(context)["value"] != cookie["value"]

    page.reload()
    shown(page, "#greeting")

    second = context.new_page()
    second.goto(server.base_url)
    shown(second, "#greeting")
    assert "alice" in second.inner_text("#greeting")

    page.click("button#logout")
    shown(page, "form#login-form")
    page.reload()
    shown(page, "form#login-form")


def test_the_old_cookie_replayed_elsewhere_is_signed_out(
    browser: Any, context: Any, server: ServerProcess
) -> None:
    page = context.new_page()
    page.goto(server.base_url)
    shown(page, "form#login-form")
    before = session_cookie(context)
    sign_in(page)
    shown(page, "#greeting")
    ticket_redeemed(page)

    replay = browser.new_context()
    try:
        keys = ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite")
        replay.add_cookies([{k: before[k] for k in keys}])
        other = replay.new_page()
        other.goto(server.base_url)
        shown(other, "form#login-form")
        assert other.locator("#greeting").count() == 0
    finally:
        replay.close()


def test_an_open_tab_reconnects_signed_in_after_a_server_restart(
    context: Any, server: ServerProcess
) -> None:
    page = context.new_page()
    page.goto(server.base_url)
    sign_in(page)
    shown(page, "#greeting")
    ticket_redeemed(page)

    with reconnected(page):
        server.stop()
        server.start()
    shown(page, "#greeting")
    assert "alice" in page.inner_text("#greeting")


def test_a_websocket_without_a_cookie_asks_for_a_reload_and_then_signs_in(
    context: Any, server: ServerProcess
) -> None:
    # Issue 11, defect 7: with no cookie there is nothing to bind the sign-in's ticket
    # to (any browser could redeem it), so the form asks for the reload that gives one.
    page = context.new_page()
    page.goto(server.base_url)
    shown(page, "form#login-form")
    context.clear_cookies()  # the cookie is gone before the websocket reconnects
    with reconnected(page):
        server.stop()
        server.start()
    shown(page, "form#login-form")
    # The form on screen may still be the one rendered before the restart until the new
    # layout arrives, and a submit to it is dropped (ReactPy's handler ids belong to one
    # layout): press again when nothing came of it, as a person would.
    for attempt in range(3):
        sign_in(page)
        try:
            shown(page, "#login-error", timeout=5_000)
            break
        except PlaywrightTimeout:
            assert attempt < 2, "the form never answered"
    assert "Reload the page" in page.inner_text("#login-error")
    assert page.query_selector("#greeting") is None
    page.reload()
    shown(page, "form#login-form")
    sign_in(page)
    shown(page, "#greeting")
    ticket_redeemed(page)
    page.reload()
    shown(page, "#greeting")
