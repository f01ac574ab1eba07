"""``python -m bench.signin_profile``: where a sign-in cycle's server CPU goes, by part.

Runs the README's example app in a process of its own, keeps ``--in-flight`` clients
signing in and out (each fetching its ticket image and the redirect, as a browser does)
and, while they do, measures the server's CPU time (``/proc``, all threads) and samples
it with py-spy (``pip install py-spy``; it needs ptrace, so root or
``kernel.yama.ptrace_scope=0``). Samples are taken from whichever thread holds the GIL
(``--gil``), so a thread waiting on a queue is never counted; argon2's own C code runs
without the GIL, so "verify" is measured apart (one verify's CPU, single thread) and the
rest of the cycle is split in proportion to the samples of each part.

Prints CPU milliseconds per sign-in cycle for: throttle (reservation and its read),
verify, session write (settling the attempt, the session, its ticket, audit, broadcast),
ticket redemption (``/_auth/ticket``), cookie held (``/_auth/held``), sign-out, the
renders and websocket traffic, the page and HTTP handling, the broadcast follower, the
SQL statements' own Python work (SQLAlchemy runs it in greenlets whose stacks do not
name the caller, so it is one line for all parts), and what is left (the event loop,
asyncio and aiosqlite plumbing).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.prep import PASSWORD, migrate, signed_in_cookies
from bench.procs import Proc
from bench.scenarios import CpuMeter, sqlite_url, verify_cpu_seconds
from tests.support.idom_client import IdomClient

# Part of the cycle -> the frames that mark it (the innermost match wins).
PARTS: dict[str, tuple[str, ...]] = {
    "throttle": ("SignIn._reserve", "SignIn._refuse_if_blocked", "SqlThrottleRepository"),
    "verify (Python side)": ("Argon2Hasher.verify", "CryptContext"),
    "credentials read": ("SqlUserRepository.get_credentials",),
    "session write": ("SignIn._settle", "SignIn._sign_in"),
    "ticket redemption": ("SignIn.redeem_ticket", "tickets.py"),
    "cookie held": ("SignIn.cookie_held",),
    "sign-out": ("Sessions.logout", "SignInFlow.logout"),
    "renders and websocket": ("idom/core", "bridge.py", "websockets/impl.py", "ui/components/"),
    "broadcast follower": ("BroadcastFollower",),
    # SQLAlchemy runs a statement's Python side in a greenlet whose stack starts at
    # the session, not at the caller: those samples are SQL work of every part.
    "SQL statements (SQLAlchemy AsyncSession in greenlets)": (
        "Session.execute",
        "Session.scalar",
        "Session.commit",
        "Session.flush",
        "Session.rollback",
        "Session.close",
    ),
    "page and HTTP handling": ("sanic/http", "pages.py", "middleware.py", "headers.py"),
}
ORDER = [*PARTS, "rest (event loop, asyncio and aiosqlite plumbing)"]


def classify(stack: str) -> str:
    """The part a sampled stack belongs to: the innermost frame that names one (a
    greenlet's stack by its outermost frame: the session call that started it)."""
    frames = stack.split(";")
    sql = PARTS["SQL statements (SQLAlchemy AsyncSession in greenlets)"]
    if frames and any(frames[0].startswith(mark + " ") for mark in sql):
        return "SQL statements (SQLAlchemy AsyncSession in greenlets)"
    for frame in reversed(frames):
        for part, marks in PARTS.items():
            if any(mark in frame for mark in marks):
                return part
    return ORDER[-1]


async def _sign_in_loop(proc: Proc, in_flight: int, seconds: float, spy: list[str]) -> int:
    done = 0
    stop = asyncio.Event()

    async def signer(user: str) -> None:
        nonlocal done
        client = await IdomClient.connect(proc.url)
        try:
            while not stop.is_set():
                await client.login(user, PASSWORD)
                await client.wait_for_id("logout", timeout=60)
                await client.click("logout")
                await client.wait_for_id("login-form", timeout=60)
                done += 1
        finally:
            await client.close()

    signers = [asyncio.create_task(signer(f"bench{i}")) for i in range(in_flight)]
    await asyncio.sleep(1)  # all of them busy
    sampler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = done
    await asyncio.sleep(seconds)
    count = done - started
    stop.set()
    await asyncio.gather(*signers, return_exceptions=True)
    sampler.wait()
    return count


def profile(in_flight: int, seconds: float, keep: Path | None = None) -> None:
    spy_bin = shutil.which("py-spy")
    if spy_bin is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="authdemo-signin-profile-") as tmp:
        workdir = Path(tmp)
        url = sqlite_url(workdir / "profile.db")
        migrate(url)
        signed_in_cookies(url, in_flight, users=in_flight)  # creates bench0..bench{n-1}
        env = {"AUTHDEMO_DATABASE_URL": url, "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": "1000000"}
        proc = Proc("profile", ["-m", "bench.serve", "example"], workdir, env)
        raw = workdir / "samples.txt"
        spy = [spy_bin, "record", "--gil", "-r", "250", "-f", "raw", "-o", str(raw)]
        spy += ["-d", str(int(seconds)), "-p", str(proc.proc.pid)]
        try:
            with CpuMeter(proc) as cpu:
                count = asyncio.run(_sign_in_loop(proc, in_flight, seconds, spy))
        finally:
            proc.stop()
        if keep is not None:
            shutil.copyfile(raw, keep)
        parts: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            parts[classify(stack)] += int(n)
    # The loop ran a little longer than the sampler and the CPU meter: per cycle,
    # both are close enough for a breakdown.
    per_cycle = cpu.seconds / max(count, 1) * 1000
    verify = verify_cpu_seconds() * 1000
    python_side = max(per_cycle - verify, 0.0)
    total = sum(parts.values()) or 1
    print(f"{count} sign-in cycles, {in_flight} in flight, {seconds:.0f} s")
    print(f"server CPU per cycle: {per_cycle:.1f} ms; one argon2id verify: {verify:.1f} ms")
    print("| part | CPU per cycle | share of samples |")
    print("|---|---|---|")
    print(f"| argon2id verify (C, measured apart) | {verify:.1f} ms | — |")
    for part in ORDER:
        share = parts[part] / total
        print(f"| {part} | {python_side * share:.1f} ms | {share:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--samples", type=Path, help="keep py-spy's raw samples here")
    args = parser.parse_args()
    started = time.monotonic()
    profile(args.in_flight, args.seconds, args.samples)
    print(f"(took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
