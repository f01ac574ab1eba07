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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .bootstrap import HasherFactory, runtime
from .config import Settings
from .domain import AuditEvent, AuthSession, Clock, SignedIn, User
from .service import AuthService, UserSummary

if TYPE_CHECKING:
    from sanic import Sanic


class Accounts:
    """Create users, set passwords, disable and enable them, end their sessions, reset
    their two-factor sign-in, list them and read the audit trail.

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
    ) -> AsyncIterator[Accounts]:
        """Open the database of ``settings`` (default: ``Settings.from_env()``) for the
        block, as the ``authdemo`` commands do. Running servers hear of its revocations
        through the broadcast outbox. ``clock`` and ``hasher_factory`` are for tests.

        Raises ``ConfigError`` (a bad ``AUTHDEMO_*`` value), ``SchemaNotReady`` (the
        database is missing or not migrated), ``StorageUnavailable``."""
        async with runtime(
            settings or Settings.from_env(), clock=clock, hasher_factory=hasher_factory
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

    # --- the audit trail --------------------------------------------------------------

    async def events(self, username: str | None = None, limit: int = 50) -> list[AuditEvent]:
        """The audit trail, newest first, of one user or of everyone (at most ``limit``).

        Raises ``UnknownUser``; ``ValueError`` for a ``limit`` below 1."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return await self._service.audit_events(username, limit)
