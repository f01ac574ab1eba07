"""``python -m bench.permission_cost``: what one permission check costs.

Three rows, each the median of ``--rounds`` rounds of ``--checks`` checks by one
signed-in user who holds three roles (eight patterns, two of them prefixes):

- ``Grants.allows`` — matching alone, on grants compiled once (what ``use_permission``
  does per render: nothing else);
- ``@requires`` / ``AuthService.permitted`` — what every guarded event costs: one
  statement reading the session with its user and the user's patterns;
- ``has_permission`` / ``AuthService.user_has_permission`` — an HTTP route's check
  (the session was resolved by ``current_user`` already);
- for scale, ``AuthService.live_session``: the one-statement session re-read a view
  makes anyway (one read-only transaction, no permission involved).

Wall time per check, on one event loop, nothing else running; SQLite in a temporary
file, and PostgreSQL with ``--postgres URL`` (an empty database; it is migrated).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.permissions import Grants, Permission, PermissionRegistry
from authdemo.security import hash_token
from authdemo.service import AuthService
from bench.prep import fresh_postgres, migrate

DECLARED = PermissionRegistry(
    [Permission(f"{r}:{a}", "") for r in ("notes", "todo", "files") for a in ("read", "write")]
)
ROLES = {
    "reader": ["notes:read", "todo:read", "files:read"],
    "editor": ["notes:*", "todo:write"],
    "files": ["files:*", "files:write", "notes:write"],
}


async def sign_in_with_roles(service: AuthService) -> tuple[int, int]:
    """User "bench" holding ``ROLES``, signed in: (session id, user id)."""
    await service.create_user("bench", "correct horse")
    for name, patterns in ROLES.items():
        await service.create_role(name, patterns)
        await service.grant_role("bench", name)
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "bench", "correct horse", ClientInfo())
    return result.signed_in.session.id, result.signed_in.user.id


async def _timed(check: Callable[[], Awaitable[object]], checks: int) -> float:
    started = time.perf_counter()
    for _ in range(checks):
        await check()
    return (time.perf_counter() - started) / checks * 1e6


async def measure(url: str, checks: int, rounds: int) -> dict[str, float]:
    async with runtime(Settings(database_url=url), permissions=DECLARED) as rt:
        service = rt.service
        session_id, user_id = await sign_in_with_roles(service)
        grants = await service.grants_of(user_id)

        async def match() -> bool:
            return grants.allows("files:write")

        rows: dict[str, list[float]] = {"match": [], "requires": [], "route": [], "reread": []}
        for _ in range(rounds):
            rows["match"].append(await _timed(match, checks * 100) if checks else 0.0)
            rows["requires"].append(
                await _timed(lambda: service.permitted(session_id, "files:write"), checks)
            )
            rows["route"].append(
                await _timed(lambda: service.user_has_permission(user_id, "files:write"), checks)
            )
            rows["reread"].append(await _timed(lambda: service.live_session(session_id), checks))
        return {name: statistics.median(values) for name, values in rows.items()}


def report(backend: str, figures: dict[str, float]) -> None:
    print(f"{backend}:")
    print(f"  Grants.allows (compiled once)          {figures['match']:9.2f} µs per check")
    print(f"  @requires (AuthService.permitted)      {figures['requires']:9.1f} µs per check")
    print(f"  has_permission (user_has_permission)   {figures['route']:9.1f} µs per check")
    print(f"  for scale: a session re-read           {figures['reread']:9.1f} µs per read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL")
    args = parser.parse_args()
    assert Grants.of(["*"]).allows("files:write")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        report("SQLite", asyncio.run(measure(url, args.checks, args.rounds)))
    if args.postgres:  # a plain postgresql:// server URL; measured on a fresh database
        with fresh_postgres(args.postgres) as pg:
            report("PostgreSQL", asyncio.run(measure(pg, args.checks, args.rounds)))


if __name__ == "__main__":
    main()
