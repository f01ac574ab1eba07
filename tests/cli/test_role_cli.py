"""``authdemo role …``: create, delete, grant, revoke, list — each audited, refusals in
one line with exit 1 — and ``list-users`` showing roles."""

from __future__ import annotations

import pytest

from authdemo.domain import AuditEvent, AuditKind
from authdemo.service import AuthService
from tests.cli.test_cli import invoke
from tests.cli.test_operator_cli import add_user, data_rows, with_service

RIGHTS = "tests.cli.rights_for_cli:PERMISSIONS"


def audit(db_url: str) -> list[AuditEvent]:
    async def read(service: AuthService) -> list[AuditEvent]:
        return await service.audit_events(None, 100)

    return with_service(db_url, read)


def role_kinds(db_url: str) -> list[tuple[str, str, str]]:
    kinds = {
        AuditKind.ROLE_CREATED,
        AuditKind.ROLE_DELETED,
        AuditKind.ROLE_GRANTED,
        AuditKind.ROLE_REVOKED,
    }
    return [(e.kind, e.username, e.detail) for e in reversed(audit(db_url)) if e.kind in kinds]


def test_role_create_with_the_apps_declarations_grant_list_revoke_delete(db_url: str) -> None:
    add_user(db_url, "bob")
    created = invoke(
        db_url,
        "role",
        "create",
        "editor",
        "-p",
        "notes:*",
        "--permission",
        "notes:read",
        "--description",
        "Edits notes",
        "--permissions-from",
        RIGHTS,
    )
    assert created.exit_code == 0, created.output
    assert created.output == "Created role 'editor' granting notes:*, notes:read.\n"

    granted = invoke(db_url, "role", "grant", "BOB", "editor")
    assert granted.output == "Granted 'editor' to 'bob'.\n" and granted.exit_code == 0
    again = invoke(db_url, "role", "grant", "bob", "editor")
    assert again.output == "'bob' holds 'editor' already; nothing changed.\n"

    listed = invoke(db_url, "role", "list")
    assert listed.exit_code == 0, listed.output
    rows = {row.split()[0]: row for row in data_rows(listed.output)}
    assert set(rows) == {"admin", "editor"}
    assert "notes:*, notes:read" in rows["editor"] and "Edits notes" in rows["editor"]
    assert "authdemo:admin" in rows["admin"]

    users = invoke(db_url, "list-users")
    header = users.output.splitlines()[0]
    (bob,) = data_rows(users.output)
    assert bob[header.index("ROLES") :].split()[0] == "editor"

    revoked = invoke(db_url, "role", "revoke", "bob", "editor")
    assert revoked.output == "Revoked 'editor' from 'bob'.\n"
    assert invoke(db_url, "role", "grant", "bob", "editor").exit_code == 0
    deleted = invoke(db_url, "role", "delete", "editor")
    assert deleted.output == "Deleted role 'editor'; revoked from 1 user.\n"

    assert role_kinds(db_url) == [
        ("role_created", "", "role editor (notes:*, notes:read) by operator"),
        ("role_granted", "bob", "role editor by operator"),
        ("role_revoked", "bob", "role editor by operator"),
        ("role_granted", "bob", "role editor by operator"),
        ("role_revoked", "bob", "role editor (deleted) by operator"),
        ("role_deleted", "", "role editor, held by 1 user(s), by operator"),
    ]


def test_the_declarations_can_come_from_the_environment(db_url: str) -> None:
    result = invoke(
        db_url, "role", "create", "reader", "-p", "notes:read", AUTHDEMO_PERMISSIONS_FROM=RIGHTS
    )
    assert result.exit_code == 0, result.output


def test_without_the_apps_declarations_only_the_built_in_permission_is_known(
    db_url: str,
) -> None:
    result = invoke(db_url, "role", "create", "editor", "-p", "notes:write")
    assert result.exit_code == 1
    assert result.output == (
        "Error: 'notes:write' is not a declared permission (declared: authdemo:admin).\n"
    )
    assert invoke(db_url, "role", "create", "ops", "-p", "authdemo:*").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "Editor", "-p", "*"), "'Editor' is not a valid role name"),
        (("create", "admin", "-p", "*"), "A role named 'admin' exists already."),
        (("create", "x", "-p", "notes"), "'notes' is not a permission pattern"),
        (("delete", "admin"), "The role 'admin' is built in and cannot be deleted."),
        (("delete", "ghost"), "There is no role named 'ghost'."),
        (("grant", "ghost", "admin"), "There is no user named 'ghost'."),
        (("grant", "bob", "ghost"), "There is no role named 'ghost'."),
        (("revoke", "bob", "ghost"), "There is no role named 'ghost'."),
    ],
)
def test_refusals_are_one_line_with_exit_1_and_change_nothing(
    db_url: str, args: tuple[str, ...], message: str
) -> None:
    add_user(db_url, "bob")
    result = invoke(db_url, "role", *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {message}")
    assert len(result.output.splitlines()) == 1
    assert role_kinds(db_url) == []


@pytest.mark.parametrize(
    "spec", ["nonsense", "no_such_module_xyz:PERMISSIONS", "tests.cli.rights_for_cli:NOT_A_LIST"]
)
def test_a_bad_permissions_from_is_a_usage_error(db_url: str, spec: str) -> None:
    result = invoke(db_url, "role", "create", "x", "-p", "*", "--permissions-from", spec)
    assert result.exit_code == 2
    assert "--permissions-from" in result.output and "Traceback" not in result.output


def test_role_commands_refuse_an_unmigrated_database_with_exit_3(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    result = invoke(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", "role", "list")
    assert result.exit_code == 3, result.output
