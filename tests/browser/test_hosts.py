"""Two hosts behind a load balancer, no sticky sessions: the tab moves, and stays signed in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import create_users, shown
from tests.browser.test_sign_in import reconnected, sign_in, ticket_redeemed
from tests.support.server import ServerProcess, start_all
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.browser


@pytest.fixture
def balanced(
    db_url: str, tmp_path: Path, ui_name: str
) -> Iterator[tuple[TcpProxy, ServerProcess, ServerProcess]]:
    host_a = ServerProcess(db_url, tmp_path / "a.log", ui=ui_name)
    host_b = ServerProcess(db_url, tmp_path / "b.log", ui=ui_name)
    start_all([host_a, host_b], meanwhile=lambda: create_users(db_url, "alice"))
    balancer = TcpProxy(("127.0.0.1", host_a.port)).start()
    yield balancer, host_a, host_b
    balancer.stop()
    host_a.stop()
    host_b.stop()


def test_a_tab_whose_websocket_moves_to_another_host_stays_signed_in(
    context: Any, balanced: tuple[TcpProxy, ServerProcess, ServerProcess]
) -> None:
    balancer, host_a, host_b = balanced
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{balancer.port}/")
    sign_in(page)
    shown(page, "#greeting")
    ticket_redeemed(page)
    with reconnected(page):
        host_a.stop()  # host A goes away; the balancer sends everyone to host B
        balancer.switch(("127.0.0.1", host_b.port))
    shown(page, "#greeting")
    page.reload()  # and a full page load on host B too
    shown(page, "#greeting")
    assert "alice" in page.inner_text("#greeting")
