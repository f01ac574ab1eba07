"""PostgreSQL, one host of four workers: one listening connection for the whole host,
relayed to every worker, and no revocation lost when that connection is cut.

The workers here read the outbox on their own only once a minute while the host's
listener is connected (``AUTHDEMO_BROADCAST_POLL_LISTENING``), so what reaches them
within the tests' 10 s came through the listener: a notification, or the catch-up read
that follows each change of the listener's connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.test_wheel import readme_app
from tests.scale.conftest import PASSWORD, create_users
from tests.support.idom_client import IdomClient
from tests.support.pg import connections, database_of, terminate
from tests.support.ports import free_port
from tests.support.server import ServerProcess
from tests.support.workers import LISTEN, listeners, operator_revokes, views_on_every_worker

pytestmark = [pytest.mark.slow, pytest.mark.postgresql_only]

WORKERS = 4
QUIET = {"AUTHDEMO_BROADCAST_POLL_LISTENING": "60s"}
USERS = [f"user{n}" for n in range(WORKERS)] + ["operator"]


async def sign_in(view: IdomClient, username: str) -> None:
    await view.login(username, PASSWORD)
    await view.wait_for_id("greeting")


async def signed_out(view: IdomClient) -> None:
    await view.wait_for(lambda c: c.find("login-form") is not None, timeout=10.0)


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, tmp_path / "host.log", workers=WORKERS, env=QUIET)
    server.start(meanwhile=lambda: create_users(db_url, *USERS))
    yield server
    server.stop()


async def test_a_host_of_four_workers_holds_one_listening_connection(
    host: ServerProcess, db_url: str
) -> None:
    database = database_of(db_url)
    await listeners(database)
    views = await views_on_every_worker(host, 1)
    for group in views:  # every worker has been at work
        await sign_in(group[0], "user0")
    counts = await connections(database)
    assert counts[LISTEN] == 1, counts
    assert set(counts) <= {"authdemo", LISTEN}, f"a connection that does not say who: {counts}"
    for group in views:
        await group[0].close()


async def test_a_revocation_through_any_worker_or_the_cli_reaches_every_worker(
    host: ServerProcess, db_url: str
) -> None:
    await listeners(database_of(db_url))
    views = await views_on_every_worker(host, len(USERS))  # views[worker][user]
    for group in views:
        for view, username in zip(group, USERS, strict=False):
            await sign_in(view, username)
    for worker in range(WORKERS):  # user<n> signs out everywhere else from worker n
        await views[worker][worker].click("logout-others")
        for other, group in enumerate(views):
            if other != worker:
                await signed_out(group[worker])
        assert views[worker][worker].find("greeting") is not None
    await operator_revokes("operator", db_url)
    for group in views:
        await signed_out(group[WORKERS])
    for group in views:
        for view in group:
            await view.close()


async def test_a_listener_cut_off_by_the_database_loses_no_revocation(
    host: ServerProcess, db_url: str
) -> None:
    database = database_of(db_url)
    views = [group[0] for group in await views_on_every_worker(host, 1)]
    actor = await IdomClient.connect(host.base_url)
    for view in [*views, actor]:
        await sign_in(view, "user0")
    await listeners(database)
    assert await terminate(database, LISTEN) == 1
    # Committed while nobody listens: no worker is ever notified of this one.
    await actor.click("logout-others")
    for view in views:
        await signed_out(view)
    await listeners(database)  # and the listener is back, alone
    for view in [*views, actor]:
        await view.close()


def test_a_host_whose_connections_cannot_fit_says_so_in_one_line_at_start(
    db_url: str, tmp_path: Path
) -> None:
    # Two workers of 200 connections each cannot fit any PostgreSQL we test on.
    env = {"AUTHDEMO_DB_POOL": "200"}
    server = ServerProcess(db_url, tmp_path / "big.log", workers=2, env=env).start()
    server.stop()
    lines = [line for line in server.log().splitlines() if "connection budget" in line]
    assert len(lines) == 1, server.log()
    assert "1 host(s) x (1 listener + 2 worker(s) x 200 pooled)" in lines[0]
    assert "max_connections" in lines[0]


def test_a_host_that_fits_starts_without_a_budget_warning(db_url: str, tmp_path: Path) -> None:
    env = {"AUTHDEMO_DB_POOL": "1"}
    server = ServerProcess(db_url, tmp_path / "small.log", workers=2, env=env).start()
    server.stop()
    assert "connection budget" not in server.log()


SANIC = [str(Path(sys.executable).parent / "sanic"), "app:app"]


async def test_your_app_under_sanic_with_four_workers_holds_one_listening_connection(
    db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(readme_app())
    port = free_port()
    with (tmp_path / "sanic.log").open("wb") as log:
        process = subprocess.Popen(
            [*SANIC, "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env={**os.environ, "AUTHDEMO_DATABASE_URL": db_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "sanic.log").read_text()
                await asyncio.sleep(0.1)
        database = database_of(db_url)
        await listeners(database)
        await asyncio.sleep(1.0)  # every worker has opened its database by now
        assert (await connections(database))[LISTEN] == 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
