"""X-Forwarded-For and -Proto count only from AUTHDEMO_TRUSTED_PROXIES."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from authdemo.config import ConfigError, Settings
from authdemo.domain import AuditKind
from authdemo.http.app import create_app
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve

_names = itertools.count()


@asynccontextmanager
async def running(settings: Settings, trusted: str) -> AsyncIterator[Live]:
    app = create_app(
        replace(settings, trusted_proxies=trusted),
        name=f"authdemo_proxy_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        yield live


async def failed_login_address(live: Live, forwarded_for: str) -> str:
    client = await IdomClient.connect(live.base_url, headers={"X-Forwarded-For": forwarded_for})
    await client.login("mallory", "whatever pw")
    await client.wait_for_id("login-error")
    await client.close()
    (event,) = [
        e
        for e in await live.app.ctx.service.audit_events(None, 10)
        if e.kind is AuditKind.LOGIN_FAILED
    ]
    return event.client_addr


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    async with running(settings, "") as live:
        assert await failed_login_address(live, "203.0.113.9") == "127.0.0.1"


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(settings: Settings) -> None:
    async with running(settings, "127.0.0.1") as live:
        assert await failed_login_address(live, "203.0.113.9") == "203.0.113.9"


async def test_hops_added_by_the_client_itself_are_not_believed(settings: Settings) -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the real address.
    async with running(settings, "127.0.0.1") as live:
        assert await failed_login_address(live, "1.1.1.1, 198.51.100.7") == "198.51.100.7"


async def test_a_chain_of_trusted_proxies_is_walked_back(settings: Settings) -> None:
    async with running(settings, "127.0.0.1, 10.0.0.0/8") as live:
        assert await failed_login_address(live, "198.51.100.7, 10.1.2.3") == "198.51.100.7"


async def test_forwarded_proto_https_from_a_trusted_proxy_means_hsts_and_an_https_origin(
    settings: Settings,
) -> None:
    async with running(settings, "127.0.0.1") as live:
        response = await live.get("/", headers={"x-forwarded-proto": "https"})
        assert response.headers["strict-transport-security"].startswith("max-age=")
        https_origin = live.base_url.replace("http://", "https://")
        client = await IdomClient.connect(
            live.base_url, origin=https_origin, headers={"X-Forwarded-Proto": "https"}
        )
        assert client.find("login-form") is not None
        await client.close()


async def test_forwarded_proto_from_anyone_else_is_ignored(settings: Settings) -> None:
    async with running(settings, "") as live:
        response = await live.get("/", headers={"x-forwarded-proto": "https"})
        assert "strict-transport-security" not in response.headers


def test_a_bad_trusted_proxy_entry_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AUTHDEMO_TRUSTED_PROXIES"):
        Settings.from_env({"AUTHDEMO_TRUSTED_PROXIES": "localhost"})
