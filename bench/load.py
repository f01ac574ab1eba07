"""Load generators: wrk for HTTP (an asyncio client when wrk is missing), and the
``websockets`` library speaking IDOM's protocol for websocket connects."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import websockets


@dataclass
class HttpResult:
    requests_per_s: float
    p99_ms: float | None
    errors: int
    tool: str
    requests: int = 0
    """How many requests were answered (what server CPU time is divided by)."""


def http_load(
    url: str, *, seconds: float, connections: int = 64, cookie: str | None = None
) -> HttpResult:
    if shutil.which("wrk"):
        return _wrk(url, seconds=seconds, connections=connections, cookie=cookie)
    return asyncio.run(_asyncio_http(url, seconds=seconds, connections=connections, cookie=cookie))


def _wrk(url: str, *, seconds: float, connections: int, cookie: str | None) -> HttpResult:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99_ms = None
    if p99:
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return HttpResult(rps, p99_ms, errors, "wrk", total)


async def _asyncio_http(
    url: str, *, seconds: float, connections: int, cookie: str | None
) -> HttpResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if cookie:
        request += f"Cookie: {cookie}\r\n"
    payload = (request + "\r\n").encode()
    deadline = time.monotonic() + seconds
    done = errors = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection(host, port)
        while time.monotonic() < deadline:
            started = time.monotonic()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.monotonic() - started)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
            done += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None
    return HttpResult(done / elapsed, p99, errors, "asyncio", done)


@dataclass
class WsResult:
    connects_per_s: float
    completed: int
    dropped: int


async def ws_connect_storm(
    base_url: str,
    *,
    seconds: float,
    concurrency: int = 50,
    cookie: str | None = None,
    ui: str = "idom",
) -> WsResult:
    """``concurrency`` clients, each in a loop: open the websocket, wait for the first
    layout update (the first render), close. A connect that fails or closes before the
    first render counts as dropped. ``ui``: the server's library ("idom", "reactpy")."""
    deadline = time.monotonic() + seconds
    cycle = _cycle(base_url, ui)
    completed = dropped = 0

    async def client() -> None:
        nonlocal completed, dropped
        while time.monotonic() < deadline:
            if await cycle(cookie):
                completed += 1
            else:
                dropped += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return WsResult(completed / elapsed, completed, dropped)


async def ws_cycles(
    base_url: str, cookies: list[str], cycles: int, *, ui: str = "idom"
) -> WsResult:
    """``cycles`` websocket connect/close cycles, one client per cookie at once, each in a
    loop (``ws_connect_storm``, counted instead of timed)."""
    cycle = _cycle(base_url, ui)
    started_cycles = completed = dropped = 0

    async def client(cookie: str) -> None:
        nonlocal started_cycles, completed, dropped
        while started_cycles < cycles:
            started_cycles += 1
            if await cycle(cookie):
                completed += 1
            else:
                dropped += 1

    started = time.monotonic()
    await asyncio.gather(*(client(cookie) for cookie in cookies))
    return WsResult(completed / (time.monotonic() - started), completed, dropped)


def _cycle(base_url: str, ui: str) -> Callable[[str | None], Awaitable[bool]]:
    """One connect/close cycle against ``base_url``: open the websocket (with the cookie,
    if any), wait for the first layout update, close. True when the first render came."""
    ws_url = base_url.replace("http://", "ws://") + f"/_{ui}/stream"

    async def cycle(cookie: str | None) -> bool:
        headers = {"Origin": base_url, **({"Cookie": cookie} if cookie else {})}
        try:
            async with websockets.connect(
                ws_url, additional_headers=headers, origin=None, open_timeout=10
            ) as ws:
                first = await asyncio.wait_for(ws.recv(), 10)
                if '"layout-update"' not in str(first):
                    raise RuntimeError("unexpected first message")
        except (OSError, RuntimeError, TimeoutError, websockets.exceptions.WebSocketException):
            return False
        return True

    return cycle


async def latencies(
    url: str, *, seconds: float, connections: int = 4, cookie: str | None = None
) -> list[float]:
    """Seconds each GET took, with ``connections`` clients asking back to back."""
    import httpx

    headers = {"cookie": cookie} if cookie else {}
    deadline = time.monotonic() + seconds
    samples: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await http.get(url, headers=headers)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(connections)))
    return samples


def _probe(url: str, seconds: float, connections: int, cookie: str | None) -> list[float]:
    return asyncio.run(latencies(url, seconds=seconds, connections=connections, cookie=cookie))


async def latencies_elsewhere(
    url: str, *, seconds: float, connections: int = 4, cookie: str | None = None
) -> list[float]:
    """``latencies`` measured from a process of its own, so that other load generated in
    this process (and its event loop) cannot delay the probe and inflate its figures."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return await asyncio.get_running_loop().run_in_executor(
            pool, _probe, url, seconds, connections, cookie
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
