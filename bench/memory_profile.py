"""``python -m bench.memory_profile``: where authdemo's memory per open view goes.

Row 4 of ``bench.run`` measures RSS; this says which lines allocate it. It runs the
bridge with a one-element root twice, with and without authdemo around it (the row's
``tiny`` and ``authtiny`` apps), each in a server process under ``tracemalloc``, opens
``--connections`` websockets (signed in, one user each, for authdemo), and prints the
Python objects each connection added, authdemo's run minus the bare one: by file, then
by line. Snapshots are taken after a warm-up and after the connections opened, both
after a garbage collection; the server takes one when a file it watches appears.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import httpx

from bench.prep import migrate, signed_in_cookies
from bench.procs import free_port
from bench.scenarios import sqlite_url
from tests.support.idom_client import IdomClient

FRAMES = 15
_IGNORED = [
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
]


def serve(kind: str, port: int, signals: Path) -> None:
    """The server: ``kind`` from bench.apps, a snapshot per ``signals/N`` that appears."""
    from sanic import Sanic

    from bench.apps import FACTORIES

    app = FACTORIES[kind]()
    # Traced from here: what connections allocate comes after, and the imports and the
    # app traced too made each snapshot several times larger and the run 3x slower.
    tracemalloc.start(FRAMES)

    async def snapshots() -> None:
        taken = 0
        while True:
            await asyncio.sleep(0.2)
            if (signals / str(taken)).exists():
                gc.collect()
                tracemalloc.take_snapshot().dump(str(signals / f"{taken}.part"))
                os.rename(signals / f"{taken}.part", signals / f"{taken}.snapshot")
                taken += 1

    @app.after_server_start
    async def watch(app: Sanic) -> None:  # type: ignore[type-arg]
        app.add_task(snapshots())

    app.prepare(host="127.0.0.1", port=port, single_process=True, motd=False, access_log=False)
    Sanic.serve_single(primary=app)


def measure(
    kind: str, cookies: list[str | None], env: dict[str, str], work: Path, settle: float = 1.0
) -> Path:
    """Run ``kind``, open the connections, return the folder of its two snapshots
    (``settle`` seconds after the warm-up, twice that after the connections open)."""
    signals = work / kind
    signals.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.memory_profile", "--serve", kind, str(port), str(signals)],
        env={**os.environ, **env},
        stdout=(work / f"{kind}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def snapshot(number: int) -> None:
        (signals / str(number)).touch()
        while not (signals / f"{number}.snapshot").exists():
            if server.poll() is not None:
                raise RuntimeError((work / f"{kind}.log").read_text())
            time.sleep(0.2)

    async def run() -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                await (await IdomClient.connect(base, cookie=cookies[0])).close()
                break
            except (OSError, httpx.TransportError):  # not listening yet
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        for cookie in cookies[1:5]:  # warm up: imports, caches, first renders
            await (await IdomClient.connect(base, cookie=cookie)).close()
        await asyncio.sleep(settle)
        snapshot(0)
        gate = asyncio.Semaphore(50)
        clients: list[IdomClient] = []

        async def open_one(cookie: str | None) -> None:
            async with gate:
                client = await IdomClient.connect(base, cookie=cookie, timeout=60)
                await client.wait_for_id("hello", timeout=60)
                clients.append(client)

        await asyncio.gather(*(open_one(cookie) for cookie in cookies[5:]))
        await asyncio.sleep(2 * settle)
        snapshot(1)
        for client in clients:
            await client.close()

    try:
        asyncio.run(run())
    finally:
        server.terminate()
        server.wait()
    return signals


def growth(signals: Path, connections: int, key: str) -> dict[str, float]:
    """Bytes per connection added between the two snapshots, by ``key``."""
    before = tracemalloc.Snapshot.load(str(signals / "0.snapshot")).filter_traces(_IGNORED)
    after = tracemalloc.Snapshot.load(str(signals / "1.snapshot")).filter_traces(_IGNORED)
    grown: dict[str, float] = defaultdict(float)
    for stat in after.compare_to(before, key):
        frame = stat.traceback[0]
        name = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
        for prefix in (f"{sys.prefix}/lib/python3.11/site-packages/", f"{sys.base_prefix}/"):
            name = name.replace(prefix, "")
        grown[name] += stat.size_diff / connections
    return grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--top", type=int, default=25, help="lines to show")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds to rest before each snapshot"
    )
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), Path(args.serve[2]))
        return
    work = Path(tempfile.mkdtemp(prefix="authdemo-memory-"))
    url = sqlite_url(work / "memory.db")
    migrate(url)
    total = args.connections + 5
    limits = {"AUTHDEMO_WS_PER_ADDRESS": "1000000", "AUTHDEMO_DATABASE_URL": url}
    cookies = list(signed_in_cookies(url, total, users=total))
    auth = measure("authtiny", cookies, limits, work, args.settle)
    bare = measure("tiny", [None] * total, limits, work, args.settle)
    for key, heading in (("filename", "by file"), ("lineno", "by line")):
        mine, theirs = growth(auth, args.connections, key), growth(bare, args.connections, key)
        rows = sorted(((mine.get(k, 0) - theirs.get(k, 0), k) for k in mine | theirs), reverse=True)
        if key == "filename":
            print(
                f"Python objects per connection: authdemo {sum(mine.values()) / 1024:.1f} KiB,"
                f" bare bridge {sum(theirs.values()) / 1024:.1f} KiB,"
                f" authdemo's share {sum(r[0] for r in rows) / 1024:.1f} KiB"
            )
        print(f"\nauthdemo's share {heading} (bytes per connection):")
        for size, name in rows[: args.top]:
            print(f"{size:8.0f}  {name}")


if __name__ == "__main__":
    main()
