"""PostgreSQL's connection budget: will the connections of one more host fit?

Each ``authdemo run`` host opens one listener (``authdemo-listen``) straight to
PostgreSQL, and per worker a query pool (``authdemo``): straight to PostgreSQL too, or to
PgBouncer, whose server pool is then what PostgreSQL sees. ``authdemo run`` reads the
server's limits and who is connected, counts the hosts by their listeners to its own
database, and says in one line when all of them at full pools would not fit, rather than
failing later with "too many clients". An estimate, for the operator: nothing is refused
on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import DEFAULT_POOL, Settings
from .engine import APPLICATION_NAME
from .notify import APPLICATION_NAME as LISTEN_NAME

SQLALCHEMY_DEFAULT_POOL = 5 + 10
"""SQLAlchemy's default: 5 connections kept, 10 more in a burst."""

_COUNTS = text(
    """
    SELECT current_setting('max_connections')::int,
           current_setting('superuser_reserved_connections')::int
             + coalesce(current_setting('reserved_connections', true), '0')::int,
           count(*) FILTER (WHERE ours AND application_name = :listen),
           count(*) FILTER (WHERE ours AND application_name = :query),
           count(*) FILTER (WHERE NOT (ours AND application_name IN (:listen, :query)))
    FROM (
        SELECT application_name, (datname = current_database()) IS TRUE AS ours
        FROM pg_stat_activity WHERE backend_type = 'client backend'
    ) AS clients
    """
)
"""Hosts and pools are counted in this database only: the listeners and pools of another
database on the same server (another app, another test run) are not this app's hosts,
but they do take connections, so they count among the others, one for one."""


def pool_limit(pool: int | None) -> int | None:
    """The most connections one worker's pool opens (None: no limit, ``NullPool``)."""
    if pool is None:
        return None
    return SQLALCHEMY_DEFAULT_POOL if pool == DEFAULT_POOL else pool


@dataclass(frozen=True)
class ConnectionBudget:
    workers: int
    pool: int | None
    """Per worker, at most (None: unbounded)."""
    pooler: bool
    """Queries go through PgBouncer: they cost PostgreSQL its server pool, not ours."""
    hosts: int
    """authdemo hosts, this one included."""
    pooled: int
    """``authdemo`` query connections to this database open now."""
    others: int
    """Connections of anything else on the server (other databases included), now."""
    max_connections: int
    reserved: int

    @property
    def per_host(self) -> int | None:
        """Connections one host opens straight to PostgreSQL, at most."""
        if self.pooler:
            return 1
        return None if self.pool is None else 1 + self.workers * self.pool

    @property
    def available(self) -> int:
        return self.max_connections - self.reserved

    @property
    def needed(self) -> int | None:
        if self.per_host is None:
            return None
        queries = self.pooled if self.pooler else 0  # PgBouncer's server pool, as it is
        return self.hosts * self.per_host + queries + self.others

    def warning(self) -> str | None:
        """One line when the hosts' connections may not fit, else None."""
        needed = self.needed
        if needed is None:
            return (
                "PostgreSQL connection budget: AUTHDEMO_DB_POOL=null straight to PostgreSQL "
                "opens a connection per request with no limit; set a pool size, or put "
                "PgBouncer in front (README: PostgreSQL and several hosts)"
            )
        if needed <= self.available:
            return None
        if self.pooler:
            shape = f"{self.hosts} listener(s) + {self.pooled} PgBouncer server connection(s)"
        else:
            shape = (
                f"{self.hosts} host(s) x (1 listener + {self.workers} worker(s) x "
                f"{self.pool} pooled)"
            )
        return (
            f"PostgreSQL connection budget does not fit: {shape} + {self.others} other "
            f"= {needed} connections, max_connections {self.max_connections} - "
            f"{self.reserved} reserved = {self.available}; expect 'too many clients' "
            "(README: PostgreSQL and several hosts)"
        )


async def read_budget(engine: AsyncEngine, settings: Settings, workers: int) -> ConnectionBudget:
    """The budget of this host joining the server's current connections."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(_COUNTS, {"listen": LISTEN_NAME, "query": APPLICATION_NAME})
        ).one()
    max_connections, reserved, listeners, pooled, others = (int(v) for v in row)
    return ConnectionBudget(
        workers=workers,
        pool=pool_limit(settings.db_pool),
        pooler=settings.behind_pooler,
        hosts=listeners + 1,
        pooled=pooled,
        others=others,
        max_connections=max_connections,
        reserved=reserved,
    )
