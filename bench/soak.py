"""``python -m bench.soak``: 200 tabs signing in and out for 60 s against ``--workers 2``.

The suite runs a short version (tests/scale/test_concurrency.py); this is the long one.
Prints what happened; exits 1 on any server error, dropped connection or
'database is locked'.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.prep import migrate, signed_in_cookies
from bench.procs import Proc
from tests.scale.test_concurrency import sign_in_and_out


async def soak(base_url: str, clients: int, seconds: float) -> Counter[str]:
    stats: Counter[str] = Counter()
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(
            *(sign_in_and_out(base_url, f"bench{i}", until, http, stats) for i in range(clients))
        )
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/soak.db"
        migrate(url)
        signed_in_cookies(url, 0, users=args.clients)
        server = Proc(
            "soak",
            ["-m", "authdemo", "run", "--workers", str(args.workers)],
            Path(tmp),
            {  # every tab is 127.0.0.1, an office behind one NAT: limits as the README says
                "AUTHDEMO_DATABASE_URL": url,
                "AUTHDEMO_WS_PER_ADDRESS": "100000",
                "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": "100000",
            },
        )
        try:
            stats = asyncio.run(soak(server.url, args.clients, args.seconds))
            log = server.log.read_text()
        finally:
            server.stop()
    saved = Path(__file__).parent / "results" / "soak-server.log"
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(log)
    bad = [k for k in stats if k.startswith(("dropped", "refused", "ticket 5"))]
    locked = log.count("database is locked")
    print(dict(stats))
    print(
        f"{stats['signed in'] / args.seconds:.1f} sign-ins/s; problems: {bad or 'none'}; "
        f"'database is locked' in the log: {locked}; tracebacks: {log.count('Traceback')} "
        f"(server log: {saved})"
    )
    sys.exit(1 if bad or locked else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
