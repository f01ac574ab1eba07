"""``python -m bench.run``: what authentication costs, next to references, in one run.

Starts the references (bare Sanic, the original in-memory session example, authdemo's
bridge without auth) and authdemo on free ports of this machine, drives them with the
same load (alternating, repeated, medians), and prints one row per target, also written
as JSON (default ``bench/results/latest.json``). ``--quick`` runs everything at tiny
sizes (the test suite's smoke test uses it); the figures it prints mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.feature_cost import feature_costs
from bench.procs import ROOT, machine

ALL_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def run(args: argparse.Namespace) -> dict[str, Any]:
    # 1,000 websockets and their server sockets need more than the usual 1,024 files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    # All the load comes from 127.0.0.1: lift the per-address websocket cap.
    os.environ["AUTHDEMO_WS_PER_ADDRESS"] = "1000000"
    os.environ["AUTHDEMO_THROTTLE_ADDRESS_FAILURES"] = "1000000"  # sign-ins in flight count
    started = machine()  # when, at which commit and how busy: before the run, not after
    rows: list[dict[str, Any]] = []
    chosen = set(args.rows)
    with tempfile.TemporaryDirectory(prefix="authdemo-bench-") as tmp:
        workdir = Path(tmp)
        if chosen & {1, 2, 3}:
            rows += [
                r
                for r in scenarios.ratios(workdir, args.seconds, args.repeat, args.concurrency)
                if r["row"] in chosen
            ]
        if 4 in chosen:
            rows += scenarios.memory(workdir, args.connections, args.hold, args.settle)
        if 5 in chosen:
            rows += scenarios.logins(workdir, args.seconds * 2)
        if 6 in chosen:
            rows += scenarios.revocation(workdir, args.trials, args.postgres)
        if 7 in chosen:
            rows += scenarios.large_table(workdir, args.large_rows, args.seconds, args.postgres)
        if 8 in chosen:
            rows += scenarios.churn(workdir, args.cycles, args.cycles // 10, args.concurrency)
        if chosen & {9, 10}:
            rows += [
                r
                for r in feature_costs(workdir, args.operations, args.repeat, args.postgres)
                if r["row"] in chosen
            ]
    return {
        "machine": started,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "http_tool": "wrk" if shutil.which("wrk") else "asyncio client",
        "rows": rows,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        "| # | figure | reference | in-memory example | authdemo | authdemo on ReactPy 1.1 "
        "| server CPU per operation | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        ratio = row["ratio"]
        shown = f"{ratio:.2f}×" if row["row"] in (1, 2, 3) else ""
        authdemo = f"{row['authdemo']}{' → ' + shown if shown else ''}"
        lines.append(
            f"| {row['row']} | {row['figure']} | {row['reference']} | {row['in_memory']} | "
            f"{authdemo} | {row.get('reactpy', '—')} | {row['cpu']} | {row['target']} | "
            f"{'yes' if row['met'] else 'no'} |"
        )
    m = report["machine"]
    s = report["settings"]
    lines += [
        "",
        f"{m['cores']} cores ({m['cpu']}), {m['platform']}; Python {m['python']}, sanic "
        f"{m['sanic']}, idom {m['idom']}, reactpy {m['reactpy']}, SQLAlchemy {m['sqlalchemy']}, aiosqlite "
        f"{m['aiosqlite']}, argon2-cffi {m['argon2-cffi']}. HTTP load: {report['http_tool']}, "
        f"64 connections, {s['seconds']} s per sample, {s['repeat']} alternating rounds, "
        "medians; SQLite unless said otherwise; one worker unless said otherwise.",
    ]
    return "\n".join(lines)


DOCS_START = "<!-- bench.run --docs: from here -->"
DOCS_END = "<!-- bench.run --docs: to here -->"


def caption(report: dict[str, Any], command: str) -> str:
    """Which run the table is from: the command, when, at which commit, how busy."""
    m = report["machine"]
    at = f", at {m['commit']}" if m.get("commit") else ""
    return (
        f"Figures from one run of `{command}` on {m['cores']} cores ({m['started']}{at}; "
        f"load average {m['load_before']} before it). Requests per second swing on a shared "
        "machine (read their ratios to ±0.05 for pages, ±0.1 for the rest); compare ratios "
        "and CPU per operation across runs, not absolute figures, and across machines not "
        "even those. Each target is the project's budget for that row."
    )


def shown_command(argv: list[str]) -> str:
    """The command line that made the figures, without where they were written."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--docs":
            skip = True
        elif not arg.startswith("--docs="):
            kept.append(shlex.quote(arg))
    return " ".join(["python -m bench.run", *kept])


def into_page(page: str, block: str) -> str:
    """``page`` with what lies between its two ``--docs`` markers replaced by ``block``."""
    start, end = page.find(DOCS_START), page.find(DOCS_END)
    if start < 0 or end < start:
        raise SystemExit(f"the page has no '{DOCS_START}' … '{DOCS_END}' pair to write into")
    return page[: start + len(DOCS_START)] + "\n\n" + block + "\n\n" + page[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--rows", type=lambda s: [int(x) for x in s.split(",")], default=ALL_ROWS)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each sample")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds")
    parser.add_argument("--concurrency", type=int, default=50, help="websocket clients")
    parser.add_argument("--connections", type=int, default=1000, help="websockets held (row 4)")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to hold them")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds a server rests before its memory is read (row 4; twice that after opening)",
    )
    parser.add_argument("--trials", type=int, default=50, help="revocations timed (row 6)")
    parser.add_argument("--large-rows", type=int, default=1_000_000, help="rows (row 7)")
    parser.add_argument(
        "--cycles",
        type=int,
        default=10_000,
        help="connect/close cycles (row 8; a tenth more first)",
    )
    parser.add_argument(
        "--operations",
        type=int,
        default=2000,
        help="permission checks and enqueues per round (rows 9 and 10)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AUTHDEMO_TEST_POSTGRES_URL"),
        help=(
            "PostgreSQL server for the two-host figure (row 6), the purge on PostgreSQL"
            " (row 7) and rows 9 and 10 beside SQLite (default: $AUTHDEMO_TEST_POSTGRES_URL)"
        ),
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--docs",
        type=Path,
        help=(
            "also write the table, with the command, time, commit and load, into this page"
            " between its two '--docs' markers (docs/performance.md)"
        ),
    )
    args = parser.parse_args()
    if args.docs is not None:
        into_page(args.docs.read_text(), "")  # no markers: say so before the long run
    if args.quick:
        args.seconds, args.repeat, args.concurrency = 0.5, 1, 5
        args.connections, args.hold, args.trials, args.large_rows = 20, 0.5, 3, 3000
        args.cycles, args.operations = 100, 20
        args.settle = 0.2
    report = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"\nJSON: {args.json}")
    if args.docs is not None:
        block = caption(report, shown_command(sys.argv[1:])) + "\n\n" + table(report)
        args.docs.write_text(into_page(args.docs.read_text(), block))
        print(f"written into {args.docs}")


if __name__ == "__main__":
    main()
