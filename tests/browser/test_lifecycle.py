"""Session lifecycle in Chromium: live sign-outs across tabs and browsers, the session
list, password changes, throttling, the command line, and the page's CSP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser.conftest import CONNECTED, PASSWORD, shown
from tests.browser.test_sign_in import session_cookie, sign_in, ticket_redeemed
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

LIVE_TIMEOUT = 2_000
"""How long (ms) another open tab may take to show a sign-out that happened elsewhere."""
NEW_PASSWORD = "a brand new password"


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[[], Any]]:
    """Makes further browser contexts (separate cookie jars: other devices)."""
    made: list[Any] = []

    def make() -> Any:
        context = browser.new_context()
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def open_page(context: Any, server: ServerProcess) -> Any:
    page = context.new_page()
    page.goto(server.base_url)
    return page


def signed_in_page(context: Any, server: ServerProcess, username: str = "alice") -> Any:
    """A page of ``context`` signed in as ``username``, its cookie already rotated."""
    page = open_page(context, server)
    shown(page, "form#login-form")
    sign_in(page, username)
    shown(page, "#greeting")
    ticket_redeemed(page)
    return page


def mark(page: Any) -> None:
    """Tags the current document; a reload or navigation would lose the tag."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__marker") == 1
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def wait_for_count(page: Any, selector: str, count: int) -> None:
    page.wait_for_function(
        "([selector, count]) => document.querySelectorAll(selector).length === count",
        arg=[selector, count],
    )


def test_signing_out_in_one_tab_signs_out_another_tab_without_a_reload(
    context: Any, server: ServerProcess
) -> None:
    first = signed_in_page(context, server)
    second = open_page(context, server)
    shown(second, "#greeting")
    mark(second)

    first.click("button#logout")
    shown(first, "form#login-form")
    shown(second, "form#login-form", timeout=LIVE_TIMEOUT)
    assert second.locator("#greeting").count() == 0
    assert_not_reloaded(second)


def test_signing_out_other_sessions_signs_out_other_browsers_live_and_keeps_this_one(
    context: Any, new_context: Callable[[], Any], server: ServerProcess
) -> None:
    here = signed_in_page(context, server)
    elsewhere = signed_in_page(new_context(), server)
    mark(elsewhere)

    here.click("button#logout-others")
    shown(here, "#logout-others-done")
    shown(elsewhere, "form#login-form", timeout=LIVE_TIMEOUT)
    assert_not_reloaded(elsewhere)

    assert "alice" in here.inner_text("#greeting")
    wait_for_count(here, "#sessions li", 1)
    assert here.locator("#sessions li .badge").inner_text() == "this device"


def test_the_session_list_shows_one_item_per_live_session(
    context: Any, new_context: Callable[[], Any], server: ServerProcess
) -> None:
    signed_in_page(context, server)
    page = signed_in_page(new_context(), server)

    wait_for_count(page, "#sessions li", 2)
    badges = page.locator("#sessions li .badge")
    assert badges.count() == 1
    assert badges.inner_text() == "this device"


def test_changing_the_password_signs_out_other_sessions_and_rotates_this_cookie(
    context: Any, new_context: Callable[[], Any], server: ServerProcess
) -> None:
    page = signed_in_page(context, server)
    elsewhere = signed_in_page(new_context(), server)
    mark(elsewhere)
    before = session_cookie(context)

    page.fill("input[name=current_password]", "not the password")
    page.fill("input[name=new_password]", NEW_PASSWORD)
    page.click("form#change-password button[type=submit]")
    shown(page, "#change-password-error")
    assert page.locator("#change-password-ok").count() == 0
    assert elsewhere.locator("#greeting").count() == 1

    with page.expect_response(lambda response: "/_auth/ticket/" in response.url) as ticket:
        page.fill("input[name=current_password]", PASSWORD)
        page.fill("input[name=new_password]", NEW_PASSWORD)
        page.click("form#change-password button[type=submit]")
        shown(page, "#change-password-ok")
    assert ticket.value.status == 303  # sets the cookie, sends the image on to /_auth/held
    assert page.locator("#change-password-error").count() == 0

    shown(elsewhere, "form#login-form", timeout=LIVE_TIMEOUT)
    assert_not_reloaded(elsewhere)

    ticket_redeemed(page)
    assert session_cookie(context)["value"] != before["value"]
    page.reload()
    shown(page, "#greeting")

    fresh = open_page(new_context(), server)
    sign_in(fresh, "alice", PASSWORD)
    shown(fresh, "#login-error")
    assert fresh.locator("#greeting").count() == 0
    sign_in(fresh, "alice", NEW_PASSWORD)
    shown(fresh, "#greeting")
    ticket_redeemed(fresh)  # no request left in flight when the server stops


def test_a_sixth_attempt_after_five_failures_is_refused_with_a_wait(
    context: Any, server: ServerProcess
) -> None:
    page = open_page(context, server)
    shown(page, "form#login-form")
    for _ in range(5):
        sign_in(page, "bob", "not the password")
        # A failed attempt renders a fresh, empty password field and re-enables the button.
        page.wait_for_function(
            """() => document.querySelector('input[name=password]').value === ''
                && !document.querySelector('form#login-form button[type=submit]').disabled
                && document.querySelector('#login-error') !== null"""
        )
        assert "Too many attempts" not in page.inner_text("#login-error")

    # Right password this time: refused all the same while the account is blocked.
    sign_in(page, "bob", PASSWORD)
    page.wait_for_function(
        "() => (document.querySelector('#login-error')?.textContent ?? '')"
        ".includes('Too many attempts')"
    )
    message = page.inner_text("#login-error")
    assert "Too many attempts" in message
    assert "try again in" in message
    assert page.locator("#greeting").count() == 0


def test_revoking_sessions_from_the_command_line_signs_out_an_open_tab_live(
    context: Any, server: ServerProcess
) -> None:
    page = signed_in_page(context, server)
    mark(page)

    result = subprocess.run(
        [sys.executable, "-m", "authdemo", "revoke-sessions", "alice"],
        env={**os.environ, "AUTHDEMO_DATABASE_URL": server.db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Revoked 1 session" in result.stdout

    shown(page, "form#login-form", timeout=LIVE_TIMEOUT)
    assert page.locator("#greeting").count() == 0
    assert_not_reloaded(page)


def test_the_page_runs_under_a_strict_csp_without_violations(
    context: Any, server: ServerProcess
) -> None:
    page = context.new_page()
    messages: list[str] = []
    errors: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Test instrumentation only (injected over CDP, so the page's CSP does not apply).
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )

    connected = CONNECTED[server.ui]  # the UI library's client, under the same CSP
    with page.expect_console_message(lambda message: connected in message.text):
        response = page.goto(server.base_url)
    assert response is not None
    csp = response.headers.get("content-security-policy")
    assert csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp

    shown(page, "form#login-form")
    sign_in(page)
    shown(page, "#greeting")
    ticket_redeemed(page)
    page.click("button#logout")
    shown(page, "form#login-form")

    assert connected in messages
    assert not [m for m in messages if "Content Security Policy" in m], messages
    assert page.evaluate("window.__violations") == []
    assert errors == []
