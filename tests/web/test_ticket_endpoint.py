"""GET /_auth/ticket/<ticket>: same origin, bound cookie, once, in time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient
from tests.support.live import Live
from tests.web.test_login_flow import Creds, cookie, first_visit, redeem


async def pending_ticket(live: Live, creds: Creds) -> tuple[IdomClient, str, str]:
    token = await first_visit(live)
    client = await IdomClient.connect(live.base_url, cookie=cookie(token), follow_tickets=False)
    await client.login(*creds)
    await client.wait_for(lambda c: c.ticket_src() is not None)
    # Issue 12: until the browser holds the cookie, the page says so, not "signed in".
    assert client.find("signing-in") is not None
    assert client.find("greeting") is None
    src = client.ticket_src()
    assert src is not None
    return client, src, token


async def test_the_cookie_comes_with_strict_attributes_and_no_store(
    live: Live, alice: Creds
) -> None:
    client, src, token = await pending_ticket(live, alice)
    response = await live.get(
        src, headers={"cookie": cookie(token), "sec-fetch-site": "same-origin"}
    )
    # A redirect, so that the image's next request presents the new cookie (issue 12).
    assert response.status_code == 303 and response.headers["location"] == "/_auth/held"
    assert response.headers["cache-control"] == "no-store"
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-authdemo_session=")
    for attribute in ("Path=/", "SameSite=Lax", "Secure", "HttpOnly", "Max-Age="):
        assert attribute in header
    await client.close()


async def test_cross_site_requests_are_refused_and_leave_the_ticket_usable(
    live: Live, alice: Creds
) -> None:
    client, src, token = await pending_ticket(live, alice)
    assert await redeem(live, src, token, **{"sec-fetch-site": "cross-site"}) == (403, None)
    assert await redeem(live, src, token, **{"sec-fetch-site": "same-site"}) == (403, None)
    status, new = await redeem(live, src, token)
    assert status == 303 and new is not None
    await client.close()


async def test_without_fetch_metadata_a_matching_origin_is_required(
    live: Live, alice: Creds
) -> None:
    client, src, token = await pending_ticket(live, alice)
    response = await live.get(src, headers={"cookie": cookie(token)})
    assert response.status_code == 403
    response = await live.get(
        src, headers={"cookie": cookie(token), "origin": "https://evil.example"}
    )
    assert response.status_code == 403
    response = await live.get(src, headers={"cookie": cookie(token), "origin": live.origin})
    assert response.status_code == 303 and "set-cookie" in response.headers
    await client.close()


async def test_a_ticket_works_once(live: Live, alice: Creds) -> None:
    client, src, token = await pending_ticket(live, alice)
    assert (await redeem(live, src, token))[0] == 303
    assert await redeem(live, src, token) == (410, None)
    await client.close()


async def test_a_ticket_with_another_cookie_is_refused_without_touching_cookies(
    live: Live, alice: Creds
) -> None:
    client, src, _ = await pending_ticket(live, alice)
    attacker = await first_visit(live)
    assert await redeem(live, src, attacker) == (410, None)
    await client.close()


async def test_an_expired_ticket_is_refused(live: Live, alice: Creds, app_clock: FakeClock) -> None:
    client, src, token = await pending_ticket(live, alice)
    app_clock.advance(timedelta(seconds=31))
    assert await redeem(live, src, token) == (410, None)
    await client.close()


async def test_an_unknown_ticket_is_refused(live: Live) -> None:
    token = await first_visit(live)
    assert await redeem(live, "/_auth/ticket/made-up", token) == (410, None)


async def test_the_planted_pre_login_token_never_signs_in(live: Live, alice: Creds) -> None:
    # The attacker planted `token` and kept a copy; the victim signs in with it.
    client, src, token = await pending_ticket(live, alice)
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as attacker:
        assert attacker.find("login-form") is not None  # inside the ticket window
    status, _ = await redeem(live, src, token)
    assert status == 303
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as attacker:
        assert attacker.find("login-form") is not None  # and after it
    response = await live.get("/", headers={"cookie": cookie(token)})
    assert "set-cookie" in response.headers  # the old token is not even kept as anonymous
    await client.close()


async def test_the_view_says_signed_in_only_once_the_browser_presents_the_new_cookie(
    live: Live, alice: Creds
) -> None:
    client, src, token = await pending_ticket(live, alice)
    status, new = await redeem(live, src, token)  # the cookie is sent, not yet known held
    assert status == 303 and new is not None
    await asyncio.sleep(0.2)
    assert client.find("greeting") is None
    assert client.find("signing-in") is not None
    held = await live.get("/_auth/held", headers={"cookie": cookie(token)})  # the old one
    assert held.status_code == 200 and "set-cookie" not in held.headers
    await asyncio.sleep(0.2)
    assert client.find("greeting") is None  # the old cookie proves nothing
    held = await live.get(
        "/_auth/held", headers={"cookie": cookie(new), "sec-fetch-site": "same-origin"}
    )
    assert held.status_code == 200 and held.headers["content-type"] == "image/gif"
    await client.wait_for_id("greeting", timeout=2)
    assert client.ticket_src() is None
    await client.close()


async def test_a_cross_site_request_cannot_claim_the_cookie_is_held(
    live: Live, alice: Creds
) -> None:
    client, src, token = await pending_ticket(live, alice)
    _, new = await redeem(live, src, token)
    held = await live.get(
        "/_auth/held", headers={"cookie": cookie(new or ""), "sec-fetch-site": "cross-site"}
    )
    assert held.status_code == 200  # an image either way, but nothing happens
    await asyncio.sleep(0.3)
    assert client.find("greeting") is None
    await client.close()
