"""One log format: authdemo's records and Sanic's, with time, level and logger name on
every line; a websocket's open and close not at INFO."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.db import copy_database
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


async def test_authdemo_run_writes_every_line_in_one_format(
    tmp_path: Path, migrated_template: Path
) -> None:
    url = copy_database(migrated_template, tmp_path / "app.db")
    server = ServerProcess(url, tmp_path / "server.log").start()
    try:
        for _ in range(2):  # page views open and close websockets
            client = await IdomClient.connect(server.base_url)
            await client.close()
    finally:
        server.stop()
    lines = [line for line in (tmp_path / "server.log").read_text().splitlines() if line]
    lines = [line for line in lines if not line.startswith("authdemo serving on ")]
    assert any("sanic.server: Starting worker" in line for line in lines), lines
    assert [line for line in lines if not LINE.match(line)] == []
    assert not any("connection closed" in line or "connection open" in line for line in lines)


def run_app(script: str, tmp_path: Path) -> str:
    prelude = (
        "import logging\n"
        "from authdemo import Settings, create_app\n"
        f"app = create_app(Settings(database_url='sqlite+aiosqlite:///{tmp_path}/x.db'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


def test_in_an_app_without_logging_configured_authdemos_warnings_carry_level_and_name(
    tmp_path: Path,
) -> None:
    err = run_app("logging.getLogger('authdemo.http.app').warning('careful')\n", tmp_path)
    (line,) = err.splitlines()
    assert LINE.match(line) and line.endswith(" WARNING authdemo.http.app: careful"), err


def test_an_app_that_configures_logging_gets_authdemos_records_once_in_its_format(
    tmp_path: Path,
) -> None:
    err = run_app(
        "logging.basicConfig(format='APP %(levelname)s %(name)s %(message)s')\n"
        "logging.getLogger('authdemo.http.app').warning('careful')\n",
        tmp_path,
    )
    assert err.splitlines() == ["APP WARNING authdemo.http.app careful"], err
