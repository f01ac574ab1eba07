"""Issue 13: hostile usernames through sign-in and create-user on a real database, SQLite
and PostgreSQL (whose columns have lengths SQLite ignores). Only the expected refusals
come out, and every failed sign-in leaves its throttle and audit rows."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select

from authdemo.bootstrap import Runtime, start_runtime
from authdemo.config import Settings
from authdemo.db.models import AuditRow
from authdemo.domain import (
    ClientInfo,
    InvalidCredentials,
    InvalidPassword,
    InvalidUsername,
    Throttled,
    UsernameTaken,
    address_key,
)
from authdemo.security import hash_token
from tests.conftest import cheap_hasher
from tests.support.hostile import PASSWORDS, USERNAMES

EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CLIENT = ClientInfo("2001:db8::7", "hypothesis")
NO_BLOCKS = 10**9  # every attempt is a counted failure, none refused by a block


def with_runtime(settings: Settings, body: Callable[[asyncio.Runner, Runtime], None]) -> None:
    """One runtime for all of a property's examples, on one event loop."""
    unlimited = replace(
        settings, throttle_account_failures=NO_BLOCKS, throttle_address_failures=NO_BLOCKS
    )
    with asyncio.Runner() as runner:
        rt = runner.run(start_runtime(unlimited, hasher_factory=cheap_hasher))
        try:
            body(runner, rt)
        finally:
            runner.run(rt.close())


async def failures(rt: Runtime, key: str) -> int:
    async with rt.uow() as tx:
        state = (await tx.throttle.get([key])).get(key)
    return state.failures if state is not None else 0


async def failed_rows(rt: Runtime) -> int:
    async with rt.uow() as tx:
        query = select(func.count()).where(AuditRow.kind == "login_failed")
        return int(await tx.audit._s.scalar(query) or 0)  # type: ignore[attr-defined]


def test_any_username_at_sign_in_is_refused_generically_and_recorded(settings: Settings) -> None:
    def body(runner: asyncio.Runner, rt: Runtime) -> None:
        run: Callable[[Coroutine[Any, Any, Any]], Any] = runner.run
        run(rt.service.create_user("alice", "correct horse"))
        address = address_key(CLIENT.addr)

        @EXAMPLES
        @given(username=USERNAMES, password=PASSWORDS)
        def attempt(username: str, password: str) -> None:
            account = rt.service.account_key(username)
            before = (run(failures(rt, account)), run(failures(rt, address)), run(failed_rows(rt)))
            try:
                run(
                    rt.service.login(hash_token(rt.service.new_token()), username, password, CLIENT)
                )
            except InvalidCredentials as refused:
                assert not isinstance(refused, Throttled)
                assert str(refused) == "Incorrect username or password."
            else:  # only alice's own name and password get in
                assert password == "correct horse" and rt.service.account_key("ALICE") == account
                return
            after = (run(failures(rt, account)), run(failures(rt, address)), run(failed_rows(rt)))
            assert after == (before[0] + 1, before[1] + 1, before[2] + 1)
            (last,) = run(rt.service.audit_events(None, 1))
            assert last.kind == "login_failed"
            assert last.username == "alice" or re.fullmatch(r"unknown:[0-9a-f]{12}", last.username)

        attempt()

    with_runtime(settings, body)


def test_any_username_at_create_user_is_created_or_refused_clearly(settings: Settings) -> None:
    def body(runner: asyncio.Runner, rt: Runtime) -> None:
        @EXAMPLES
        @given(username=USERNAMES, password=PASSWORDS)
        def attempt(username: str, password: str) -> None:
            try:
                user = runner.run(rt.service.create_user(username, password))
            except (InvalidUsername, InvalidPassword, UsernameTaken) as refused:
                assert str(refused) and len(str(refused)) < 300
                return
            assert runner.run(rt.service.get_user(username)).id == user.id

        attempt()

    with_runtime(settings, body)
