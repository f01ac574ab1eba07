"""Sign in and out over the websocket, and the ticket that hands the browser its cookie."""

from __future__ import annotations

import asyncio

from authdemo.http.cookies import COOKIE_NAME
from tests.support.idom_client import IdomClient
from tests.support.live import Live

Creds = tuple[str, str]


async def first_visit(live: Live) -> str:
    response = await live.get("/")
    return response.headers["set-cookie"].split(";")[0].split("=", 1)[1]


def cookie(token: str) -> str:
    return f"{COOKIE_NAME}={token}"


async def redeem(live: Live, src: str, token: str | None, **headers: str) -> tuple[int, str | None]:
    """Fetch the ticket URL like the browser's <img> does; return status and new token."""
    sent = {"sec-fetch-site": "same-origin", **headers}
    if token is not None:
        sent["cookie"] = cookie(token)
    response = await live.get(src, headers=sent)
    set_cookie = response.headers.get("set-cookie")
    new = set_cookie.split(";")[0].split("=", 1)[1] if set_cookie else None
    return response.status_code, new


async def sign_in(live: Live, creds: Creds) -> tuple[IdomClient, str]:
    token = await first_visit(live)
    client = await IdomClient.connect(live.base_url, cookie=cookie(token))
    await client.login(*creds)
    await client.wait_for_id("greeting")  # shown once the browser fetched its ticket
    assert await client.tickets_fetched() == [303]
    new = client.token()
    assert new is not None and new != token
    return client, new


async def test_a_wrong_password_shows_the_generic_error(live: Live, alice: Creds) -> None:
    async with await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live))) as c:
        await c.login("alice", "wrong password")
        await c.wait_for_id("login-error")
        wrong_password = c.text("login-error")
        await c.login("nobody", "correct horse")
        await c.wait_for(lambda c: c.text("login-error") is not None)
        assert c.text("login-error") == wrong_password == "Incorrect username or password."
        assert c.find("greeting") is None


async def test_signing_in_switches_the_view_without_reload(live: Live, alice: Creds) -> None:
    client, _ = await sign_in(live, alice)
    assert "alice" in (client.text("greeting") or "")
    assert client.find("logout") is not None and client.find("login-form") is None
    await client.close()


async def test_the_new_cookie_is_signed_in_on_a_reload(live: Live, alice: Creds) -> None:
    client, token = await sign_in(live, alice)
    await client.close()
    response = await live.get("/", headers={"cookie": cookie(token)})
    assert "set-cookie" not in response.headers
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as reloaded:
        assert "alice" in (reloaded.text("greeting") or "")


async def test_a_reload_before_the_ticket_is_redeemed_asks_for_the_password(
    live: Live, alice: Creds
) -> None:
    token = await first_visit(live)
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as c:
        await c.login(*alice)
        await c.wait_for_id("greeting")  # the open view is signed in...
        async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as reloaded:
            assert reloaded.find("login-form") is not None  # ...the old cookie is not


async def test_logout_switches_the_view_and_kills_the_cookie(live: Live, alice: Creds) -> None:
    client, token = await sign_in(live, alice)
    await client.click("logout")
    await client.wait_for_id("login-form")
    await client.close()
    response = await live.get("/", headers={"cookie": cookie(token)})
    assert response.headers["set-cookie"].split(";")[0] != cookie(token)
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as again:
        assert again.find("login-form") is not None


async def test_signing_in_again_after_logout_on_the_same_connection(
    live: Live, alice: Creds
) -> None:
    client, token = await sign_in(live, alice)
    await client.click("logout")
    await client.wait_for_id("login-form")
    await client.login(*alice)  # bound to the (now revoked) cookie the browser still holds
    await client.wait_for_id("greeting")
    assert await client.tickets_fetched() == [303, 303]
    new = client.token()
    assert new is not None and new != token
    await client.close()


async def test_a_websocket_without_a_cookie_is_asked_to_reload_instead_of_signing_in(
    live: Live, alice: Creds
) -> None:
    # Issue 11, defect 7: the cookie was cleared (or the socket came first). A ticket
    # bound to no cookie could be redeemed by any browser — a stranger's would be signed
    # in as alice — so the form says to reload (which gives a cookie) and signs nobody in.
    async with await IdomClient.connect(live.base_url, page_first=False) as c:
        assert c.find("login-form") is not None
        await c.login(*alice)
        await c.wait_for_id("login-error")
        assert "Reload the page" in (c.text("login-error") or "")
        assert c.find("greeting") is None
        assert c.ticket_src() is None
    events = await live.app.ctx.service.audit_events("alice", 10)
    assert not any(e.kind == "login_ok" for e in events)


async def test_a_websocket_with_a_revoked_cookie_renders_the_sign_in_form(
    live: Live, alice: Creds
) -> None:
    client, token = await sign_in(live, alice)
    await client.click("logout")
    await client.wait_for_id("login-form")
    await client.close()
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as c:
        assert c.find("login-form") is not None


async def test_the_ticket_image_disappears_once_redeemed(live: Live, alice: Creds) -> None:
    client, _ = await sign_in(live, alice)
    await client.wait_for(lambda c: c.ticket_src() is None)
    await client.close()


async def test_many_concurrent_connects_are_all_served(live: Live) -> None:
    token = await first_visit(live)

    async def connect() -> bool:
        async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as c:
            return c.find("login-form") is not None

    results = await asyncio.gather(*(connect() for _ in range(30)))
    assert all(results)
