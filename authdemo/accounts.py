"""``Accounts``: the account operations of the ``authdemo`` commands, for an app's own code
(its admin routes, its sign-up page, its tests) — no websocket needed.

Each method is the service call the command makes, so it writes the same audit row and
has the same live effect: whatever ends sessions writes their revocation to the
broadcast outbox in the same transaction, and every open view of them, on every worker
and host, signs out (at once in this process, within the follower's poll elsewhere).

Get one from a running app (``Accounts.of(request.app)``), or open one on the database
for a script or a test (``async with Accounts.open(settings) as accounts:``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .bootstrap import HasherFactory, runtime
from .config import Settings
from .domain import AuditEvent, AuthSession, Clock, SignedIn, User
from .permissions import Permission, PermissionRegistry, Role
from .service import AuthService, UserSummary

if TYPE_CHECKING:
    from sanic import Sanic


class Accounts:
    """Create users, set passwords, disable and enable them, end their sessions, reset
    their two-factor sign-in, give and take roles, list them and read the audit trail.

    Users are named as at sign-in (case-insensitively: ``"ALICE"`` finds ``alice``).
    Every method may also raise ``StorageUnavailable`` (the database could not be
    reached in time; nothing changed)."""

    def __init__(self, service: AuthService) -> None:
        self._service = service

    @classmethod
    def of(cls, app: Sanic[Any, Any]) -> Accounts:
        """The accounts of a running app made by ``create_app`` (in a route or a listener
        after server start: ``Accounts.of(request.app)``). Its revocations reach this
        worker's open views at once. Raises ``RuntimeError`` before the app has started."""
        service: AuthService | None = getattr(app.ctx, "service", None)
        if service is None:
            raise RuntimeError(
                "Accounts.of(app) works on an app made by authdemo.create_app(), once it "
                "has started; elsewhere use: async with Accounts.open(settings) as accounts"
            )
        return cls(service)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        hasher_factory: HasherFactory | None = None,
        permissions: Iterable[Permission] = (),
    ) -> AsyncIterator[Accounts]:
        """Open the database of ``settings`` (default: ``Settings.from_env()``) for the
        block, as the ``authdemo`` commands do. Running servers hear of its revocations
        and role changes through the broadcast outbox. ``permissions``: the app's
        declared permissions (what ``create_role`` may grant besides ``authdemo:admin``).
        ``clock`` and ``hasher_factory`` are for tests.

        Raises ``ConfigError`` (a bad ``AUTHDEMO_*`` value), ``SchemaNotReady`` (the
        database is missing or not migrated), ``StorageUnavailable``."""
        async with runtime(
            settings or Settings.from_env(),
            clock=clock,
            hasher_factory=hasher_factory,
            permissions=PermissionRegistry(permissions),
        ) as rt:
            yield cls(rt.service)

    # --- users ------------------------------------------------------------------------

    async def create_user(self, username: str, password: str, *, email: str | None = None) -> User:
        """Create an active user (audited: ``user_created``), with the e-mail address
        ``email`` if given — counted as verified: the caller vouches for it.

        Raises ``InvalidUsername`` (letters, digits and ``. _ - @ +`` only, at most 64),
        ``InvalidPassword`` (outside the policy: 8 to 1024 characters, no control
        characters), ``UsernameTaken`` (case-insensitively), ``InvalidEmail``,
        ``EmailTaken`` (another account has the address; nothing was created)."""
        if email is not None:
            return await self._service.create_user_with_email(username, password, email)
        return await self._service.create_user(username, password)

    async def set_email(self, username: str, email: str | None) -> User:
        """Give the user this e-mail address (counted as verified), or none (``None``);
        a change of address the user had started is void (audited: ``email_changed``).
        Returns the user as changed.

        Raises ``UnknownUser``, ``InvalidEmail``, ``EmailTaken`` (nothing changed)."""
        return await self._service.set_email(username, email)

    async def get_user_by_email(self, email: str) -> User | None:
        """The user with this address (any case), or None. Raises ``InvalidEmail``."""
        return await self._service.find_user_by_email(email)

    async def get_user(self, username: str) -> User:
        """The user named ``username``. Raises ``UnknownUser``."""
        return await self._service.get_user(username)

    async def list_users(self) -> list[UserSummary]:
        """Every user, with how many live sessions they have and whether two-factor
        sign-in is on, by name."""
        return await self._service.list_users()

    async def set_password(self, username: str, password: str) -> int:
        """Set the user's password; every session of theirs ends, live (audited:
        ``password_changed``, "by operator"). Returns how many sessions ended.

        Raises ``UnknownUser``, ``InvalidPassword`` (nothing changed)."""
        return await self._service.set_password(username, password)

    async def disable_user(self, username: str) -> int:
        """No more sign-ins; every session of the user ends, live (audited:
        ``user_disabled``). Returns how many sessions ended. Raises ``UnknownUser``."""
        return await self._service.set_active(username, False)

    async def enable_user(self, username: str) -> None:
        """Let a disabled user sign in again (audited: ``user_enabled``); the sessions
        that disabling ended stay ended. Raises ``UnknownUser``."""
        await self._service.set_active(username, True)

    async def reset_two_factor(self, username: str) -> int:
        """Remove the user's two-factor sign-in (a lost phone): every session of theirs
        ends, live; they sign in with the password and may set it up again (audited:
        ``mfa_reset``). Returns how many sessions ended.

        Raises ``UnknownUser``, ``MfaStateConflict`` (two-factor sign-in is not on)."""
        return await self._service.reset_mfa(username)

    # --- sessions ---------------------------------------------------------------------

    async def sessions(self, username: str | None = None) -> list[SignedIn]:
        """Live signed-in sessions (each with its user), of one user or of everyone,
        most recently active first. Raises ``UnknownUser``."""
        return [SignedIn(s, u) for s, u in await self._service.live_sessions(username)]

    async def revoke_sessions(self, username: str) -> int:
        """End every session of the user, live; sign-ins under way end too (audited:
        ``revoked``, when there was one). Returns how many ended. Raises ``UnknownUser``."""
        return await self._service.revoke_user_sessions(username)

    async def end_session(self, session_id: int, *, user_id: int) -> AuthSession:
        """End one session, live — only if it is ``user_id``'s (a session id that came
        from a request can be forged; checked and ended in one conditional statement).
        Audited: ``revoked``. Returns the session as ended.

        Raises ``UnknownSession`` (no live session of that user has that id: nothing
        changed)."""
        return await self._service.end_session(session_id, user_id)

    async def end_any_session(self, session_id: int) -> AuthSession:
        """End one signed-in session, live, whoever's it is (an operator's form of
        ``end_session``; never with an id a user sent). Audited: ``revoked``.

        Raises ``UnknownSession`` (no live signed-in session has that id)."""
        return await self._service.end_session(session_id, None)

    # --- roles ------------------------------------------------------------------------

    async def create_role(
        self, name: str, permissions: Iterable[str], description: str = ""
    ) -> Role:
        """Create a role granting ``permissions`` — declared names, ``prefix:*`` or
        ``*`` (audited: ``role_created``).

        Raises ``InvalidRoleName`` (1 to 64 lower-case letters, digits and ``_ . -``),
        ``InvalidPermission`` (a malformed pattern, none at all, or a description with
        control characters or over 255 characters), ``UndeclaredPermission`` (a pattern
        that matches no declared permission), ``RoleExists``."""
        return await self._service.create_role(name, list(permissions), description)

    async def delete_role(self, name: str) -> int:
        """Delete a role; everyone who held it loses it, live (audited: ``role_deleted``,
        and ``role_revoked`` for each holder). Returns how many held it.

        Raises ``UnknownRole``, ``BuiltInRole`` (``admin`` cannot be deleted)."""
        return await self._service.delete_role(name)

    async def grant_role(self, username: str, role: str) -> bool:
        """Give the user the role; every open view of theirs follows within a second
        (audited: ``role_granted``). False (nothing changed) when they held it already.

        Raises ``UnknownUser``, ``UnknownRole``."""
        return await self._service.grant_role(username, role)

    async def revoke_role(self, username: str, role: str) -> bool:
        """Take the role from the user; every open view of theirs follows within a
        second, and every guarded action is refused from the moment this returns
        (audited: ``role_revoked``). False when they did not hold it.

        Raises ``UnknownUser``, ``UnknownRole``."""
        return await self._service.revoke_role(username, role)

    async def roles(self) -> list[Role]:
        """Every role with its permissions and how many users hold it, by name."""
        return await self._service.list_roles()

    async def roles_of(self, username: str) -> list[str]:
        """The names of the roles the user holds, sorted. Raises ``UnknownUser``."""
        return await self._service.roles_of(username)

    async def has_permission(self, username: str, permission: str) -> bool:
        """Whether the user (active) holds ``permission`` now, read from the database.

        Raises ``UnknownUser``, ``UndeclaredPermission``."""
        user = await self._service.get_user(username)
        return await self._service.user_has_permission(user.id, permission)

    # --- the audit trail --------------------------------------------------------------

    async def events(self, username: str | None = None, limit: int = 50) -> list[AuditEvent]:
        """The audit trail, newest first, of one user or of everyone (at most ``limit``).

        Raises ``UnknownUser``; ``ValueError`` for a ``limit`` below 1."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return await self._service.audit_events(username, limit)
