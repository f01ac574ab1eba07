"""SQLAlchemy's asyncpg adapter, its pool ping one round trip instead of three.

A pooled PostgreSQL engine pings each connection as it leaves the pool
(``pool_pre_ping``), so that a connection the server or the network dropped while it
sat there is replaced before a unit of work fails on it. SQLAlchemy's adapter
(``sqlalchemy.dialects.postgresql.asyncpg``, 2.1) pings in a transaction of its own:
``BEGIN``, an empty prepared statement, ``ROLLBACK``, three round trips to the server
before the unit of work's own first statement (the transaction is there for PgBouncer's
transaction mode, SQLAlchemy issue 10226: asyncpg prepares a statement and runs it in
two messages, which the pooler may give to two server connections).

Here the ping is one ``SELECT 1`` in PostgreSQL's simple query protocol
(``asyncpg.Connection.execute`` without arguments): one message, one round trip, nothing
prepared, so it is one transaction to PgBouncer too. A ping that fails goes through the
adapter's error handling as before, and a connection found closed is replaced by the
pool as before (``is_disconnect``). Everything else is SQLAlchemy's adapter as it is;
the engine is given this one as its DBAPI module (``create_async_engine(...,
module=adapter())``, SQLAlchemy's documented override), as ``aiosqlite_driver`` does for
SQLite.
"""

from __future__ import annotations

from typing import Any, cast

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_dbapi,
)

PING = "SELECT 1"


class OneTripPingConnection(AsyncAdapt_asyncpg_connection):
    """SQLAlchemy's asyncpg connection, pinged with one simple-protocol ``SELECT 1``."""

    __slots__ = ()

    async def _async_ping(self) -> None:
        await cast(asyncpg.Connection, self._connection).execute(PING)


class OneTripPingDbapi(AsyncAdapt_asyncpg_dbapi):
    """SQLAlchemy's asyncpg DBAPI adapter, its connections ``OneTripPingConnection``s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripPingConnection:
        settings = {
            "prepared_statement_cache_size": kw.get("prepared_statement_cache_size", 100),
            "prepared_statement_name_func": kw.get("prepared_statement_name_func"),
        }
        adapted = super().connect(*arg, **kw)  # type: ignore[no-untyped-call]
        return OneTripPingConnection(self, adapted._connection, **settings)  # type: ignore[no-untyped-call]


def adapter() -> OneTripPingDbapi:
    """The DBAPI module to give a ``postgresql+asyncpg`` engine (``module=adapter()``)."""
    return OneTripPingDbapi(asyncpg)  # type: ignore[no-untyped-call]
