"""The service's reads of one statement ask for a unit of work of one statement
(``uow(one_statement=True)``), which then runs without a transaction of its own (see
``authdemo.db.engine.one_statement_reads``), and make one repository call in it.

The fake store counts: a second call in such a unit fails, as the SQL unit refuses a
second statement. These are the reads on the hot paths: a page's or connect's session
look-up, a view's re-read, the account components' read and every permission check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from authdemo.permissions import Permission, PermissionRegistry
from authdemo.service import AuthService
from tests.support.fakes import FakeStore
from tests.support.mfa import PASSWORD, sign_in

DECLARED = PermissionRegistry([Permission("notes:read", "Read notes")])


@pytest.fixture
def permissions() -> PermissionRegistry:
    return DECLARED


async def only_read(store: FakeStore, read: Callable[[], Awaitable[Any]]) -> None:
    """``read`` ran one unit of work: of one statement, with one repository call."""
    store.units.clear()
    await read()
    assert [(unit.write, unit.one_statement, unit.calls) for unit in store.units] == [
        (False, True, 1)
    ]


async def test_the_hot_reads_are_reads_of_one_statement(
    service: AuthService, store: FakeStore
) -> None:
    await service.create_user("alice", PASSWORD)
    token, session_id = await sign_in(service)
    alice = await service.get_user("alice")
    await service.grant_role("alice", "admin")
    await only_read(store, lambda: service.resolve(token))  # a page's or connect's look-up
    await only_read(store, lambda: service.live_session(session_id))  # a view's re-read
    await only_read(store, lambda: service.sessions_of(alice.id))
    await only_read(store, lambda: service.account_snapshot(session_id))
    await only_read(store, lambda: service.grants_of(alice.id))
    await only_read(store, lambda: service.permitted(session_id, "notes:read"))
    await only_read(store, lambda: service.user_has_permission(alice.id, "notes:read"))
    # A tab's follow after another tab signed in (its answer does not matter here).
    await only_read(store, lambda: service.followed_session(session_id, "h", "k"))


async def test_a_second_call_in_a_read_of_one_statement_fails(store: FakeStore) -> None:
    async with store(one_statement=True) as tx:
        await tx.sessions.get_with_user(1)
        with pytest.raises(AssertionError, match="second call"):
            await tx.roles.patterns_of(1)


async def test_a_read_of_one_statement_offers_only_the_reads(store: FakeStore) -> None:
    """As ``SqlOneRead``: a service that reached for another repository in a read of one
    statement would fail on SQL (and in mypy), so it fails here too."""
    async with store(one_statement=True) as tx:
        assert not hasattr(tx, "users") and not hasattr(tx, "outbox")
