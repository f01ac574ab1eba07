"""One open view's permissions (fakes): read once per change of the user's roles and
shared by everything that asks; a change bumps the view's rights version; the check
before an action reads the store, not the view's copy."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from authdemo.domain import ClientInfo, SessionPolicy
from authdemo.permissions import Permission, PermissionDenied, PermissionRegistry
from authdemo.security import hash_token
from authdemo.service import AuthService
from authdemo.ui.connection import LiveSession
from tests.support.fakes import FakeStore
from tests.support.mfa import PASSWORD

CLIENT = ClientInfo("203.0.113.7", "pytest")


@pytest.fixture
def policy() -> SessionPolicy:
    return SessionPolicy(ticket_ttl=timedelta(milliseconds=50))  # nobody redeems here


@pytest.fixture
def permissions() -> PermissionRegistry:
    return PermissionRegistry([Permission("notes:write", "Write notes")])


async def bobs_view(service: AuthService) -> LiveSession:
    await service.create_user("bob", PASSWORD)
    await service.create_role("writer", ["notes:write"])
    token = service.new_token()
    view = LiveSession(
        service, service._events, CLIENT, hash_token(token), await service.visit(token)
    )
    await view.login("bob", PASSWORD)
    return view


def reads(store: FakeStore) -> int:
    return sum(1 for unit in store.units if not unit.write)


async def test_the_grants_are_read_once_per_version_for_every_asker(
    service: AuthService, store: FakeStore
) -> None:
    view = await bobs_view(service)
    before = reads(store)
    first, second = await asyncio.gather(view.grants(), view.grants())
    assert first is second and not first.allows("notes:write")
    assert reads(store) == before + 1

    await service.grant_role("bob", "writer")  # published on this process's bus
    assert view.state.rights_version == 1
    assert (await view.grants()).allows("notes:write")
    assert reads(store) == before + 2


async def test_the_check_before_an_action_reads_the_store_not_the_views_copy(
    service: AuthService, store: FakeStore
) -> None:
    view = await bobs_view(service)
    await service.grant_role("bob", "writer")
    assert (await view.grants()).allows("notes:write")
    # Revoked behind the view's back: no event reaches it.
    store.tables.holdings.clear()
    assert (await view.grants()).allows("notes:write")  # the copy is stale…
    with pytest.raises(PermissionDenied):
        await view.require_permission("notes:write")  # …the check is not
    assert view.state.refusal is not None and "permission" in view.state.refusal
