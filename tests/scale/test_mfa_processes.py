"""The same code sent at once through two workers and through two hosts (real `authdemo
run` processes on one database): exactly one sign-in is accepted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.mfa import parse_mfa_key
from authdemo.security import hash_token
from tests.scale.conftest import PASSWORD
from tests.support.db import in_thread
from tests.support.idom_client import IdomClient
from tests.support.mfa import MFA_KEY_TEXT
from tests.support.server import ServerProcess
from tests.support.workers import spread_views

pytestmark = pytest.mark.slow
ENV = {"AUTHDEMO_MFA_KEY": MFA_KEY_TEXT}


def alice_with_2fa(db_url: str) -> str:
    """Create alice and turn 2FA on (on the real clock); returns her secret."""

    async def setup() -> str:
        settings = Settings(database_url=db_url, mfa_keys=(parse_mfa_key(MFA_KEY_TEXT),))
        async with runtime(settings) as rt:
            service = rt.service
            await service.create_user("alice", PASSWORD)
            anonymous = service.new_token()
            result = await service.login(hash_token(anonymous), "alice", PASSWORD, ClientInfo())
            token = (await service.redeem_ticket(result.ticket, anonymous)).token
            session_id = result.signed_in.session.id
            started = await service.start_enrolment(session_id, PASSWORD, ClientInfo())
            code = pyotp.TOTP(started.secret).now()
            await service.confirm_enrolment(session_id, code, hash_token(token), ClientInfo())
            return started.secret

    return in_thread(lambda: asyncio.run(setup()))


async def at_the_code_form(client: IdomClient) -> IdomClient:
    await client.login("alice", PASSWORD)
    await client.wait_for_id("mfa-form")
    return client


async def send_at_once(clients: list[IdomClient], code: str) -> list[str]:
    await asyncio.gather(*(c.submit("mfa-form", {"code": code}) for c in clients))
    outcomes = []
    for client in clients:
        await client.wait_for(
            lambda c: c.find("greeting") is not None or c.find("mfa-error") is not None
        )
        outcomes.append("signed in" if client.find("greeting") is not None else "refused")
    return sorted(outcomes)


def next_code(secret: str) -> str:
    """The next step's code: the current one confirmed the enrolment."""
    return pyotp.TOTP(secret).at(time.time() + 30)


@pytest.fixture
def two_hosts(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    secret = alice_with_2fa(db_url)
    first = ServerProcess(db_url, tmp_path / "host-a.log", env=ENV).start()
    second = ServerProcess(db_url, tmp_path / "host-b.log", env=ENV).start()
    yield first, second, secret
    first.stop()
    second.stop()


async def test_one_code_through_two_hosts_at_once_signs_in_once(
    two_hosts: tuple[ServerProcess, ServerProcess, str],
) -> None:
    host_a, host_b, secret = two_hosts
    clients = [
        await at_the_code_form(await IdomClient.connect(host_a.base_url)),
        await at_the_code_form(await IdomClient.connect(host_b.base_url)),
    ]
    assert await send_at_once(clients, next_code(secret)) == ["refused", "signed in"]
    for client in clients:
        await client.close()


@pytest.fixture
def two_workers(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    secret = alice_with_2fa(db_url)
    server = ServerProcess(db_url, tmp_path / "workers.log", workers=2, env=ENV).start()
    yield server, secret
    server.stop()


async def test_one_code_through_two_workers_at_once_signs_in_once(
    two_workers: tuple[ServerProcess, str],
) -> None:
    server, secret = two_workers
    by_worker, spare = await spread_views(server)  # one of our websockets on each worker
    clients = [await at_the_code_form(c) for (c,) in by_worker.values()]
    assert await send_at_once(clients, next_code(secret)) == ["refused", "signed in"]
    for client in [*clients, *spare]:
        await client.close()
