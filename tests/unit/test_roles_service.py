"""Roles on the service (fakes): create, delete, grant, revoke — audited, announced to
the user's views through the outbox, refused clearly — and the check at action time."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from authdemo.domain import AuditKind, NotSignedIn, UnknownUser
from authdemo.events import EventKind
from authdemo.permissions import (
    BuiltInRole,
    InvalidPermission,
    Permission,
    PermissionRegistry,
    RoleExists,
    UndeclaredPermission,
    UnknownRole,
)
from authdemo.service import AuthService
from tests.support.fakes import FakeClock, FakeStore, RecordingBus
from tests.support.mfa import PASSWORD, sign_in
from tests.unit.test_session_data_service import anonymous_row

DECLARED = PermissionRegistry(
    [Permission("notes:read", "Read notes"), Permission("notes:write", "Write notes")]
)


@pytest.fixture
def permissions() -> PermissionRegistry:
    return DECLARED


@pytest.fixture
async def users(service: AuthService) -> None:
    await service.create_user("alice", PASSWORD)
    await service.create_user("bob", PASSWORD)


def rights_events(bus: RecordingBus) -> list[tuple[int | None, str]]:
    return [(e.user_id, e.reason) for e in bus.published if e.kind is EventKind.RIGHTS_CHANGED]


def audit(store: FakeStore, *kinds: AuditKind) -> list[tuple[str, str, str]]:
    return [(e.kind, e.username, e.detail) for e in store.tables.audit if e.kind in kinds]


ROLE_KINDS = (
    AuditKind.ROLE_CREATED,
    AuditKind.ROLE_DELETED,
    AuditKind.ROLE_GRANTED,
    AuditKind.ROLE_REVOKED,
)


async def test_creating_a_role_is_audited_with_its_patterns(
    service: AuthService, store: FakeStore
) -> None:
    role = await service.create_role("editor", ["notes:*", "notes:read"], "Edits notes")
    assert role.patterns == ("notes:*", "notes:read")
    assert audit(store, AuditKind.ROLE_CREATED) == [
        ("role_created", "", "role editor (notes:*, notes:read) by operator")
    ]


async def test_a_role_granting_an_undeclared_permission_is_refused(
    service: AuthService, store: FakeStore
) -> None:
    with pytest.raises(UndeclaredPermission, match="'notes:delete' is not a declared"):
        await service.create_role("editor", ["notes:delete"])
    with pytest.raises(InvalidPermission, match="at least one"):
        await service.create_role("editor", [])
    with pytest.raises(RoleExists):
        await service.create_role("admin", ["notes:read"])
    assert audit(store, *ROLE_KINDS) == []


async def test_a_grant_is_audited_and_announced_to_the_users_views(
    service: AuthService, store: FakeStore, bus: RecordingBus, users: None
) -> None:
    await service.create_role("editor", ["notes:write"])
    bob = await service.get_user("bob")
    assert await service.grant_role("BOB", "editor") is True
    assert rights_events(bus) == [(bob.id, "role_granted")]
    # Written to the outbox in the same transaction: other workers and hosts hear of it.
    (_, queued, _) = store.tables.broadcasts[-1]
    assert queued.kind is EventKind.RIGHTS_CHANGED and queued.user_id == bob.id
    assert audit(store, AuditKind.ROLE_GRANTED) == [
        ("role_granted", "bob", "role editor by operator")
    ]
    assert (await service.grants_of(bob.id)).allows("notes:write")
    assert await service.roles_of("bob") == ["editor"]


async def test_granting_a_role_held_already_changes_and_announces_nothing(
    service: AuthService, store: FakeStore, bus: RecordingBus, users: None
) -> None:
    await service.grant_role("bob", "admin")
    commits, published = store.commits, len(bus.published)
    assert await service.grant_role("bob", "admin") is False
    assert store.commits == commits and len(bus.published) == published


async def test_a_revoke_is_audited_and_announced(
    service: AuthService, store: FakeStore, bus: RecordingBus, users: None
) -> None:
    await service.grant_role("bob", "admin")
    bob = await service.get_user("bob")
    assert await service.revoke_role("bob", "admin") is True
    assert rights_events(bus)[-1] == (bob.id, "role_revoked")
    assert audit(store, AuditKind.ROLE_REVOKED) == [
        ("role_revoked", "bob", "role admin by operator")
    ]
    assert not (await service.grants_of(bob.id)).allows("authdemo:admin")
    assert await service.revoke_role("bob", "admin") is False


async def test_unknown_users_and_roles_are_refused_by_name(
    service: AuthService, users: None
) -> None:
    with pytest.raises(UnknownUser, match="no user named 'carol'"):
        await service.grant_role("carol", "admin")
    with pytest.raises(UnknownRole, match="no role named 'editor'"):
        await service.grant_role("bob", "editor")
    with pytest.raises(UnknownRole):
        await service.revoke_role("bob", "editor")
    with pytest.raises(UnknownRole):
        await service.delete_role("editor")


async def test_deleting_a_role_revokes_it_from_every_holder_live_and_audited(
    service: AuthService, store: FakeStore, bus: RecordingBus, users: None
) -> None:
    await service.create_role("editor", ["notes:*"])
    await service.grant_role("alice", "editor")
    await service.grant_role("bob", "editor")
    alice, bob = await service.get_user("alice"), await service.get_user("bob")
    assert await service.delete_role("editor") == 2
    assert rights_events(bus)[-2:] == [(alice.id, "role_deleted"), (bob.id, "role_deleted")]
    assert audit(store, AuditKind.ROLE_DELETED) == [
        ("role_deleted", "", "role editor, held by 2 user(s), by operator")
    ]
    revoked = audit(store, AuditKind.ROLE_REVOKED)
    assert [name for _, name, _ in revoked] == ["alice", "bob"]
    assert not (await service.grants_of(alice.id)).allows("notes:read")
    assert [r.name for r in await service.list_roles()] == ["admin"]


async def test_the_built_in_admin_role_cannot_be_deleted(
    service: AuthService, store: FakeStore
) -> None:
    with pytest.raises(BuiltInRole, match="built in"):
        await service.delete_role("admin")
    assert [r.name for r in await service.list_roles()] == ["admin"]


async def test_list_users_shows_each_users_roles(service: AuthService, users: None) -> None:
    await service.create_role("editor", ["notes:write"])
    await service.grant_role("bob", "editor")
    await service.grant_role("bob", "admin")
    roles = {s.user.username: s.roles for s in await service.list_users()}
    assert roles == {"alice": (), "bob": ("admin", "editor")}


async def test_the_check_at_action_time_reads_the_current_roles(
    service: AuthService, users: None
) -> None:
    _, session_id = await sign_in(service, "bob")
    assert await service.permitted(session_id, "authdemo:admin") is False
    await service.grant_role("bob", "admin")
    assert await service.permitted(session_id, "authdemo:admin") is True
    await service.revoke_role("bob", "admin")
    assert await service.permitted(session_id, "authdemo:admin") is False


async def test_a_session_that_may_not_act_holds_no_permission(
    service: AuthService, users: None
) -> None:
    _, session_id = await sign_in(service, "bob")
    await service.grant_role("bob", "admin")
    await service.set_active("bob", False)
    with pytest.raises(NotSignedIn):
        await service.permitted(session_id, "authdemo:admin")
    assert not await service.user_has_permission(
        (await service.get_user("bob")).id, "authdemo:admin"
    )


async def test_checking_an_undeclared_permission_is_a_loud_error(
    service: AuthService, users: None
) -> None:
    _, session_id = await sign_in(service, "bob")
    with pytest.raises(UndeclaredPermission):
        await service.permitted(session_id, "notes:wrte")


async def test_an_http_check_reads_the_users_roles_for_that_user_only(
    service: AuthService, users: None
) -> None:
    alice, bob = await service.get_user("alice"), await service.get_user("bob")
    await service.create_role("writer", ["notes:write"])
    await service.grant_role("bob", "writer")
    assert await service.user_has_permission(bob.id, "notes:write") is True
    assert await service.user_has_permission(alice.id, "notes:write") is False
    assert await service.user_has_permission(bob.id, "notes:read") is False
    assert await service.user_has_permission(999, "notes:write") is False  # no such user


async def test_roles_of_a_user_without_roles_is_empty(service: AuthService, users: None) -> None:
    assert await service.roles_of("alice") == []


async def test_an_anonymous_session_holds_no_permission(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await anonymous_row(service)
    with pytest.raises(NotSignedIn):
        await service.permitted(session_id, "authdemo:admin")


async def test_role_changes_are_audited_with_who_asked_and_from_where(
    service: AuthService, store: FakeStore, users: None
) -> None:
    from authdemo.domain import ClientInfo

    browser = ClientInfo("198.51.100.9", "admin's browser")
    role = await service.create_role(
        "writer", ["notes:write"], "Writes", client=browser, by="alice"
    )
    assert role.description == "Writes"
    assert [r.description for r in await service.list_roles() if r.name == "writer"] == ["Writes"]
    await service.grant_role("bob", "writer", client=browser, by="alice")
    await service.revoke_role("bob", "writer", client=browser, by="alice")
    await service.grant_role("bob", "writer", client=browser, by="alice")
    await service.delete_role("writer", client=browser, by="alice")
    rows = [e for e in store.tables.audit if e.kind in ROLE_KINDS]
    assert len(rows) == 6
    assert {(e.client_addr, e.user_agent) for e in rows} == {("198.51.100.9", "admin's browser")}
    assert all(e.detail.endswith("by alice") for e in rows), [e.detail for e in rows]


async def test_role_changes_are_logged_naming_the_role_and_the_user(
    service: AuthService, users: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    await service.create_role("editor", ["notes:write"])
    await service.grant_role("bob", "editor")
    await service.revoke_role("bob", "editor")
    await service.grant_role("BOB", "editor")
    await service.delete_role("editor")
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("role")] == [
        "role created role=editor",
        "role_granted user=bob role=editor",
        "role_revoked user=bob role=editor",
        "role_granted user=bob role=editor",
        "role deleted role=editor holders=1",
    ]


async def test_a_role_made_without_a_description_has_none(service: AuthService) -> None:
    role = await service.create_role("editor", ["notes:read"])
    assert role.description == ""
    assert [r.description for r in await service.list_roles() if r.name == "editor"] == [""]


async def test_refusals_name_the_role_and_say_why_in_full(service: AuthService) -> None:
    with pytest.raises(InvalidPermission) as empty:
        await service.create_role("editor", [])
    assert str(empty.value) == "A role grants at least one permission."
    with pytest.raises(BuiltInRole) as built_in:
        await service.delete_role("admin")
    assert built_in.value.name == "admin"
    assert str(built_in.value) == "The role 'admin' is built in and cannot be deleted."


async def test_a_rights_change_is_queued_at_the_moment_it_is_made(
    service: AuthService, store: FakeStore, clock: FakeClock, users: None
) -> None:
    clock.advance(timedelta(minutes=7))
    await service.grant_role("bob", "admin")
    (_, queued, at) = store.tables.broadcasts[-1]
    assert queued.kind is EventKind.RIGHTS_CHANGED and at == clock.now()
    clock.advance(timedelta(minutes=1))
    await service.revoke_role("bob", "admin")
    assert store.tables.broadcasts[-1][2] == clock.now()
