"""The demo's notepad: session data that persists across reloads, restarts and tabs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import shown
from tests.browser.test_sign_in import reconnected, sign_in, ticket_redeemed
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser


def signed_in_page(context: Any, server: ServerProcess) -> Any:
    page = context.new_page()
    page.goto(server.base_url)
    sign_in(page)
    shown(page, "#note")
    ticket_redeemed(page)
    return page


def test_the_note_is_saved_as_you_type_and_shows_in_other_tabs(
    context: Any, server: ServerProcess
) -> None:
    page = signed_in_page(context, server)
    other = context.new_page()
    other.goto(server.base_url)
    shown(other, "#note")
    page.click("#note")
    page.keyboard.type("buy milk, then eggs", delay=15)
    shown(page, "#note-saved")
    other.wait_for_function(
        "() => document.querySelector('#note').value === 'buy milk, then eggs'", timeout=2_000
    )
    assert page.input_value("#note") == "buy milk, then eggs"  # nothing lost while typing


def test_the_note_survives_a_reload_and_a_server_restart(
    context: Any, server: ServerProcess
) -> None:
    page = signed_in_page(context, server)
    page.fill("#note", "remember me")
    shown(page, "#note-saved")
    page.reload()
    shown(page, "#note")
    assert page.input_value("#note") == "remember me"
    with reconnected(page):
        server.stop()
        server.start()
    shown(page, "#note")
    page.wait_for_function("() => document.querySelector('#note').value === 'remember me'")


def test_signing_out_clears_the_note(context: Any, server: ServerProcess) -> None:
    page = signed_in_page(context, server)
    page.fill("#note", "private")
    shown(page, "#note-saved")
    page.click("button#logout")
    shown(page, "form#login-form")
    sign_in(page)  # alice again: a new session, and the anonymous one before it was empty
    shown(page, "#note")
    assert page.input_value("#note") == ""
