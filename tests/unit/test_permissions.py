"""Permission names, patterns, the registry of declared permissions, compiled grants."""

from __future__ import annotations

import pytest

from authdemo.permissions import (
    ADMIN,
    Grants,
    InvalidPermission,
    InvalidRoleName,
    Permission,
    PermissionRegistry,
    UndeclaredPermission,
    check_role_name,
)

NOTES = [Permission("notes:read", "Read notes"), Permission("notes:write", "Write notes")]


@pytest.mark.parametrize("name", ["notes", "Notes:write", "notes:", ":write", "notes:*", "a b:c"])
def test_a_permission_name_is_resource_colon_action(name: str) -> None:
    with pytest.raises(InvalidPermission, match="resource:action"):
        Permission(name, "")


def test_the_registry_always_declares_the_admin_permission() -> None:
    registry = PermissionRegistry(NOTES)
    assert [p.name for p in registry] == ["authdemo:admin", "notes:read", "notes:write"]
    assert ADMIN.name in PermissionRegistry()


def test_a_permission_declared_twice_differently_is_refused() -> None:
    with pytest.raises(InvalidPermission, match="declared twice"):
        PermissionRegistry([Permission("notes:read", "Read"), Permission("notes:read", "Other")])


def test_checking_an_undeclared_name_fails_loudly_naming_the_declared_ones() -> None:
    with pytest.raises(UndeclaredPermission, match=r"'notes:wrte' .*notes:write"):
        PermissionRegistry(NOTES).require("notes:wrte")


@pytest.mark.parametrize("pattern", ["*", "notes:*", "notes:write", "authdemo:*"])
def test_patterns_that_cover_a_declared_permission_are_accepted(pattern: str) -> None:
    assert PermissionRegistry(NOTES).check_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["todo:*", "notes:delete"])
def test_patterns_that_cover_nothing_declared_are_refused(pattern: str) -> None:
    with pytest.raises(UndeclaredPermission):
        PermissionRegistry(NOTES).check_pattern(pattern)


@pytest.mark.parametrize("pattern", ["notes*", "*:write", "no:tes:**", "NOTES:read", ""])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidPermission):
        PermissionRegistry(NOTES).check_pattern(pattern)


def test_grants_match_exact_names_prefixes_and_everything() -> None:
    grants = Grants.of(["notes:*", "todo:read"])
    assert grants.allows("notes:write") and grants.allows("notes:read")
    assert grants.allows("todo:read")
    assert not grants.allows("todo:write")
    assert not grants.allows("notesx:read")  # a prefix ends at its colon
    assert not grants.allows("authdemo:admin")
    assert Grants.of(["*"]).allows("authdemo:admin")
    assert not Grants.of([]).allows("notes:read")


@pytest.mark.parametrize("name", ["admin", "editor-2", "ops.read_only"])
def test_valid_role_names(name: str) -> None:
    assert check_role_name(name) == name


@pytest.mark.parametrize("name", ["", "Admin", "-x", "a" * 65, "with space"])
def test_invalid_role_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidRoleName, match="lower-case letters"):
        check_role_name(name)


def test_limits_on_lengths_and_descriptions() -> None:
    from authdemo.permissions import PATTERN_MAX, check_description

    longest = "a:" + "b" * (PATTERN_MAX - 2)
    assert Permission(longest).name == longest
    with pytest.raises(InvalidPermission, match="at most 128"):
        Permission(longest + "c")
    registry = PermissionRegistry()
    with pytest.raises(InvalidPermission, match="at most 128"):
        registry.check_pattern("a:" + "b" * (PATTERN_MAX - 1))
    assert check_description("x" * 255) == "x" * 255
    with pytest.raises(InvalidPermission, match="at most 255"):
        check_description("x" * 256)
    with pytest.raises(InvalidPermission, match="Descriptions cannot contain control"):
        check_description("two\nlines")


def test_the_errors_name_what_they_refuse() -> None:
    from authdemo.permissions import BuiltInRole, PermissionDenied, RoleExists, UnknownRole

    assert str(UndeclaredPermission("x:y")) == "'x:y' is not a declared permission."
    assert str(UndeclaredPermission("x:y", ["b:c", "a:b"])) == (
        "'x:y' is not a declared permission (declared: a:b, b:c)."
    )
    for error in (
        UndeclaredPermission("x:y"),
        InvalidRoleName("x:y"),
        UnknownRole("x:y"),
        RoleExists("x:y"),
        BuiltInRole("x:y"),
    ):
        assert error.name == "x:y"
    assert PermissionDenied("x:y").permission == "x:y"
    assert str(InvalidRoleName("X")) == (
        "'X' is not a valid role name: use 1 to 64 lower-case letters, digits and _ . - "
        "(starting with a letter or digit)."
    )
    with pytest.raises(UndeclaredPermission) as refused:
        PermissionRegistry(NOTES).check_pattern("todo:*")
    assert refused.value.name == "todo:*" and "notes:read" in str(refused.value)


def test_no_grants_allow_nothing_exactly() -> None:
    assert Grants.of([]).allows("notes:read") is False
    assert Grants.of(["notes:read"]).everything is False


def test_each_refusal_says_what_is_wrong_in_full() -> None:
    # The whole sentence, as the admin page and the CLI show it.
    from authdemo.permissions import PermissionDenied, RoleExists, check_description

    with pytest.raises(InvalidPermission) as bad_name:
        Permission("Notes:write")
    assert str(bad_name.value) == (
        "'Notes:write' is not a permission name: use resource:action, lower-case letters, "
        "digits and _ . - (for example notes:write)."
    )
    with pytest.raises(InvalidPermission) as twice:
        PermissionRegistry([Permission("notes:read", "Read"), Permission("notes:read", "Other")])
    assert str(twice.value) == (
        "The permission 'notes:read' is declared twice, with different descriptions."
    )
    with pytest.raises(InvalidPermission) as bad_pattern:
        PermissionRegistry(NOTES).check_pattern("notes*")
    assert str(bad_pattern.value) == (
        "'notes*' is not a permission pattern: use a permission's name (notes:write), "
        "a prefix and * (notes:*), or * alone."
    )
    with pytest.raises(InvalidPermission) as control:
        check_description("two\nlines")
    assert str(control.value) == "Descriptions cannot contain control characters."
    assert str(PermissionDenied("notes:write")) == (
        "You do not have permission to do that; nothing was changed."
    )
    assert str(RoleExists("editor")) == "A role named 'editor' exists already."


def test_a_refused_role_name_is_the_one_given() -> None:
    with pytest.raises(InvalidRoleName) as refused:
        check_role_name("Editor")
    assert refused.value.name == "Editor"
    assert str(refused.value).startswith("'Editor' is not a valid role name")


def test_a_pattern_of_exactly_the_longest_length_is_accepted() -> None:
    from authdemo.permissions import PATTERN_MAX

    longest = "a:" + "b" * (PATTERN_MAX - 2)
    assert PermissionRegistry([Permission(longest)]).check_pattern(longest) == longest
