"""Issue 18: ``create_app(name=…)`` — two apps in one process, each with its own root,
served side by side; a second app under a name already taken is refused clearly.

The suite runs Sanic in test mode (which lets many apps share a name); these tests
build their apps with it off, as in production. (They serve with it on again: outside
test mode Sanic rewrites its own protocol methods when a server starts, which works
once per process, and this test starts two servers in one event loop.)"""

from __future__ import annotations

from typing import Any

import pytest
from sanic import Sanic

from authdemo import RequireAuth, create_app
from authdemo.config import Settings
from authdemo.ui.library import component, html
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import serve

PASSWORD = "correct horse"


@pytest.fixture
def production_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanic's app-name registry as in production: enforced, and empty to start with."""
    monkeypatch.setattr(Sanic, "test_mode", False)
    monkeypatch.setattr(Sanic, "_app_registry", {})


def page(text: str) -> Any:
    @component
    def Page() -> Any:
        return RequireAuth(html.p({"id": "page"}, text))

    return Page


async def test_two_apps_with_their_own_names_serve_side_by_side(
    settings: Settings, production_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = create_app(settings, page("the shop"), name="shop", hasher_factory=cheap_hasher)
    admin = create_app(settings, page("the admin"), name="admin", hasher_factory=cheap_hasher)
    assert Sanic.get_app("shop") is shop and Sanic.get_app("admin") is admin
    monkeypatch.setattr(Sanic, "test_mode", True)  # see the module's docstring
    async with serve(shop) as shop_live, serve(admin) as admin_live:
        await shop_live.app.ctx.service.create_user("alice", PASSWORD)
        for live, text in ((shop_live, "the shop"), (admin_live, "the admin")):
            client = await IdomClient.connect(live.base_url)
            await client.login("alice", PASSWORD)
            await client.wait_for_id("page")
            assert client.text("page") == text
            assert await client.tickets_fetched() == [303]
            async with await IdomClient.connect(live.base_url, cookie=client.cookie) as reload:
                assert reload.text("page") == text  # signed in on a reload too
            await client.close()


def test_a_second_app_under_a_taken_name_is_refused_clearly(
    settings: Settings, production_registry: None
) -> None:
    create_app(settings)
    with pytest.raises(ValueError, match=r"create_app\(name='shop'\)"):
        create_app(settings)
    create_app(settings, name="second")  # its own name: fine
