"""GET /_auth/ticket/<ticket>: same origin, bound cookie, once, in time."""

from __future__ import annotations

from datetime import timedelta

from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient
from tests.support.live import Live
from tests.web.test_login_flow import Creds, cookie, first_visit, redeem


async def pending_ticket(live: Live, creds: Creds) -> tuple[IdomClient, str, str]:
    token = await first_visit(live)
    client = await IdomClient.connect(live.base_url, cookie=cookie(token))
    await client.login(*creds)
    await client.wait_for_id("greeting")
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
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
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
    assert status == 200 and new is not None
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
    assert response.status_code == 200 and "set-cookie" in response.headers
    await client.close()


async def test_a_ticket_works_once(live: Live, alice: Creds) -> None:
    client, src, token = await pending_ticket(live, alice)
    assert (await redeem(live, src, token))[0] == 200
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
    assert status == 200
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as attacker:
        assert attacker.find("login-form") is not None  # and after it
    response = await live.get("/", headers={"cookie": cookie(token)})
    assert "set-cookie" in response.headers  # the old token is not even kept as anonymous
    await client.close()
