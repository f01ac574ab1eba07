"""kill -9 at random moments: nothing acknowledged is lost, nothing half-written remains."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.support.db import in_thread
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow
PASSWORD = "correct horse"


def cli(db_url: str, *args: str, stdin: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "authdemo", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "AUTHDEMO_DATABASE_URL": db_url},
    )


def check_database(db_url: str, written_by_the_app: bool = True) -> None:
    """Integrity (SQLite), foreign keys, and no row without its transaction's siblings."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database or "") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []

    async def consistent() -> None:
        async with runtime(Settings(database_url=db_url)) as rt, rt.engine.connect() as conn:
            from sqlalchemy import text

            # Rows the app wrote in one transaction come together (not checked after a
            # purge, which removes expired tickets, or for rows a test wrote directly).
            if not written_by_the_app:
                return
            # A signed-in session and its ticket.
            orphans = await conn.execute(
                text(
                    "SELECT count(*) FROM authdemo_sessions s WHERE s.user_id IS NOT NULL AND NOT "
                    "EXISTS (SELECT 1 FROM authdemo_auth_tickets t WHERE t.session_id = s.id)"
                )
            )
            assert orphans.scalar() == 0
            # A user and its user_created event are, too.
            unlogged = await conn.execute(
                text(
                    "SELECT count(*) FROM authdemo_users u WHERE NOT EXISTS (SELECT 1 FROM "
                    "authdemo_auth_events e WHERE e.user_id = u.id AND e.kind = 'user_created')"
                )
            )
            assert unlogged.scalar() == 0

    in_thread(lambda: asyncio.run(consistent()))


def token_is_dead(db_url: str, token: str) -> bool:
    async def check() -> bool:
        async with runtime(Settings(database_url=db_url)) as rt:
            return (await rt.service.resolve(token)).needs_new_token

    return in_thread(lambda: asyncio.run(check()))


def session_rows(db_url: str) -> int:
    async def count() -> int:
        from sqlalchemy import text

        async with runtime(Settings(database_url=db_url)) as rt, rt.engine.connect() as conn:
            return int(
                (await conn.execute(text("SELECT count(*) FROM authdemo_sessions"))).scalar_one()
            )

    return in_thread(lambda: asyncio.run(count()))


def users_in(db_url: str) -> set[str]:
    async def read() -> set[str]:
        async with runtime(Settings(database_url=db_url)) as rt:
            return {u.user.username for u in await rt.service.list_users()}

    return in_thread(lambda: asyncio.run(read()))


async def sign_in_and_out(server: ServerProcess, username: str) -> str | None:
    """Sign in, pick up the cookie, sign out. Returns the cookie token once the sign-out
    was acknowledged (the view switched); None when the server died on the way."""
    try:
        client = await IdomClient.connect(server.base_url, timeout=5)
        try:
            await client.login(username, PASSWORD)
            await client.wait_for_id("logout", timeout=5)  # once the browser held the cookie
            if await client.tickets_fetched() != [303]:
                return None
            token = client.token()
            await client.click("logout")
            await client.wait_for_id("login-form", timeout=5)
            return token  # acknowledged
        finally:
            await client.close()
    except Exception:  # the server was killed under us: not acknowledged
        return None


def test_kill_9_of_the_server_loses_nothing_acknowledged(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(20261128)
    server = ServerProcess(db_url, tmp_path / "server.log").start()
    created: set[str] = set()
    logged_out: list[str] = []
    kills = 0
    stop = threading.Event()
    # The kills come at random moments scaled to what one sign-in cycle takes on this
    # machine now, so that cycles finish between kills however slow it is (with a fixed
    # 0.8-2.0 s, a machine at half speed under the parallel suite finished none).
    process = cli(db_url, "create-user", "warm-up", "--password-stdin")
    out, _ = process.communicate(PASSWORD + "\n", timeout=60)
    assert process.returncode == 0, out
    started = time.monotonic()
    assert asyncio.run(sign_in_and_out(server, "warm-up")) is not None
    cycle = time.monotonic() - started

    def killer() -> None:
        nonlocal kills
        while not stop.wait(rng.uniform(0.8, 2.0) * max(cycle, 1.0)):
            server.kill()  # kill -9, whatever it is doing
            kills += 1
            server.start()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        i = 0
        # At least 20 s, and on until something was acknowledged after three kills.
        while time.monotonic() < deadline or (
            (kills < 3 or not logged_out) and time.monotonic() < deadline + 100
        ):
            name = f"user{i}"
            i += 1
            process = cli(db_url, "create-user", name, "--password-stdin")
            out, _ = process.communicate(PASSWORD + "\n", timeout=60)
            if process.returncode == 0:
                created.add(name)  # acknowledged
            else:
                assert "Traceback" not in out, out
                continue
            token = asyncio.run(sign_in_and_out(server, name))
            if token is not None:
                logged_out.append(token)
    finally:
        stop.set()
        thread.join()
        server.stop()
    print(f"kill -9 x{kills}: {len(created)} users and {len(logged_out)} sign-outs acknowledged")
    assert kills >= 3 and created and logged_out, (kills, len(created), len(logged_out))
    check_database(db_url)
    assert created <= users_in(db_url)
    for token in logged_out:
        assert token_is_dead(db_url, token), f"an acknowledged logout came back: {token[:8]}"


def test_kill_9_of_create_user_leaves_all_or_nothing(db_url: str) -> None:
    rng = random.Random(7)
    outcomes = []
    for i in range(12):
        process = cli(db_url, "create-user", f"victim{i}", "--password-stdin")
        assert process.stdin is not None
        process.stdin.write(PASSWORD + "\n")
        process.stdin.flush()
        time.sleep(rng.uniform(0.2, 1.0))  # imports, hashing, the insert: somewhere
        process.send_signal(signal.SIGKILL)
        process.wait()
        outcomes.append(process.returncode)
    check_database(db_url)
    assert -signal.SIGKILL in outcomes  # some really were killed mid-way
    for name in users_in(db_url):  # those that exist are complete and can sign in
        process = cli(db_url, "set-password", name, "--password-stdin")
        out, _ = process.communicate("another password\n", timeout=60)
        assert process.returncode == 0, out


def test_kill_9_of_purge_expired_mid_run_is_harmless(db_url: str, tmp_path: Path) -> None:
    from bench.prep import fill_sessions, signed_in_cookies

    live = in_thread(lambda: signed_in_cookies(db_url, 3))
    total = 3 + 60_000
    in_thread(lambda: fill_sessions(db_url, total - 3, expired=True))
    process = cli(db_url, "purge-expired", "--batch", "100")
    # Kill it once it has deleted something, at a random point after that.
    deadline = time.monotonic() + 60
    while session_rows(db_url) == total and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.uniform(0, 0.3))
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed mid-run, not after finishing
    assert 3 < session_rows(db_url) < total
    check_database(db_url, written_by_the_app=False)
    for cookie in live:
        assert not token_is_dead(db_url, cookie.split("=", 1)[1])
    finish = cli(db_url, "purge-expired")
    out, _ = finish.communicate(timeout=120)
    assert finish.returncode == 0, out
    assert session_rows(db_url) == 3  # the live ones, nothing else
