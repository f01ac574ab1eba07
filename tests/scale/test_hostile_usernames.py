"""Issue 13: hostile usernames through a real `authdemo run` process and the `authdemo`
command, on SQLite and PostgreSQL: never an exception in the server's log or out of the
command, and every failed sign-in leaves its throttle and audit rows."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from authdemo.bootstrap import runtime
from authdemo.cli import main
from authdemo.config import Settings
from authdemo.domain import address_key, fold_name
from tests.scale.conftest import create_users
from tests.support.db import in_thread
from tests.support.hostile import PASSWORDS, USERNAMES
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow
EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NO_BLOCKS = str(10**9)  # every attempt is a counted failure, none refused by a block


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        db_url,
        tmp_path / "server.log",
        env={
            "AUTHDEMO_WS_PER_ADDRESS": "1000",
            "AUTHDEMO_THROTTLE_ACCOUNT_FAILURES": NO_BLOCKS,
            "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": NO_BLOCKS,
        },
    ).start(meanwhile=lambda: create_users(db_url, "alice"))
    yield process
    process.stop()


async def sign_in_attempt(server: ServerProcess, username: str, password: str) -> None:
    async with await IdomClient.connect(server.base_url) as client:
        await client.login(username, password)
        await client.wait_for_id("login-error", timeout=20)


def rows(db_url: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(kind, username) of every audit row; failures of every throttle row."""

    async def read() -> tuple[list[tuple[str, str]], dict[str, int]]:
        async with runtime(Settings(database_url=db_url)) as rt:
            events = await rt.service.audit_events(None, 100_000)
            async with rt.uow() as tx:
                from sqlalchemy import select

                from authdemo.db.models import ThrottleRow

                found = await tx.throttle._s.execute(  # type: ignore[attr-defined]
                    select(ThrottleRow.key, ThrottleRow.failures)
                )
                throttle = {str(k): int(f) for k, f in found.all()}
        return [(str(e.kind), e.username) for e in events], throttle

    return in_thread(lambda: asyncio.run(read()))


def test_hostile_usernames_at_sign_in_are_answered_and_recorded(
    server: ServerProcess, db_url: str
) -> None:
    sent: list[str] = []

    @EXAMPLES
    @given(username=USERNAMES, password=PASSWORDS)
    def attempt(username: str, password: str) -> None:
        if fold_name(username) == "alice" and password == "correct horse":
            return  # the one pair that signs in
        asyncio.run(sign_in_attempt(server, username, password))
        sent.append(username)

    attempt()
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    events, throttle = rows(db_url)
    failed = [name for kind, name in events if kind == "login_failed"]
    assert len(failed) == len(sent)  # every attempt has its audit row...
    assert all(n == "alice" or re.fullmatch(r"unknown:[0-9a-f]{12}", n) for n in failed)
    assert throttle[address_key("127.0.0.1")] == len(sent)  # ...and its throttle rows
    accounts = {k: f for k, f in throttle.items() if k.startswith("account:")}
    assert sum(accounts.values()) == len(sent)
    assert len(accounts) == len({fold_name(n) for n in sent})


CLI_PASSWORDS = PASSWORDS.filter(lambda p: "\n" not in p and "\r" not in p).filter(
    lambda p: not any(unicodedata.category(c) == "Cs" for c in p)  # stdin is UTF-8
)


def test_hostile_usernames_at_create_user_exit_cleanly_in_one_line(db_url: str) -> None:
    runner = CliRunner()
    env = {"AUTHDEMO_DATABASE_URL": db_url}

    @EXAMPLES
    @given(username=USERNAMES, password=CLI_PASSWORDS)
    def attempt(username: str, password: str) -> None:
        result = runner.invoke(
            main,
            ["create-user", "--password-stdin", "--", username],
            input=password + "\n",
            env=env,
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert result.exit_code in (0, 1), result.output
        line = result.output.strip()
        assert "\n" not in line and "Traceback" not in line, result.output
        assert not any(unicodedata.category(c) == "Cc" for c in line), result.output

    in_thread(attempt)


def test_a_name_too_long_once_folded_gets_the_generic_answer_on_the_page(
    server: ServerProcess, db_url: str
) -> None:
    """The case from the report: six attempts, each recorded, none an error."""
    for i in range(6):
        asyncio.run(sign_in_attempt(server, "ß" * 63 + str(i), "whatever pw"))
    assert "Traceback" not in server.log() and "ERROR" not in server.log()
    events, _ = rows(db_url)
    assert sum(kind == "login_failed" for kind, _ in events) == 6
