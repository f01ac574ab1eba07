"""The knobs an app author turns (issue 18): extra CSP sources, title, stylesheet, cookie
name, security headers on the app's own routes, and 404s for file-like paths."""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace

import httpx
import pytest
import websockets
from sanic import Request
from sanic.response import HTTPResponse, json, text
from websockets.exceptions import InvalidStatus

from authdemo.config import Settings
from authdemo.http.app import AuthdemoApp, create_app
from authdemo.http.headers import HSTS, content_security_policy
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import serve

_names = itertools.count()
CDN = "https://cdn.example"


def knob_app(settings: Settings, **knobs: object) -> AuthdemoApp:
    return create_app(
        replace(settings, **knobs),  # type: ignore[arg-type]
        name=f"authdemo_knobs_{next(_names)}",
        hasher_factory=cheap_hasher,
    )


def add_app_routes(app: AuthdemoApp) -> None:
    """Routes an app author adds to their authdemo app."""

    @app.get("/api/hello")
    async def hello(request: Request) -> HTTPResponse:
        return json({"hello": "world"})

    @app.get("/embed/widget", ctx_security_headers=False)
    async def widget(request: Request) -> HTTPResponse:
        return text("embeddable")

    @app.get("/api/own-policy")
    async def own_policy(request: Request) -> HTTPResponse:
        return text("strict", headers={"content-security-policy": "default-src 'none'"})


async def test_a_csp_extra_source_appears_once_in_one_header_on_every_response(
    settings: Settings,
) -> None:
    extra = f"img-src {CDN}; font-src https://fonts.example; img-src {CDN}"
    app = knob_app(settings, csp_extra=extra, allowed_hosts=("127.0.0.1",))
    add_app_routes(app)
    expected = content_security_policy({"img-src": (CDN,), "font-src": ("https://fonts.example",)})
    async with serve(app) as live:
        responses = {
            path: await live.get(path)
            for path in (
                "/",
                "/some/spa/route",
                "/_authdemo/static/app.css",
                f"/_{live.ui}/assets/missing.js",
                "/favicon.ico",
                "/api/hello",
            )
        }
        responses["ticket, cross-site"] = await live.get(
            "/_auth/ticket/abc", headers={"sec-fetch-site": "cross-site"}
        )
        responses["unknown host"] = await live.get("/", headers={"host": "evil.example"})
        with pytest.raises(InvalidStatus) as refused:
            await IdomClient.connect(live.base_url, origin="http://evil.example")
        ws_headers = refused.value.response.headers
    assert responses["ticket, cross-site"].status_code == 403
    assert responses["unknown host"].status_code == 400
    assert refused.value.response.status_code == 403
    for what, response in responses.items():
        policies = response.headers.get_list("content-security-policy")
        assert policies == [expected], what
        assert policies[0].count(CDN) == 1, what
        assert response.headers["x-frame-options"] == "DENY", what
    assert ws_headers.get_all("content-security-policy") == [expected]


async def test_the_apps_own_routes_get_the_security_headers(settings: Settings) -> None:
    app = knob_app(settings)
    add_app_routes(app)
    async with serve(app) as live:
        headers = (await live.get("/api/hello")).headers
    assert headers.get_list("content-security-policy") == [content_security_policy()]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert "strict-transport-security" not in headers  # plain http


async def test_a_route_opts_out_of_the_security_headers(settings: Settings) -> None:
    app = knob_app(settings)
    add_app_routes(app)
    async with serve(app) as live:
        widget = await live.get("/embed/widget")
        own = await live.get("/api/own-policy")
    assert widget.text == "embeddable"
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert name not in widget.headers
    # A route that sends its own policy keeps it, and there is still exactly one.
    assert own.headers.get_list("content-security-policy") == ["default-src 'none'"]
    assert own.headers["x-frame-options"] == "DENY"


async def test_app_routes_get_hsts_over_https_from_a_trusted_proxy(settings: Settings) -> None:
    app = knob_app(settings, trusted_proxies="127.0.0.1")
    add_app_routes(app)
    async with serve(app) as live:
        headers = (await live.get("/api/hello", headers={"x-forwarded-proto": "https"})).headers
    assert headers["strict-transport-security"] == HSTS["strict-transport-security"]


async def test_the_page_title_is_configurable_and_escaped(settings: Settings) -> None:
    app = knob_app(settings, page_title="Shop <script>alert(1)</script> & Co")
    async with serve(app) as live:
        page = (await live.get("/")).text
    assert "<title>Shop &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</title>" in page
    assert "<script>alert(1)" not in page


async def test_the_library_stylesheet_can_be_left_out(settings: Settings) -> None:
    async with serve(knob_app(settings)) as live:
        default_page = (await live.get("/")).text
    async with serve(knob_app(settings, stylesheet=False)) as live:
        bare_page = (await live.get("/")).text
        still_served = await live.get("/_authdemo/static/app.css")
    assert '<link rel="stylesheet" href="/_authdemo/static/app.css">' in default_page
    assert "app.css" not in bare_page
    assert "<title>authdemo</title>" in bare_page and "favicon.svg" in bare_page
    assert still_served.status_code == 200  # an app may still link it itself


@pytest.mark.parametrize(
    "path",
    [
        "/favicon.ico",
        "/app.js",
        "/static/main.css",
        "/bundle.js.map",
        "/images/logo.png",
        "/robots.txt",
        "/.env",
    ],
)
async def test_unknown_file_like_paths_are_404_without_a_cookie(
    settings: Settings, path: str
) -> None:
    async with serve(knob_app(settings)) as live:
        response = await live.get(path)
    assert response.status_code == 404
    assert "set-cookie" not in response.headers
    assert response.headers.get_list("content-security-policy") == [content_security_policy()]


@pytest.mark.parametrize("path", ["/dashboard", "/users/42/settings", "/a.b/c", "/shop/"])
async def test_other_unknown_paths_still_answer_the_page(settings: Settings, path: str) -> None:
    async with serve(knob_app(settings)) as live:
        response = await live.get(path)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert response.headers["set-cookie"].startswith("__Host-authdemo_session=")


async def test_the_cookie_has_the_configured_name_and_only_it_is_read(settings: Settings) -> None:
    app = knob_app(settings, cookie_name="__Host-shop_session")
    async with serve(app) as live:
        first = await live.get("/")
        name, _, token = first.headers["set-cookie"].split(";", 1)[0].partition("=")
        returning = await live.get("/", headers={"cookie": f"{name}={token}"})
        other_name = await live.get("/", headers={"cookie": f"__Host-authdemo_session={token}"})
        client = await IdomClient.connect(live.base_url)
        cookie = client.cookie
        await client.close()
    assert name == "__Host-shop_session"
    assert "Secure" in first.headers["set-cookie"] and "HttpOnly" in first.headers["set-cookie"]
    assert "set-cookie" not in returning.headers  # recognised: no new cookie
    assert "set-cookie" in other_name.headers  # another app's name is not ours
    assert cookie is not None and cookie.startswith("__Host-shop_session=")


async def test_two_apps_with_two_cookie_names_stay_signed_in_independently(
    settings: Settings,
) -> None:
    """A browser sends both apps' cookies to both (cookies ignore ports): each app reads
    its own, so signing in to one leaves the other's session alone."""
    shop = knob_app(settings, cookie_name="__Host-shop_session")
    admin = knob_app(settings, cookie_name="__Host-admin_session")
    async with serve(shop) as shop_live, serve(admin) as admin_live:
        await shop.ctx.service.create_user("alice", "correct horse")
        await shop.ctx.service.create_user("bob", "correct horse")
        jar: dict[str, str] = {}  # one host's cookie jar, shared by both ports

        def cookie_header() -> str:
            return "; ".join(f"{k}={v}" for k, v in jar.items())

        def keep(set_cookie: str | None) -> None:
            if set_cookie:
                key, _, value = set_cookie.split(";", 1)[0].partition("=")
                jar[key] = value

        async def load_page(base_url: str) -> None:
            async with httpx.AsyncClient() as http:
                page = await http.get(base_url + "/", headers={"cookie": cookie_header()})
            keep(page.headers.get("set-cookie"))

        async def sign_in(base_url: str, username: str) -> None:
            await load_page(base_url)
            async with await IdomClient.connect(base_url, cookie=cookie_header()) as client:
                await client.login(username, "correct horse")
                await client.wait_for_id("greeting")
                assert await client.tickets_fetched() == [303]
                keep(client.cookie)  # the session's new cookie, from the ticket

        async def who(base_url: str) -> str | None:
            await load_page(base_url)  # a reload
            async with await IdomClient.connect(base_url, cookie=cookie_header()) as client:
                return client.text("greeting")

        await sign_in(shop_live.base_url, "alice")
        await sign_in(admin_live.base_url, "bob")
        assert set(jar) == {"__Host-shop_session", "__Host-admin_session"}
        shop_view = await who(shop_live.base_url)
        admin_view = await who(admin_live.base_url)
    assert shop_view is not None and "alice" in shop_view
    assert admin_view is not None and "bob" in admin_view


def insecure_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "authdemo.http.insecure"]


async def test_plain_http_to_another_host_is_logged_once_per_host(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(knob_app(settings)) as live:
        with caplog.at_level(logging.WARNING, logger="authdemo.http.insecure"):
            for host in ("127.0.0.1", "localhost", "[::1]", "app.localhost"):
                await live.get("/", headers={"host": host})
            assert insecure_warnings(caplog) == []
            for _ in range(3):
                await live.get("/", headers={"host": "devbox.test:8000"})
                await live.get("/dashboard", headers={"host": "devbox.test:8000"})
            await live.get("/", headers={"host": "other.test"})
    warnings = insecure_warnings(caplog)
    assert len(warnings) == 2
    assert warnings[0].startswith("http://devbox.test:8000 is plain http")
    assert "Secure session cookie" in warnings[0]
    assert warnings[1].startswith("http://other.test is plain http")


async def test_no_plain_http_warning_behind_a_tls_proxy(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(knob_app(settings, trusted_proxies="127.0.0.1")) as live:
        with caplog.at_level(logging.WARNING, logger="authdemo.http.insecure"):
            headers = {"host": "app.example", "x-forwarded-proto": "https"}
            await live.get("/", headers=headers)
    assert insecure_warnings(caplog) == []


async def test_the_sign_in_form_explains_plain_http_on_other_hosts(settings: Settings) -> None:
    """Through the websocket, as the page's own view sees it: the websocket carries the
    page's Host (the Chromium test in tests/browser shows the same on screen)."""
    async with serve(knob_app(settings)) as live:
        port = int(live.base_url.rsplit(":", 1)[1])
        async with await IdomClient.connect(live.base_url) as local:
            assert local.find("login-form") is not None
            assert local.find("insecure-origin-notice") is None
        # What a browser at http://devbox.test:<port> opens: Host and Origin say devbox.test.
        ws = await websockets.connect(
            f"ws://devbox.test:{port}/_{live.ui}/stream",
            origin=websockets.Origin(f"http://devbox.test:{port}"),
            host="127.0.0.1",  # connect here; the URI still names devbox.test
            port=port,
            proxy=None,
        )
        async with IdomClient(ws, ui=live.ui) as remote:
            await remote.receive()
            notice = remote.text("insecure-origin-notice")
            assert remote.find("login-form") is not None
    assert notice is not None
    assert notice.startswith("Sign-in needs https on this address (or open it as localhost)")
    assert "plain http from devbox.test" in notice
