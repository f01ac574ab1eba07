"""When the database goes away: plain 503s, refused handshakes, nobody accepted as
signed in, and recovery without a restart once it is back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import websockets
from sqlalchemy.engine import make_url
from websockets.exceptions import InvalidStatus

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.notify import asyncpg_dsn
from authdemo.domain import ClientInfo
from authdemo.http.cookies import COOKIE_NAME
from authdemo.security import hash_token
from tests.scale.conftest import PASSWORD, create_users
from tests.support.db import in_thread
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
# Noticing takes up to the session cache's TTL (a returning visitor read from the database
# in the last TTL is answered from memory) plus the database timeout.
FAST_FAIL = {"AUTHDEMO_DB_TIMEOUT": "1s", "AUTHDEMO_SESSION_CACHE_TTL": "2s"}


def signed_in_cookie(db_url: str) -> str:
    async def sign_in() -> str:
        async with runtime(Settings(database_url=db_url)) as rt:
            anonymous = rt.service.new_token()
            result = await rt.service.login(
                hash_token(anonymous), "alice", PASSWORD, ClientInfo("127.0.0.1", "test")
            )
            token = (await rt.service.redeem_ticket(result.ticket, anonymous)).token
        return f"{COOKIE_NAME}={token}"

    return in_thread(lambda: asyncio.run(sign_in()))


def revoke_directly(db_url: str) -> None:
    async def revoke() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            await rt.service.revoke_user_sessions("alice")

    in_thread(lambda: asyncio.run(revoke()))


async def handshake_status(base_url: str, cookie: str) -> int:
    url = base_url.replace("http://", "ws://") + "/_idom/stream"
    headers = {"Origin": base_url, "Cookie": cookie}
    try:
        async with websockets.connect(url, additional_headers=headers, origin=None) as ws:
            await ws.recv()
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def wait_for_status(
    http: httpx.AsyncClient, url: str, cookie: str | None, status: int, within: float
) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        headers = {"cookie": cookie} if cookie else {}
        response = await http.get(url, headers=headers)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def assert_unavailable(server: ServerProcess, cookie: str) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        started = time.monotonic()
        response = await wait_for_status(http, server.base_url + "/", cookie, 503, within=10)
        assert response.status_code == 503
        assert time.monotonic() - started < 10
        assert response.headers["content-type"].startswith("text/plain")
        assert "temporarily unavailable" in response.text
        assert "set-cookie" not in response.headers
        # Once noticed, even requests that need no database are refused at once.
        quick = await http.get(server.base_url + "/")
        assert quick.status_code == 503
    assert await handshake_status(server.base_url, cookie) == 503
    assert server.process is not None and server.process.poll() is None  # still running


async def assert_recovered(server: ServerProcess, cookie: str, signed_in: bool) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        response = await wait_for_status(http, server.base_url + "/", cookie, 200, within=15)
        assert response.status_code == 200
        assert ("set-cookie" not in response.headers) is signed_in
    async with await IdomClient.connect(server.base_url, cookie=cookie) as client:
        assert (client.find("greeting") is not None) is signed_in


# --- SQLite held locked by another process -------------------------------------------------


@pytest.fixture
def locked_sqlite(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str, Path]]:
    create_users(db_url, "alice")
    cookie = signed_in_cookie(db_url)
    server = ServerProcess(db_url, tmp_path / "server.log", env=FAST_FAIL).start()
    yield server, cookie, Path(make_url(db_url).database or "")
    server.stop()


# Another process takes SQLite's write lock and keeps it (WAL lets readers go on).
HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE authdemo_app_secrets SET value = value")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.sqlite_only
async def test_a_sqlite_file_locked_by_another_process_fails_closed_then_recovers(
    locked_sqlite: tuple[ServerProcess, str, Path],
) -> None:
    server, cookie, path = locked_sqlite
    await assert_recovered(server, cookie, signed_in=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        async with httpx.AsyncClient(timeout=15) as http:
            # Anything that writes (here: redeeming a ticket) waits out the timeout...
            started = time.monotonic()
            refused = await http.get(
                server.base_url + "/_auth/ticket/whatever",
                headers={"sec-fetch-site": "same-origin", "cookie": cookie},
            )
            assert refused.status_code == 503 and time.monotonic() - started < 5
            assert "database is locked" not in refused.text
        await assert_unavailable(server, cookie)  # ...and then everything is refused
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    await assert_recovered(server, cookie, signed_in=True)


# --- PostgreSQL: the network cut, backends terminated -----------------------------------------


@pytest.fixture
def behind_proxy(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, TcpProxy, str]]:
    create_users(db_url, "alice")
    url = make_url(db_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    server = ServerProcess(proxied, tmp_path / "server.log", env=FAST_FAIL).start()
    yield server, proxy, db_url
    server.stop()
    proxy.stop()


@pytest.mark.postgresql_only
async def test_a_cut_database_connection_fails_closed_and_missed_revocations_arrive_after(
    behind_proxy: tuple[ServerProcess, TcpProxy, str],
) -> None:
    server, proxy, direct_url = behind_proxy
    cookie = signed_in_cookie(direct_url)
    tab = await IdomClient.connect(server.base_url, cookie=cookie)
    assert tab.find("greeting") is not None
    proxy.cut()
    await assert_unavailable(server, cookie)
    revoke_directly(direct_url)  # happens while this host cannot see the database
    proxy.restore()
    await tab.wait_for(lambda c: c.find("login-form") is not None, timeout=15)
    await assert_recovered(server, cookie, signed_in=False)
    await tab.close()


@pytest.mark.postgresql_only
async def test_terminated_backends_are_replaced_and_revocations_still_arrive_live(
    db_url: str, tmp_path: Path
) -> None:
    create_users(db_url, "alice")
    server = ServerProcess(db_url, tmp_path / "server.log", env=FAST_FAIL).start()
    try:
        actor_cookie = signed_in_cookie(db_url)
        tab_cookie = signed_in_cookie(db_url)
        actor = await IdomClient.connect(server.base_url, cookie=actor_cookie)
        tab = await IdomClient.connect(server.base_url, cookie=tab_cookie)
        conn = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert killed >= 2  # the pool's connections and the LISTEN connection
        await asyncio.sleep(1.5)  # the listener reconnects within a second
        await assert_recovered(server, actor_cookie, signed_in=True)
        started = time.monotonic()
        await actor.click("logout-others")
        await tab.wait_for(lambda c: c.find("login-form") is not None, timeout=1.0)
        assert time.monotonic() - started < 1.0
        await actor.close()
        await tab.close()
    finally:
        server.stop()
