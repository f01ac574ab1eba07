"""Databases for the benchmark: migrated, with users and ready-made signed-in sessions."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import URL, make_url

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.security import hash_token
from bench.procs import ROOT

COOKIE = "__Host-authdemo_session"
PASSWORD = "bench password"


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "AUTHDEMO_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new migrated database on the PostgreSQL server at ``server_url`` (a plain
    ``postgresql://`` URL, as ``--postgres`` takes it), dropped after; yields the app's
    URL for it."""
    from tests.support.pg import PostgresDatabases, app_url

    os.environ["AUTHDEMO_TEST_POSTGRES_URL"] = server_url
    databases = PostgresDatabases()
    name = databases.fresh()
    try:
        yield app_url(name)
    finally:
        databases.drop(name)
        databases.close()


def signed_in_cookies(url: str, count: int, users: int = 1) -> list[str]:
    """``count`` cookies of live signed-in sessions, spread over ``users`` users.

    The sessions are written directly (a sign-in each would spend 30 ms hashing); their
    tokens are minted with the deployment's key, exactly as the ticket endpoint does.
    """

    async def make() -> list[str]:
        async with runtime(Settings(database_url=url)) as rt:
            # One real hash, reused: creating many users through the service would spend
            # 30 ms of argon2id on each.
            hashed = await rt.hasher.hash(PASSWORD)
            ids = []
            async with rt.uow(write=True) as tx:
                for i in range(users):
                    name = f"bench{i}"
                    found = await tx.users.get_by_key(name)
                    user = found or await tx.users.add(name, name, hashed, rt.service.now())
                    ids.append(user.id)
                await tx.commit()
            cookies = []
            now = rt.service.now()
            async with rt.uow(write=True) as tx:
                for i in range(count):
                    token = rt.service.new_token()
                    await tx.sessions.add(
                        hash_token(token),
                        ids[i % users],
                        now,
                        now + timedelta(minutes=30),
                        now + timedelta(hours=12),
                        ClientInfo("127.0.0.1", "bench"),
                    )
                    cookies.append(f"{COOKIE}={token}")
                await tx.commit()
            return cookies

    return asyncio.run(make())


def fill_sessions(db_url: str, rows: int, expired: bool) -> None:
    """Add ``rows`` session rows straight into the database (live or long expired)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now - timedelta(days=3) if expired else now
    end = now - timedelta(days=2) if expired else now + timedelta(hours=12)
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        asyncio.run(_fill_postgres(url, rows, start, end))
        return
    stamp = lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731 - SQLite's format
    db = sqlite3.connect(url.database or "")
    user_id = db.execute("SELECT id FROM authdemo_users LIMIT 1").fetchone()[0]
    batch = 50_000
    for offset in range(0, rows, batch):
        db.executemany(
            "INSERT INTO authdemo_sessions (token_hash, user_id, created_at, last_seen_at,"
            " idle_expires_at, absolute_expires_at, client_addr, user_agent)"
            " VALUES (?, ?, ?, ?, ?, ?, '127.0.0.1', 'bench')",
            (
                (secrets.token_hex(32), user_id, stamp(start), stamp(start), stamp(end), stamp(end))
                for _ in range(min(batch, rows - offset))
            ),
        )
        db.commit()
    db.close()


async def _fill_postgres(url: URL, rows: int, start: datetime, end: datetime) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        user_id = await conn.fetchval("SELECT id FROM authdemo_users LIMIT 1")
        # Two md5s make a unique-enough 64-hex-digit token hash.
        await conn.execute(
            "INSERT INTO authdemo_sessions (token_hash, user_id, created_at, last_seen_at,"
            " idle_expires_at, absolute_expires_at, client_addr, user_agent)"
            " SELECT md5(g::text || random()::text) || md5(random()::text || g::text),"
            " $1, $2, $2, $3, $3, '127.0.0.1', 'bench' FROM generate_series(1, $4) AS g",
            user_id,
            start.replace(tzinfo=UTC),
            end.replace(tzinfo=UTC),
            rows,
        )
    finally:
        await conn.close()
