"""``python -m bench.statements``: the SQL statements of one sign-in cycle, by step.

Serves the demo app in this process (SQLite, or ``--postgres URL``), walks one visitor
through a whole cycle as a browser would — the page, the websocket and its first render,
a sign-in with its ticket image and the "cookie held" request, the signed-in render, a
sign-out — and counts every statement the app sends to the database at each step
(SQLAlchemy's ``before_cursor_execute``), and the transactions they run in (its
``begin``: SQLite's ``BEGIN`` rides with a transaction's first statement, asyncpg opens
its transactions without one). The broadcast follower's polls are counted apart: they run on a timer,
whatever the visitors do. ``--show`` prints each statement.

Issue 28's target: at most 20 statements per cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import event

from authdemo.config import Settings
from authdemo.http.app import create_app
from bench.prep import PASSWORD, migrate
from bench.scenarios import sqlite_url
from tests.support.idom_client import IdomClient
from tests.support.live import serve

TARGET = 20
FOLLOWER = re.compile(
    r"^SELECT (.* FROM authdemo_session_broadcasts\b|pg_snapshot_xmin\(pg_current_snapshot\(\)\))"
)
"""The follower's polls: the outbox, and (PostgreSQL) the horizon it reads before."""
STEPS = (
    "page (first visit)",
    "page (returning)",
    "connect + first render",
    "sign-in + ticket + held + signed-in render",
    "sign-out",
)


class Statements:
    """Every statement the engine runs, by the step it ran in."""

    def __init__(self) -> None:
        self.step = "start-up"
        self.by_step: dict[str, list[str]] = {step: [] for step in STEPS}
        self.transactions: Counter[str] = Counter()
        self.follower = 0

    def __call__(self, *args: Any) -> None:
        sql = " ".join(str(args[2]).split())
        if FOLLOWER.search(sql):
            self.follower += 1
        elif not sql.startswith("BEGIN"):  # SQLAlchemy's own SQLite adapter sends it
            self.by_step.setdefault(self.step, []).append(sql)

    def began(self, *_: Any) -> None:
        self.transactions[self.step] += 1


async def cycle(settings: Settings, show: bool) -> Statements:
    app = create_app(settings, name="authdemo_bench_statements")
    counted = Statements()
    async with serve(app) as live:
        service = app.ctx.service
        await service.create_user("bench", PASSWORD)
        event.listen(app.ctx.runtime.engine.sync_engine, "before_cursor_execute", counted)
        event.listen(app.ctx.runtime.engine.sync_engine, "begin", counted.began)
        await asyncio.sleep(0.3)  # the follower's first polls, before anything is counted

        counted.step = STEPS[0]
        page = await live.get("/")
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        counted.step = STEPS[1]
        await live.get("/", headers={"cookie": cookie})
        counted.step = STEPS[2]
        client = await IdomClient.connect(live.base_url, cookie=cookie)
        await client.wait_for_id("login-form")
        await asyncio.sleep(0.2)  # effects that read after the first render
        counted.step = STEPS[3]
        await client.login("bench", PASSWORD)
        await client.wait_for_id("logout")
        await asyncio.sleep(0.2)
        counted.step = STEPS[4]
        await client.click("logout")
        await client.wait_for_id("login-form")
        await asyncio.sleep(0.2)
        counted.step = "after"
        await client.close()
    if show:
        for step in STEPS:
            print(f"-- {step}")
            for sql in counted.by_step[step]:
                print(f"   {sql[:160]}")
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL server (admin URL) to run it on, in a fresh database, not SQLite",
    )
    parser.add_argument("--show", action="store_true", help="print every statement")
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.postgres:
            from tests.support.pg import PostgresDatabases, app_url

            os.environ["AUTHDEMO_TEST_POSTGRES_URL"] = args.postgres
            databases = PostgresDatabases()
            stack.callback(databases.close)
            name = databases.fresh()
            stack.callback(databases.drop, name)
            url = app_url(name)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="authdemo-stmts-"))
            url = sqlite_url(Path(tmp) / "statements.db")
        migrate(url)
        settings = replace(Settings.from_env(), database_url=url)
        counted = asyncio.run(cycle(settings, args.show))
    width = max(len(step) for step in STEPS)
    print(f"{'step':<{width}}  statements  transactions")
    for step in STEPS:
        print(
            f"{step:<{width}}  {len(counted.by_step[step]):10d}  {counted.transactions[step]:12d}"
        )
    total = sum(len(counted.by_step[step]) for step in STEPS)
    met = "met" if total <= TARGET else "not met"
    transactions = sum(counted.transactions[step] for step in STEPS)
    print(
        f"{'one sign-in cycle':<{width}}  {total:10d}  {transactions:12d}  (target ≤ {TARGET}: {met})"
    )
    print(f"(and {counted.follower} polls of the broadcast follower meanwhile, on its timer)")


if __name__ == "__main__":
    main()
