"""Two-factor sign-in over the websocket: enrolment in the signed-in view, and a second
step that never resolves as signed in until the code is accepted."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pyotp
import pytest

from authdemo.config import Settings
from authdemo.service import AuthService
from authdemo.ui.components.two_factor import WRONG_FIRST_CODE
from authdemo.ui.connection.state import SIGNED_OUT_REASONS
from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient, text_of, walk
from tests.support.live import Live
from tests.support.mfa import MFA_KEY, code_at
from tests.web.test_login_flow import cookie, first_visit, sign_in

Creds = tuple[str, str]
PROTECTED = ("greeting", "logout", "sessions", "note", "mfa", "change-password")


@pytest.fixture
def settings(db_url: str, ui_name: str) -> Settings:
    return Settings(database_url=db_url, mfa_keys=(MFA_KEY,), ui=ui_name)  # type: ignore[arg-type]


class Watching(IdomClient):
    """Remembers every layout patch the server sent, to check none held a protected element."""

    patches: list[str]

    def apply(self, message: dict[str, Any]) -> None:
        self.__dict__.setdefault("patches", []).append(json.dumps(message))
        super().apply(message)

    def ids_ever_sent(self) -> set[str]:
        found: set[str] = set()
        for raw in self.__dict__.get("patches", []):
            for node in walk(json.loads(raw)["model"]):
                if isinstance(node, dict) and "id" in node.get("attributes", {}):
                    found.add(node["attributes"]["id"])
        return found


async def enrol_in_the_view(client: IdomClient, clock: FakeClock, password: str) -> list[str]:
    await client.wait_for_id("mfa-start")  # once the view read the 2FA status
    await client.submit("mfa-start", {"password": password})
    qr = await client.wait_for_id("mfa-qr")
    assert qr["attributes"]["src"].startswith("data:image/png;base64,")
    assert len(qr["attributes"]["src"]) < 1500
    secret = (client.text("mfa-secret") or "").replace(" ", "")
    await client.submit("mfa-confirm", {"code": pyotp.TOTP(secret).at(clock.now())})
    await client.wait_for_id("mfa-recovery-codes")
    codes = [
        text_of(li)
        for li in walk(client.find("mfa-recovery-codes"))
        if isinstance(li, dict) and li.get("tagName") == "li"
    ]
    client.secret = secret  # type: ignore[attr-defined]
    return codes


async def test_a_wrong_first_code_at_enrolment_does_not_speak_of_recovery_codes(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    """None exist yet: the message asks for the app's current code only."""
    client, _ = await sign_in(live, alice)
    await client.wait_for_id("mfa-start")
    await client.submit("mfa-start", {"password": alice[1]})
    secret = (await client.wait_for_id("mfa-secret"), client.text("mfa-secret") or "")[1]
    wrong = pyotp.TOTP(secret.replace(" ", "")).at(app_clock.now() + timedelta(minutes=5))
    await client.submit("mfa-confirm", {"code": wrong})
    await client.wait_for_id("mfa-settings-error")
    assert client.text("mfa-settings-error") == WRONG_FIRST_CODE
    assert client.find("mfa-recovery-codes") is None
    await client.close()


async def test_enrolling_shows_a_qr_code_and_ten_codes_rotates_the_cookie_and_ends_other_tabs(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    other, _ = await sign_in(live, alice)
    client, before = await sign_in(live, alice)
    codes = await enrol_in_the_view(client, app_clock, alice[1])
    assert len(codes) == 10 and len(set(codes)) == 10
    await other.wait_for_id("login-form")  # the other tab ended, live
    assert other.text("signed-out-reason") == SIGNED_OUT_REASONS["mfa_enabled"]
    assert await client.tickets_fetched() == [303, 303]
    assert client.token() not in (None, before)
    assert client.find("greeting") is not None  # this tab goes on
    await client.click("mfa-recovery-done")
    left = await client.wait_for_id("mfa-recovery-left")
    assert client.find("mfa-recovery-used") is None  # signed in with the password alone
    assert "10 recovery codes left" in (client.text("mfa-recovery-left") or ""), left
    await client.close()
    await other.close()


async def enrolled_alice(live: Live, alice: Creds, clock: FakeClock) -> tuple[str, list[str]]:
    client, _ = await sign_in(live, alice)
    codes = await enrol_in_the_view(client, clock, alice[1])
    secret: str = client.secret  # type: ignore[attr-defined]
    await client.close()
    clock.advance(timedelta(seconds=30))  # the enrolment's step is used up
    return secret, codes


async def sign_in_with_code(
    live: Live, alice: Creds, clock: FakeClock, secret: str
) -> tuple[IdomClient, str]:
    """A tab signed in with password and code (of a new step), and its cookie."""
    clock.advance(timedelta(seconds=30))
    token = await first_visit(live)
    client = await IdomClient.connect(live.base_url, cookie=cookie(token))
    await client.login(*alice)
    await client.wait_for_id("mfa-form")
    await client.submit("mfa-form", {"code": code_at(secret, clock.now())})
    await client.wait_for_id("greeting")
    assert await client.tickets_fetched() == [303]
    new = client.token()
    assert new is not None and new != token
    return client, new


async def test_disabling_says_so_rotates_the_cookie_and_ends_other_tabs(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    secret, _ = await enrolled_alice(live, alice, app_clock)
    other, _ = await sign_in_with_code(live, alice, app_clock, secret)
    client, before = await sign_in_with_code(live, alice, app_clock, secret)
    # Another view of the acting tab's own session (a second tab on the same cookie).
    same = await IdomClient.connect(live.base_url, cookie=cookie(before))
    await same.wait_for_id("greeting")
    await client.wait_for_id("mfa-disable-form")
    app_clock.advance(timedelta(seconds=30))
    await client.submit(
        "mfa-disable-form", {"password": alice[1], "code": code_at(secret, app_clock.now())}
    )
    await client.wait_for_id("mfa-off")
    assert "Your other sessions have been signed out." in (client.text("mfa-off") or "")
    await other.wait_for_id("login-form")  # the other tab ended, live
    await same.wait_for_id("login-form")  # and so did the other view of this session
    assert other.text("signed-out-reason") == SIGNED_OUT_REASONS["mfa_disabled"]
    assert same.text("signed-out-reason") == SIGNED_OUT_REASONS["mfa_disabled"]
    assert await client.tickets_fetched() == [303, 303]
    assert client.token() not in (None, before)
    assert client.find("greeting") is not None  # this tab goes on
    assert client.find("mfa-start") is not None  # with two-factor sign-in off
    for tab in (client, other, same):
        await tab.close()


async def test_a_pending_second_step_never_resolves_as_signed_in(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    secret, _ = await enrolled_alice(live, alice, app_clock)
    service: AuthService = live.app.ctx.service
    live_before = {s.id for s, _ in await service.live_sessions("alice")}
    token = await first_visit(live)
    client = await Watching.connect(live.base_url, cookie=cookie(token))
    await client.login(*alice)
    form = await client.wait_for_id("mfa-form")
    code = next(
        n
        for n in walk(form)
        if isinstance(n, dict) and n.get("attributes", {}).get("name") == "code"
    )
    assert code["attributes"]["autocomplete"] == "one-time-code"
    assert (
        code["attributes"]["inputMode" if "inputMode" in code["attributes"] else "inputmode"]
        == "text"  # recovery codes have letters: a numeric keypad would hide them
    )
    # Nothing signed in: no protected element was ever sent, no ticket, same cookie,
    # no new session of alice anywhere.
    assert not client.ids_ever_sent() & set(PROTECTED)
    assert client.ticket_src() is None and client.token() == token
    assert {s.id for s, _ in await service.live_sessions("alice")} == live_before
    await client.submit(
        "mfa-form", {"code": "000000" if code_at(secret, app_clock.now()) != "000000" else "111111"}
    )
    await client.wait_for_id("mfa-error")
    assert not client.ids_ever_sent() & set(PROTECTED)
    await client.submit("mfa-form", {"code": code_at(secret, app_clock.now())})
    await client.wait_for_id("greeting")
    assert await client.tickets_fetched() == [303]
    assert client.token() != token
    await client.close()


async def test_a_second_step_expires_back_to_the_password(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    secret, _ = await enrolled_alice(live, alice, app_clock)
    async with await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live))) as c:
        await c.login(*alice)
        await c.wait_for_id("mfa-form")
        app_clock.advance(timedelta(minutes=5))
        await c.submit("mfa-form", {"code": code_at(secret, app_clock.now())})
        await c.wait_for_id("login-error")
        assert "took too long" in (c.text("login-error") or "")
        assert c.find("greeting") is None


async def test_five_wrong_codes_drop_the_pending_sign_in(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    secret, _ = await enrolled_alice(live, alice, app_clock)
    right = code_at(secret, app_clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    async with await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live))) as c:
        await c.login(*alice)
        for _ in range(4):
            await c.wait_for_id("mfa-form")
            await c.submit("mfa-form", {"code": wrong})
            await c.wait_for(lambda c: c.find("mfa-error") is not None)
        await c.submit("mfa-form", {"code": wrong})
        await c.wait_for_id("login-error")
        assert "Too many attempts" in (c.text("login-error") or "")
        await c.login(*alice)
        await c.wait_for_id("mfa-form")
        await c.submit("mfa-form", {"code": right})
        await c.wait_for(lambda c: "Too many attempts" in (c.text("login-error") or ""))
        assert c.find("greeting") is None


async def test_a_recovery_code_signs_in_once_and_the_view_counts_down(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    _, codes = await enrolled_alice(live, alice, app_clock)
    for used, left in ((codes[0], 9), (codes[1].lower(), 8)):
        async with await IdomClient.connect(
            live.base_url, cookie=cookie(await first_visit(live))
        ) as c:
            await c.login(*alice)
            await c.wait_for_id("mfa-form")
            await c.submit("mfa-form", {"code": used})
            await c.wait_for_id("mfa-recovery-left")
            assert f"{left} recovery codes left" in (c.text("mfa-recovery-left") or "")
            notice = c.text("mfa-recovery-used") or ""
            assert f"cannot be used again, and {left} are left" in notice
            # At the top of the signed-in view, where it is seen: before every card.
            order = [n.get("attributes", {}).get("id") for n in walk(c.model)]
            for below in ("account-sessions", "change-password", "mfa"):
                assert order.index("mfa-recovery-used") < order.index(below), below
    async with await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live))) as c:
        await c.login(*alice)
        await c.wait_for_id("mfa-form")
        await c.submit("mfa-form", {"code": codes[0]})
        await c.wait_for_id("mfa-error")
        assert c.find("greeting") is None
