"""The role repository on a real database (SQLite and PostgreSQL, built by alembic)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.models import RoleRow, UserRoleRow, UserRow
from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.permissions import RoleExists
from tests.conftest import cheap_hasher
from tests.integration.test_repositories import NOW, add_session, add_user
from tests.support.fakes import FakeClock


async def test_the_migration_creates_the_admin_role_granting_the_admin_permission(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    async with sql_uow() as tx:
        admin = await tx.roles.get("admin")
    assert admin is not None
    assert admin.patterns == ("authdemo:admin",)


async def test_a_new_role_gets_an_id_past_the_built_in_one(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        role = await tx.roles.add("editor", "Edits", ["notes:*", "notes:read", "notes:*"], NOW)
        await tx.commit()
    assert role.id > 1
    assert role.patterns == ("notes:*", "notes:read")
    async with sql_uow() as tx:
        assert await tx.roles.get("editor") == role


async def test_role_names_are_unique(sql_uow: SqlUnitOfWorkFactory) -> None:
    with pytest.raises(RoleExists):
        async with sql_uow(write=True) as tx:
            await tx.roles.add("admin", "", [], NOW)


async def test_a_grant_and_a_revoke_each_change_something_once(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    alice = await add_user(sql_uow)
    async with sql_uow(write=True) as tx:
        role = await tx.roles.add("editor", "", ["notes:write"], NOW)
        assert await tx.roles.grant(alice, role.id, NOW) is True
        assert await tx.roles.grant(alice, role.id, NOW) is False
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.roles.patterns_of(alice) == ["notes:write"]
        assert await tx.roles.names_by_user() == {alice: ["editor"]}
    async with sql_uow(write=True) as tx:
        assert await tx.roles.revoke(alice, role.id) is True
        assert await tx.roles.revoke(alice, role.id) is False
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.roles.patterns_of(alice) == []


async def test_a_users_patterns_are_those_of_every_role_they_hold(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    alice = await add_user(sql_uow)
    bob = await add_user(sql_uow, "bob")
    async with sql_uow(write=True) as tx:
        editor = await tx.roles.add("editor", "", ["notes:read", "notes:write"], NOW)
        reader = await tx.roles.add("reader", "", ["notes:read"], NOW)
        admin = await tx.roles.get("admin")
        assert admin is not None
        for role in (editor, reader, admin):
            await tx.roles.grant(alice, role.id, NOW)
        await tx.roles.grant(bob, reader.id, NOW)
        await tx.commit()
    async with sql_uow() as tx:
        assert sorted(await tx.roles.patterns_of(alice)) == [
            "authdemo:admin",
            "notes:read",
            "notes:write",
        ]
        assert await tx.roles.patterns_of(bob) == ["notes:read"]
        listed = {r.name: r.holders for r in await tx.roles.list()}
    assert listed == {"admin": 1, "editor": 1, "reader": 2}


async def editor_alice_reader_bob(uow: SqlUnitOfWorkFactory) -> tuple[int, int, int, int]:
    """alice holds "editor" (notes:*, notes:read) and "reader" (notes:read), bob "reader",
    carol nothing; returns their ids and the reader role's."""
    alice = await add_user(uow)
    bob = await add_user(uow, "bob")
    carol = await add_user(uow, "carol")
    async with uow(write=True) as tx:
        editor = await tx.roles.add("editor", "", ["notes:*", "notes:read"], NOW)
        reader = await tx.roles.add("reader", "", ["notes:read"], NOW)
        for role in (editor, reader):
            await tx.roles.grant(alice, role.id, NOW)
        await tx.roles.grant(bob, reader.id, NOW)
        await tx.commit()
    return alice, bob, carol, reader.id


async def test_a_session_is_read_with_its_user_and_their_patterns_in_one_go(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    """What a guarded event reads (``acting_with_patterns``): the session and user as
    ``get_with_user`` reads them, and the user's own patterns, each once."""
    alice, bob, carol, _ = await editor_alice_reader_bob(sql_uow)
    sessions = {
        name: await add_session(sql_uow, user, f"hash-{name}")
        for name, user in (("alice", alice), ("bob", bob), ("carol", carol), ("anon", None))
    }
    async with sql_uow() as tx:
        read = {name: await tx.roles.acting_with_patterns(sid) for name, sid in sessions.items()}
        plain = {name: await tx.sessions.get_with_user(sid) for name, sid in sessions.items()}
        missing = await tx.roles.acting_with_patterns(max(sessions.values()) + 1)
    assert {name: found[2] for name, found in read.items() if found} == {
        "alice": ["notes:*", "notes:read"],
        "bob": ["notes:read"],
        "carol": [],
        "anon": [],
    }
    for name, found in read.items():
        assert found is not None and found[:2] == plain[name]
    assert read["anon"] is not None and read["anon"][1] is None
    assert missing is None


async def test_an_active_users_patterns_are_read_in_one_go(sql_uow: SqlUnitOfWorkFactory) -> None:
    """What an HTTP route's check reads (``active_patterns``): the user's own patterns,
    and nothing at all for a disabled user or no user."""
    alice, bob, carol, reader = await editor_alice_reader_bob(sql_uow)
    async with sql_uow(write=True) as tx:
        await tx.roles.grant(carol, reader, NOW)
        await tx.users.set_active(carol, False)
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.roles.active_patterns(alice) == ["notes:*", "notes:read"]
        assert await tx.roles.active_patterns(bob) == ["notes:read"]
        assert await tx.roles.active_patterns(carol) is None  # disabled: holds nothing
        assert await tx.roles.active_patterns(carol + 100) is None


async def test_deleting_a_role_returns_its_holders_and_removes_their_holdings(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    alice = await add_user(sql_uow)
    bob = await add_user(sql_uow, "bob")
    async with sql_uow(write=True) as tx:
        role = await tx.roles.add("editor", "", ["notes:write"], NOW)
        await tx.roles.grant(alice, role.id, NOW)
        await tx.roles.grant(bob, role.id, NOW)
        await tx.commit()
    async with sql_uow(write=True) as tx:
        assert await tx.roles.delete(role.id) == sorted([alice, bob])
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.roles.get("editor") is None
        assert await tx.roles.patterns_of(alice) == []
        assert await tx.roles.names_by_user() == {}


async def test_deleting_a_user_deletes_their_holdings(sql_uow: SqlUnitOfWorkFactory) -> None:
    alice = await add_user(sql_uow)
    async with sql_uow(write=True) as tx:
        admin = await tx.roles.get("admin")
        assert admin is not None
        await tx.roles.grant(alice, admin.id, NOW)
        await tx.commit()
    async with sql_uow(write=True) as tx:
        await tx.roles._s.execute(delete(UserRow).where(UserRow.id == alice))  # type: ignore[attr-defined]
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.roles.names_by_user() == {}
        assert [r.holders for r in await tx.roles.list()] == [0]


async def test_a_grant_racing_a_role_delete_leaves_no_holding_behind(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    """The delete locks the role first: a grant that comes after it waits and then
    fails, one that came first is among the holders the delete returns."""
    alice = await add_user(sql_uow)
    async with sql_uow(write=True) as tx:
        await tx.roles.add("editor", "", ["notes:write"], NOW)
        await tx.commit()
    deleting = asyncio.Event()
    release = asyncio.Event()

    async def delete_role() -> list[int]:
        async with sql_uow(write=True) as tx:
            locked = await tx.roles.get("editor", lock=True)
            assert locked is not None
            deleting.set()
            await release.wait()
            holders = await tx.roles.delete(locked.id)
            await tx.commit()
            return holders

    async def grant() -> bool:
        await deleting.wait()
        async with sql_uow(write=True) as tx:
            found = await tx.roles.get("editor", lock=True)
            if found is None:
                return False
            granted = await tx.roles.grant(alice, found.id, NOW)
            await tx.commit()
            return granted

    deleter = asyncio.create_task(delete_role())
    granter = asyncio.create_task(grant())
    await asyncio.sleep(0.2)
    release.set()
    holders, granted = await asyncio.gather(deleter, granter)
    assert granted is False and holders == []
    async with sql_uow() as tx:
        assert await tx.roles.names_by_user() == {}


async def test_the_service_records_when_a_role_was_made_and_granted(settings: Settings) -> None:
    """Through the service, on a real database: each row carries the moment of its change
    (the columns are NOT NULL; the fakes keep no times)."""
    clock = FakeClock()
    async with runtime(settings, hasher_factory=cheap_hasher, clock=clock) as rt:
        await rt.service.create_user("alice", "correct horse")
        made = clock.now()
        await rt.service.create_role("auditor", ["authdemo:admin"])
        clock.advance(timedelta(minutes=3))
        granted = clock.now()
        assert await rt.service.grant_role("alice", "auditor") is True
        async with rt.uow() as tx:
            session = tx.roles._s  # type: ignore[attr-defined]
            created_at = await session.scalar(
                select(RoleRow.created_at).where(RoleRow.name == "auditor")
            )
            granted_at = await session.scalar(select(UserRoleRow.granted_at))
    assert (created_at, granted_at) == (made, granted)
