"""Two-factor sign-in in Chromium, as a user does it: enrol by reading the key off the
page, sign out, sign in with the password and then a code, then with recovery codes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.browser.conftest import PASSWORD, create_users, shown
from tests.support.mfa import MFA_KEY_TEXT
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture
def mfa_server(db_url: str, tmp_path: Path, ui_name: str) -> Iterator[ServerProcess]:
    process = ServerProcess(
        db_url, tmp_path / "server.log", env={"AUTHDEMO_MFA_KEY": MFA_KEY_TEXT}, ui=ui_name
    ).start(meanwhile=lambda: create_users(db_url, "alice"))
    yield process
    process.stop()


def password_step(page: Any) -> None:
    shown(page, "form#login-form")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login-form button[type=submit]")
    shown(page, "form#mfa-form")


def code_step(page: Any, code: str) -> None:
    page.fill("form#mfa-form input[name=code]", code)
    page.click("form#mfa-form button[type=submit]")
    shown(page, "#greeting")


def sign_out(page: Any) -> None:
    page.click("button#logout")
    shown(page, "form#login-form")


def test_enrol_then_sign_in_with_a_code_and_with_recovery_codes(
    context: Any, mfa_server: ServerProcess
) -> None:
    page = context.new_page()
    page.goto(mfa_server.base_url)
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login-form button[type=submit]")
    shown(page, "#greeting")

    # Enrol: the password again, then the key as the page shows it, and a first code.
    page.fill("#mfa-password", PASSWORD)
    page.click("button#mfa-enable")
    shown(page, "img#mfa-qr")
    assert page.eval_on_selector("img#mfa-qr", "img => img.naturalWidth") > 0  # CSP let it in
    secret = page.inner_text("#mfa-secret").replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.fill("form#mfa-confirm input[name=code]", totp.now())
    page.click("form#mfa-confirm button[type=submit]")
    shown(page, "#mfa-recovery-codes li")
    codes = page.locator("#mfa-recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    page.click("button#mfa-recovery-done")
    assert "10 recovery codes left" in page.inner_text("#mfa-recovery-left")
    sign_out(page)

    # Password, then a code: the next step's code (the current one was used to enrol).
    password_step(page)
    assert page.locator("#greeting").count() == 0
    field = page.locator("form#mfa-form input[name=code]")
    assert field.get_attribute("autocomplete") == "one-time-code"
    assert field.get_attribute("inputmode") == "text"  # recovery codes have letters
    code_step(page, totp.at(time.time() + 30))
    sign_out(page)

    # Recovery codes, one at a time: the count goes down.
    for used, left in ((codes[0], 9), (codes[1], 8)):
        password_step(page)
        code_step(page, used)
        shown(page, "#mfa-recovery-left")
        assert f"{left} recovery codes left" in page.inner_text("#mfa-recovery-left")
        sign_out(page)

    # A spent recovery code does not work again.
    password_step(page)
    page.fill("form#mfa-form input[name=code]", codes[0])
    page.click("form#mfa-form button[type=submit]")
    shown(page, "#mfa-error")
    assert page.locator("#greeting").count() == 0


EMPTY_IDS = "() => [...document.querySelectorAll('[id=\"\"]')].map(e => e.outerHTML)"


def test_no_element_of_the_account_page_carries_an_empty_id(
    context: Any, mfa_server: ServerProcess
) -> None:
    page = context.new_page()
    page.goto(mfa_server.base_url)
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login-form button[type=submit]")
    shown(page, "#greeting")
    shown(page, "#mfa-password")
    assert page.evaluate(EMPTY_IDS) == []
    page.fill("#mfa-password", PASSWORD)
    page.click("button#mfa-enable")
    shown(page, "img#mfa-qr")  # the setup card
    assert page.evaluate(EMPTY_IDS) == []
