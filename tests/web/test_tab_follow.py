"""Tabs of one browser follow a sign-in made in another, proven by the browser's cookie.

Each ``IdomClient`` is one tab; tabs of one browser start from the same cookie, and the
test plays the browser: it loads a tab's follow image with the cookie the browser holds
now (the last one a ticket handed out).
"""

from __future__ import annotations

import asyncio
import time

from authdemo.ui.connection.state import SIGNED_OUT_REASONS
from tests.support.idom_client import IdomClient
from tests.support.live import Live
from tests.web.test_login_flow import Creds, cookie, first_visit
from tests.web.test_session_data import count_rows

NEW_PASSWORD = "brand new pw"


async def tabs(live: Live, token: str, count: int) -> list[IdomClient]:
    """``count`` tabs of the browser holding ``token``; the test fetches their images."""
    return [
        await IdomClient.connect(live.base_url, cookie=cookie(token), follow_tickets=False)
        for _ in range(count)
    ]


async def signed_in_in(tab: IdomClient, live: Live, creds: Creds) -> str:
    """Sign in in ``tab`` and redeem its ticket as the browser does; the new cookie."""
    await tab.login(*creds)
    await tab.wait_for(lambda c: c.ticket_src() is not None)
    response = await tab.redeem(live.base_url)
    assert response.status_code == 303
    await tab.wait_for_id("greeting")
    assert tab.cookie is not None
    return tab.cookie


async def live_sessions(live: Live, username: str = "alice") -> int:
    return len(await live.app.ctx.service.live_sessions(username))


async def test_a_tab_on_the_form_follows_a_sign_in_made_in_another_within_a_second(
    live: Live, alice: Creds
) -> None:
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    browser = await signed_in_in(one, live, alice)
    started = time.monotonic()
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    assert (await two.fetch_follow(browser)).status_code == 200
    await two.wait_for_id("greeting", timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert "alice" in (two.text("greeting") or "")
    await two.wait_for(lambda c: c.follow_src() is None)
    assert await live_sessions(live) == 1
    await one.close()
    await two.close()


async def test_a_copy_of_the_pre_sign_in_cookie_outside_the_browser_stays_signed_out(
    live: Live, alice: Creds
) -> None:
    token = await first_visit(live)
    one, two, copy = await tabs(live, token, 3)
    browser = await signed_in_in(one, live, alice)
    await copy.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    # What the copy can do: load its own image with the cookie it holds (retired) ...
    assert (await copy.fetch_follow(cookie(token))).status_code == 200
    # ... or with a signed-in cookie of its own (another account): neither joins it.
    await live.app.ctx.service.create_user("mallory", "mallory's password")
    mallory = await first_visit(live)
    (elsewhere,) = await tabs(live, mallory, 1)
    mallory_cookie = await signed_in_in(elsewhere, live, ("mallory", "mallory's password"))
    assert (await copy.fetch_follow(mallory_cookie)).status_code == 200
    await copy.wait_for(lambda c: c.follow_src() is None, timeout=2.0)  # answered
    # The browser's own tab follows meanwhile.
    await two.wait_for(lambda c: c.follow_src() is not None)
    assert (await two.fetch_follow(browser)).status_code == 200
    await two.wait_for_id("greeting", timeout=1.0)
    await asyncio.sleep(0.3)
    while True:  # take whatever the copy was sent
        try:
            await copy.receive(timeout=0.2)
        except TimeoutError:
            break
    assert copy.find("login-form") is not None and copy.find("greeting") is None
    for tab in (one, two, copy, elsewhere):
        await tab.close()


async def test_a_cross_site_follow_is_refused_and_changes_nothing(live: Live, alice: Creds) -> None:
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    browser = await signed_in_in(one, live, alice)
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    for site in ("cross-site", "same-site"):
        refused = await two.fetch_follow(browser, site=site)
        assert refused.status_code == 403
        assert refused.headers["cache-control"] == "no-store"
    # Not answered: the tab still asks, still on the form.
    await asyncio.sleep(0.3)
    assert two.follow_src() is not None and two.find("login-form") is not None
    assert (await two.fetch_follow(browser)).status_code == 200
    await two.wait_for_id("greeting", timeout=1.0)
    await one.close()
    await two.close()


async def test_an_unknown_or_malformed_nonce_changes_no_view(live: Live, alice: Creds) -> None:
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    browser = await signed_in_in(one, live, alice)
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    unknown = await two.fetch_follow(browser, src="/_auth/follow/" + "A" * 32)
    assert unknown.status_code == 200 and unknown.headers["content-type"] == "image/gif"
    malformed = await two.fetch_follow(browser, src="/_auth/follow/short")
    assert malformed.status_code == 404
    await asyncio.sleep(0.3)
    assert two.follow_src() is not None and two.find("login-form") is not None
    await one.close()
    await two.close()


async def test_signing_in_again_after_a_password_change_in_another_tab_is_at_once(
    live: Live, alice: Creds
) -> None:
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    browser = await signed_in_in(one, live, alice)
    await two.wait_for(lambda c: c.follow_src() is not None)
    await two.fetch_follow(browser)
    await two.wait_for_id("greeting")

    await one.submit(
        "change-password", {"current_password": alice[1], "new_password": NEW_PASSWORD}
    )
    await one.wait_for(lambda c: c.ticket_src() is not None)
    assert (await one.redeem(live.base_url)).status_code == 303
    await one.wait_for_id("change-password-ok")
    browser = str(one.cookie)
    # Signed out by design, saying why; and it asks which cookie the browser holds now.
    await two.wait_for_id("signed-out-reason")
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    await two.fetch_follow(browser)
    await two.wait_for(lambda c: c.follow_src() is None)
    assert two.find("greeting") is None  # a password change is not followed back in

    before = await count_rows(live)
    started = time.monotonic()
    await two.login("alice", NEW_PASSWORD)
    await two.wait_for(lambda c: c.ticket_src() is not None)
    two.cookie = browser  # the browser's cookie, which its ticket is bound to
    assert (await two.redeem(live.base_url)).status_code == 303
    await two.wait_for_id("greeting", timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert two.find("cookie-warning") is None
    # One new session row; the browser's other tab follows it (it held the same cookie,
    # which this sign-in retired).
    assert await count_rows(live) == before + 1
    assert await live_sessions(live) == 1
    await one.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    await one.fetch_follow(str(two.cookie))
    await one.wait_for(lambda c: c.follow_src() is None)
    assert one.find("greeting") is not None and one.find("cookie-warning") is None
    await one.close()
    await two.close()


async def test_a_sign_in_submitted_before_the_follow_landed_waits_for_it_only(
    live: Live, alice: Creds
) -> None:
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    browser = await signed_in_in(one, live, alice)
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    started = time.monotonic()
    await two.login(*alice)  # the follow image is not loaded yet
    await asyncio.sleep(0.2)
    await two.fetch_follow(browser)
    await two.wait_for_id("greeting", timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert two.ticket_src() is None and two.find("cookie-warning") is None
    assert await live_sessions(live) == 1
    await one.close()
    await two.close()


async def test_two_tabs_signing_in_at_once_end_on_one_session(live: Live, alice: Creds) -> None:
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    await one.login(*alice)
    await two.login(*alice)
    await one.wait_for(lambda c: c.ticket_src() is not None)
    await two.wait_for(lambda c: c.ticket_src() is not None)
    assert await live_sessions(live) == 2  # both passwords checked out, one browser
    started = time.monotonic()
    assert (await one.redeem(live.base_url)).status_code == 303  # the browser takes one's
    browser = str(one.cookie)
    two.cookie = browser  # its ticket, fetched next, carries the browser's cookie: refused
    assert (await two.redeem(live.base_url, follow=False)).status_code == 410
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    await two.fetch_follow(browser)
    await two.wait_for_id("greeting", timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert two.find("cookie-warning") is None
    assert await live_sessions(live) == 1  # the one the browser could not pick up ended
    await one.wait_for_id("greeting")
    await one.close()
    await two.close()


async def test_a_signed_in_tab_whose_browser_signed_in_as_someone_else_signs_out_saying_why(
    live: Live, alice: Creds
) -> None:
    await live.app.ctx.service.create_user("bob", "bob's password")
    token = await first_visit(live)
    one, two = await tabs(live, token, 2)
    browser = await signed_in_in(one, live, alice)
    await two.wait_for(lambda c: c.follow_src() is not None)
    await two.fetch_follow(browser)
    await two.wait_for_id("greeting")
    # Tab two ends (a password change in tab one) and learns the browser's new cookie.
    await one.submit(
        "change-password", {"current_password": alice[1], "new_password": NEW_PASSWORD}
    )
    await one.wait_for(lambda c: c.ticket_src() is not None)
    await one.redeem(live.base_url)
    await one.wait_for_id("change-password-ok")
    await two.wait_for(lambda c: c.follow_src() is not None)
    await two.fetch_follow(str(one.cookie))
    await two.wait_for(lambda c: c.follow_src() is None)
    # Bob signs in in tab two: the browser's cookie is bob's now, alice's session over.
    two.cookie = one.cookie
    browser = await signed_in_in(two, live, ("bob", "bob's password"))
    await one.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    await one.fetch_follow(browser)
    await one.wait_for_id("signed-out-reason", timeout=1.0)
    assert one.text("signed-out-reason") == SIGNED_OUT_REASONS["switched"]
    assert one.find("greeting") is None  # never bob's, never alice's any more
    assert await live_sessions(live, "alice") == 0
    await one.close()
    await two.close()
