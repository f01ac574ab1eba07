"""``python -m bench.run``: authdemo next to bare Sanic, measured in the same run.

Starts the reference apps and authdemo on free ports of this machine, drives each with
the same load, alternating targets, repeated; prints a table of medians and ratios and
writes it as JSON (default ``bench/results/latest.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from contextlib import ExitStack, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.load import http_load, ws_connect_storm

ROOT = Path(__file__).resolve().parents[1]
COOKIE = "__Host-authdemo_session"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logdir / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, *argv, "--port", str(self.port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{self.log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def prepare_database(workdir: Path) -> tuple[str, str]:
    """A migrated SQLite file with one user; returns (url, signed-in cookie token)."""
    from authdemo.bootstrap import runtime
    from authdemo.config import Settings
    from authdemo.domain import ClientInfo
    from authdemo.security import hash_token

    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "AUTHDEMO_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )

    async def sign_in() -> str:
        async with runtime(Settings(database_url=url)) as rt:
            await rt.service.create_user("bench", "bench password")
            anonymous = rt.service.new_token()
            result = await rt.service.login(
                hash_token(anonymous), "bench", "bench password", ClientInfo("127.0.0.1", "bench")
            )
            return (await rt.service.redeem_ticket(result.ticket, anonymous)).token

    return url, asyncio.run(sign_in())


def machine() -> dict[str, Any]:
    cpu = ""
    with suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{p: version(p) for p in ("sanic", "idom", "sqlalchemy", "aiosqlite", "websockets")},
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(seconds: float, repeat: int, concurrency: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = defaultdict(list)
    extra: dict[str, Any] = defaultdict(int)
    with tempfile.TemporaryDirectory(prefix="authdemo-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        db_url, token = prepare_database(workdir)
        env = {"AUTHDEMO_DATABASE_URL": db_url}
        procs = {
            kind: Proc(kind, ["-m", "bench.serve", kind], {}, workdir)
            for kind in ("bare", "inmemory", "bridge")
        }
        procs["authdemo"] = Proc("authdemo", ["-m", "authdemo", "run"], env, workdir)
        for proc in procs.values():
            stack.callback(proc.stop)
        # A returning in-memory visitor needs a session the reference app knows.
        with urllib.request.urlopen(procs["inmemory"].url + "/") as response:
            inmemory_cookie = response.headers["Set-Cookie"].split(";")[0]
        cookies = {
            "bare": f"{COOKIE}={token}",
            "inmemory": inmemory_cookie,
            "authdemo": f"{COOKIE}={token}",
        }
        for round_ in range(repeat):
            order = ["bare", "inmemory", "authdemo"]
            if round_ % 2:
                order.reverse()  # alternate, so that drift over time hits everyone alike
            for target in order:
                first = http_load(procs[target].url + "/", seconds=seconds)
                samples[f"anon:{target}"].append(first.requests_per_s)
                extra[f"anon_errors:{target}"] += first.errors
                back = http_load(procs[target].url + "/", seconds=seconds, cookie=cookies[target])
                samples[f"signed:{target}"].append(back.requests_per_s)
                extra[f"signed_errors:{target}"] += back.errors
                extra["http_tool"] = first.tool
            for target, cookie in (("bridge", None), ("authdemo", cookies["authdemo"])):
                storm = asyncio.run(
                    ws_connect_storm(
                        procs[target].url, seconds=seconds, concurrency=concurrency, cookie=cookie
                    )
                )
                samples[f"ws:{target}"].append(storm.connects_per_s)
                extra[f"ws_dropped:{target}"] += storm.dropped
                extra[f"ws_completed:{target}"] += storm.completed
    results = {key: median(values) for key, values in samples.items()}
    return {
        "machine": machine(),
        "seconds": seconds,
        "repeat": repeat,
        "concurrency": concurrency,
        "medians": results,
        "samples": dict(samples),
        "counts": dict(extra),
    }


def table(report: dict[str, Any]) -> str:
    m = report["medians"]
    c = report["counts"]

    def ratio(a: str, b: str) -> str:
        return f"{m[a] / m[b]:.2f}×" if m.get(b) else "—"

    rows = [
        "| figure | reference | in-memory example | authdemo | authdemo ÷ reference | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| anonymous first visit, GET / req/s | bare {m['anon:bare']:,.0f} | {m['anon:inmemory']:,.0f} "
        f"({ratio('anon:inmemory', 'anon:bare')}) | {m['anon:authdemo']:,.0f} | "
        f"{ratio('anon:authdemo', 'anon:bare')} | ≥ 0.9× |",
        f"| returning signed-in visitor, GET / req/s | bare {m['signed:bare']:,.0f} | "
        f"{m['signed:inmemory']:,.0f} ({ratio('signed:inmemory', 'signed:bare')}) | "
        f"{m['signed:authdemo']:,.0f} | {ratio('signed:authdemo', 'signed:bare')} | ≥ 0.7× |",
        f"| websocket connect + first signed-in render @{report['concurrency']}, /s | "
        f"bridge {m['ws:bridge']:,.0f} (dropped {c.get('ws_dropped:bridge', 0)}) | — | "
        f"{m['ws:authdemo']:,.0f} (dropped {c.get('ws_dropped:authdemo', 0)}) | "
        f"{ratio('ws:authdemo', 'ws:bridge')} | ≥ 0.8×, 0 dropped |",
    ]
    mach = report["machine"]
    rows.append("")
    rows.append(
        f"{mach['cores']} cores, {mach['cpu']}; Python {mach['python']}, sanic {mach['sanic']}, "
        f"idom {mach['idom']}, SQLAlchemy {mach['sqlalchemy']}; HTTP load: "
        f"{c.get('http_tool')}, 64 connections; {report['seconds']} s per sample, "
        f"{report['repeat']} rounds, medians."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each sample")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (targets alternate)")
    parser.add_argument("--concurrency", type=int, default=50, help="websocket clients")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    report = run(args.seconds, args.repeat, args.concurrency)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
