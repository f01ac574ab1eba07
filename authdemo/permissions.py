"""Permissions and roles: the values and rules, no I/O.

A permission is a string ``"resource:action"`` that an app declares in code with a
one-line description (:class:`Permission`); the app hands its declarations to
``create_app(..., permissions=[...])``. Roles live in the database and grant
permission *patterns*: a declared name (``notes:write``), every name under a prefix
(``notes:*``), or everything (``*``). Users hold roles.

A check compiles the user's patterns once (:class:`Grants`): a set lookup, then one
``startswith`` per prefix pattern — no regular expression, no parsing per check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .domain import AuthError

_SEGMENT = r"[a-z0-9][a-z0-9_.-]*"
_NAME = re.compile(rf"{_SEGMENT}(?::{_SEGMENT})+")
_PREFIX = re.compile(rf"{_SEGMENT}(?::{_SEGMENT})*:\*")
_ROLE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
PATTERN_MAX = 128
DESCRIPTION_MAX = 255


class InvalidPermission(AuthError):
    """A permission name or pattern that is not ``resource:action`` (lower-case letters,
    digits and ``_ . -``, segments joined by ``:``), ``prefix:*`` or ``*``."""


class UndeclaredPermission(AuthError):
    """A permission (or a pattern that matches none) the app has not declared."""

    def __init__(self, name: str, declared: Iterable[str] = ()) -> None:
        known = ", ".join(sorted(declared))
        super().__init__(
            f"{name!r} is not a declared permission" + (f" (declared: {known})." if known else ".")
        )
        self.name = name


class InvalidRoleName(AuthError):
    """Role names: 1 to 64 lower-case letters, digits and ``_ . -``."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a valid role name: use 1 to 64 lower-case letters, digits "
            "and _ . - (starting with a letter or digit)."
        )
        self.name = name


class UnknownRole(AuthError):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no role named {name!r}.")
        self.name = name


class RoleExists(AuthError):
    def __init__(self, name: str) -> None:
        super().__init__(f"A role named {name!r} exists already.")
        self.name = name


class BuiltInRole(AuthError):
    """The built-in ``admin`` role cannot be deleted (it guards the admin page)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"The role {name!r} is built in and cannot be deleted.")
        self.name = name


class PermissionDenied(AuthError):
    """The signed-in user does not hold ``permission`` (checked on the server, at the
    moment of the action); nothing was changed."""

    def __init__(self, permission: str) -> None:
        super().__init__("You do not have permission to do that; nothing was changed.")
        self.permission = permission


@dataclass(frozen=True)
class Permission:
    """A permission the app declares: ``Permission("notes:write", "Write notes")``.

    Raises ``InvalidPermission`` for a name that is not ``resource:action``."""

    name: str
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InvalidPermission(
                f"{self.name!r} is not a permission name: use resource:action, lower-case "
                "letters, digits and _ . - (for example notes:write)."
            )
        if len(self.name) > PATTERN_MAX:
            raise InvalidPermission(f"Permission names are at most {PATTERN_MAX} characters.")


ADMIN = Permission("authdemo:admin", "Use the admin page: manage users, roles and sessions")
"""The built-in permission; the built-in role ``admin`` grants it."""
ADMIN_ROLE = "admin"


class PermissionRegistry:
    """The permissions an app declared (``authdemo:admin`` always among them)."""

    def __init__(self, declared: Iterable[Permission] = ()) -> None:
        self._by_name: dict[str, Permission] = {ADMIN.name: ADMIN}
        for permission in declared:
            seen = self._by_name.get(permission.name)
            if seen is not None and seen != permission:
                raise InvalidPermission(
                    f"The permission {permission.name!r} is declared twice, with different "
                    "descriptions."
                )
            self._by_name[permission.name] = permission

    def __iter__(self) -> Iterator[Permission]:
        return iter(sorted(self._by_name.values(), key=lambda p: p.name))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def require(self, name: str) -> str:
        """``name`` if declared; else ``UndeclaredPermission`` (a typo in a check must
        fail loudly, not quietly deny forever)."""
        if name not in self._by_name:
            raise UndeclaredPermission(name, self._by_name)
        return name

    def check_pattern(self, pattern: str) -> str:
        """A pattern a role may grant: a declared name, or ``prefix:*`` / ``*`` that
        matches at least one declared name. Raises ``InvalidPermission``,
        ``UndeclaredPermission``."""
        if len(pattern) > PATTERN_MAX:
            raise InvalidPermission(f"Permission patterns are at most {PATTERN_MAX} characters.")
        if pattern == "*":
            return pattern
        if _PREFIX.fullmatch(pattern):
            if not any(Grants.of([pattern]).allows(name) for name in self._by_name):
                raise UndeclaredPermission(pattern, self._by_name)
            return pattern
        if not _NAME.fullmatch(pattern):
            raise InvalidPermission(
                f"{pattern!r} is not a permission pattern: use a permission's name "
                "(notes:write), a prefix and * (notes:*), or * alone."
            )
        return self.require(pattern)


@dataclass(frozen=True)
class Grants:
    """A user's permission patterns, compiled for cheap checks."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Grants:
        exact: set[str] = set()
        prefixes: set[str] = set()
        everything = False
        for pattern in patterns:
            if pattern == "*":
                everything = True
            elif pattern.endswith(":*"):
                prefixes.add(pattern[:-1])  # "notes:*" → "notes:"
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(sorted(prefixes)), everything)

    def allows(self, permission: str) -> bool:
        if self.everything or permission in self.exact:
            return True
        return any(permission.startswith(prefix) for prefix in self.prefixes)


NO_GRANTS = Grants()


def check_role_name(name: str) -> str:
    if not _ROLE.fullmatch(name):
        raise InvalidRoleName(name)
    return name


def check_description(text: str) -> str:
    if len(text) > DESCRIPTION_MAX:
        raise InvalidPermission(f"Descriptions are at most {DESCRIPTION_MAX} characters.")
    if not text.isprintable():
        raise InvalidPermission("Descriptions cannot contain control characters.")
    return text


@dataclass(frozen=True)
class Role:
    """A role as stored: its name, description and the patterns it grants."""

    id: int
    name: str
    description: str
    patterns: tuple[str, ...]
    holders: int = 0
    """How many users hold it (filled in by listings)."""
