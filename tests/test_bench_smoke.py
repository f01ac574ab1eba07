"""The benchmark keeps working: every row runs at tiny sizes (figures are not checked)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import DOCS_END, DOCS_START, into_page, shown_command
from tests.support.db import ROOT
from tests.support.priority import lowest

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_every_row_at_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    page = tmp_path / "performance.md"
    page.write_text(f"# Before\n\n{DOCS_START}\n\nan old table\n\n{DOCS_END}\n\nAfter\n")
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out), "--docs", str(page)],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lowest,  # its load is for figures nobody checks here, not for the other worker
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["row"] for row in report["rows"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert all(row["authdemo"] for row in report["rows"])
    cpu = {row["row"]: row["cpu"] for row in report["rows"]}
    assert all(" ms" in cpu[n] for n in (1, 2, 3, 5, 7, 9, 10)), cpu  # server CPU per operation
    assert "| 7 |" in result.stdout
    if os.environ.get("AUTHDEMO_TEST_POSTGRES_URL"):  # row 7's purge on PostgreSQL too
        assert "PostgreSQL: purge of" in report["rows"][6]["authdemo"], report["rows"][6]
        for feature in report["rows"][8:10]:  # rows 9 and 10 on both databases
            assert "PostgreSQL" in feature["authdemo"], feature
    churn = report["rows"][7]  # row 8: authdemo and the bridge, the cycles counted
    assert "100 cycles" in churn["authdemo"] and "100 cycles" in churn["reference"], churn
    reactpy = next(row for row in report["rows"] if row["row"] == 3)["reactpy"]
    assert "ReactPy's own Sanic backend" in reactpy and "dropped" in reactpy
    # The page got the table, saying which command on which machine, and kept the rest.
    written = page.read_text()
    assert written.startswith(f"# Before\n\n{DOCS_START}\n\nFigures from one run of ")
    assert f"`python -m bench.run --quick --json {out}` on " in written
    assert "load average " in written and "an old table" not in written
    assert written.endswith(f"| 7 |{written.split('| 7 |')[1]}")
    assert written.count("| 7 |") == 1 and written.endswith(f"{DOCS_END}\n\nAfter\n")


def test_the_performance_page_has_the_place_the_bench_writes_its_table_into() -> None:
    page = (ROOT / "docs" / "performance.md").read_text()
    assert into_page(page, "NEW").count("NEW") == 1
    header = "| # | figure | reference |"
    assert header in page and header not in into_page(page, "NEW")  # the old table goes


def test_the_table_goes_between_the_markers_and_nowhere_else() -> None:
    page = f"a\n{DOCS_START}\nold\n{DOCS_END}\nb\n"
    assert into_page(page, "new") == f"a\n{DOCS_START}\n\nnew\n\n{DOCS_END}\nb\n"
    for broken in ("no markers", f"{DOCS_END} {DOCS_START}", f"only {DOCS_START}"):
        with pytest.raises(SystemExit, match=r"no .* pair to write into"):
            into_page(broken, "new")


def test_the_command_shown_is_the_one_run_without_where_it_was_written() -> None:
    argv = ["--rows", "1,2", "--docs", "docs/performance.md", "--seconds", "5"]
    assert shown_command(argv) == "python -m bench.run --rows 1,2 --seconds 5"
    assert shown_command(["--docs=x.md", "--quick"]) == "python -m bench.run --quick"
    assert shown_command(["--json", "a b.json"]) == "python -m bench.run --json 'a b.json'"


def test_the_sql_overhead_bench_measures_every_layer() -> None:
    argv = [sys.executable, "-m", "bench.sql_overhead", "--statements", "40", "--rounds", "1"]
    postgres = os.environ.get("AUTHDEMO_TEST_POSTGRES_URL")
    result = subprocess.run(
        argv, cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    layers = ["sqlite3 (synchronous)", "aiosqlite", "AsyncConnection", "(ORM entity)"]
    layers += ["UPDATE built per call (ORM)", "UPDATE built once (ORM)", "UPDATE built once (Core)"]
    layers += ["one-trip adapter"]
    layers += ["PostgreSQL", "asyncpg"] if postgres else []
    assert all(layer in result.stdout for layer in layers), result.stdout
    assert result.stdout.count("µs CPU per statement") == (17 if postgres else 10), result.stdout


def test_the_permission_cost_bench_measures_every_row() -> None:
    argv = [sys.executable, "-m", "bench.permission_cost", "--checks", "5", "--rounds", "1"]
    postgres = os.environ.get("AUTHDEMO_TEST_POSTGRES_URL")  # a plain server URL, as documented
    argv += ["--postgres", postgres] if postgres else []
    result = subprocess.run(
        argv, cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("µs per check") == (6 if postgres else 3), result.stdout
    assert "session re-read" in result.stdout


def test_the_purge_writes_bench_times_writes_until_the_purge_ends() -> None:
    argv = [sys.executable, "-m", "bench.purge_writes", "--rows", "3000", "--every", "0.01"]
    result = subprocess.run(
        argv, cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "purge of 3,000 expired rows:" in result.stdout, result.stdout
    assert re.search(r"; [1-9]\d* writes: p50 \d+ ms, p99 \d+ ms", result.stdout), result.stdout


def test_the_machine_is_read_before_the_rows_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caption's time, commit and "load average before it" are read before the
    first row starts, not after the last one ends."""
    import argparse

    from bench import run as bench_run

    calls: list[str] = []
    monkeypatch.setattr(bench_run, "machine", lambda: calls.append("machine") or {"at": 0})

    def row(workdir: Path, operations: int, rounds: int, postgres: str | None) -> list:
        calls.append("row")
        return [{"row": 9}]

    monkeypatch.setattr(bench_run, "feature_costs", row)
    args = argparse.Namespace(rows=[9], operations=1, repeat=1, postgres=None)
    report = bench_run.run(args)
    assert calls == ["machine", "row"]
    assert report["machine"] == {"at": 0} and report["rows"] == [{"row": 9}]


def test_the_reset_timing_bench_compares_known_and_unknown_addresses() -> None:
    argv = [sys.executable, "-m", "bench.reset_timing", "--rounds", "3"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("floor")]
    assert len(lines) == 2, result.stdout
    assert all("known" in line and "unknown" in line and "difference" in line for line in lines)


def test_the_statement_count_bench_counts_every_step_of_a_cycle() -> None:
    argv = [sys.executable, "-m", "bench.statements"]
    postgres = os.environ.get("AUTHDEMO_TEST_POSTGRES_URL")
    result = subprocess.run(
        argv, cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {
        line.rsplit(None, 2)[0]: int(line.rsplit(None, 2)[1])
        for line in result.stdout.splitlines()
        if line.startswith(("page", "connect", "sign-"))
    }
    assert counts["page (first visit)"] == 0, result.stdout  # no database on a first visit
    assert counts["page (returning)"] >= 1  # the cookie is looked up
    assert counts["sign-in + ticket + held + signed-in render"] > 0
    assert counts["sign-out"] > 0
    assert "one sign-in cycle" in result.stdout
    if postgres:
        on_pg = subprocess.run(
            [*argv, "--postgres", postgres],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert on_pg.returncode == 0, on_pg.stderr[-3000:]
        assert "one sign-in cycle" in on_pg.stdout


def test_the_memory_profile_names_authdemos_share_per_connection() -> None:
    argv = [sys.executable, "-m", "bench.memory_profile", "--connections", "10", "--top", "40"]
    argv += ["--settle", "0.2"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    header = result.stdout.splitlines()[0]
    assert header.startswith("Python objects per connection: authdemo"), result.stdout
    assert "authdemo's share" in header
    by_file = result.stdout.split("by file")[1].split("by line")[0]
    assert "authdemo/ui/connection/lifecycle.py" in by_file, result.stdout  # the view itself
