"""What the service needs from storage. The SQL adapter in ``authdemo.db`` implements it;
tests implement it with fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from .domain import AuditEvent, AuthSession, ClientInfo, ThrottleState, User, UserCredentials
from .events import SessionEvent


@dataclass(frozen=True)
class ClaimedTicket:
    session_id: int
    bound_token_hash: str | None
    expires_at: datetime
    already_redeemed: bool


class UserRepository(Protocol):
    async def add(self, username: str, key: str, password_hash: str, now: datetime) -> User:
        """Insert a user; raises ``UsernameTaken`` when the key exists."""
        ...

    async def get(self, user_id: int) -> User | None: ...

    async def get_by_key(self, key: str) -> User | None: ...

    async def get_credentials(self, key: str) -> UserCredentials | None: ...

    async def set_password_hash(
        self, user_id: int, password_hash: str, changed_at: datetime | None
    ) -> None:
        """Store a new hash; ``changed_at`` is None for a silent parameter upgrade."""
        ...

    async def set_active(self, user_id: int, active: bool) -> None: ...

    async def list(self) -> list[User]: ...


class SessionRepository(Protocol):
    async def add(
        self,
        token_hash: str,
        user_id: int | None,
        now: datetime,
        idle_expires_at: datetime,
        absolute_expires_at: datetime,
        client: ClientInfo,
        revoked: bool = False,
        data: dict[str, Any] | None = None,
    ) -> AuthSession: ...

    async def get(self, session_id: int) -> AuthSession | None: ...

    async def find_by_token_hash(self, token_hash: str) -> tuple[AuthSession, User | None] | None:
        """The session whose cookie hashes to ``token_hash``, with its user if any."""
        ...

    async def get_with_user(self, session_id: int) -> tuple[AuthSession, User | None] | None: ...

    async def touch(
        self, session_id: int, last_seen_at: datetime, idle_expires_at: datetime
    ) -> None: ...

    async def set_token_hash(self, session_id: int, token_hash: str) -> None: ...

    async def get_data_for_update(self, session_id: int) -> dict[str, Any] | None:
        """The session's data ({} when none), the row locked for this transaction."""
        ...

    async def set_data(self, session_id: int, data: dict[str, Any] | None) -> None: ...

    async def revoke(self, session_ids: list[int], now: datetime) -> list[int]:
        """Revoke the live ones among ``session_ids``; return those actually revoked."""
        ...

    async def live_ids_for_user(self, user_id: int, now: datetime) -> list[int]: ...

    async def list_for_user(self, user_id: int, now: datetime) -> list[AuthSession]: ...

    async def list_live(self, user_id: int | None, now: datetime) -> list[tuple[AuthSession, User]]:
        """Live signed-in sessions, of one user or of everyone, newest activity first."""
        ...

    async def count_live_by_user(self, now: datetime) -> dict[int, int]: ...

    async def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows dead before ``now``; return how many were deleted."""
        ...


class TicketRepository(Protocol):
    async def add(
        self,
        ticket_hash: str,
        session_id: int,
        bound_token_hash: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None: ...

    async def claim(self, ticket_hash: str, now: datetime) -> ClaimedTicket | None:
        """Mark the ticket redeemed (once only) and return what it was issued for."""
        ...

    async def purge_expired(self, now: datetime, limit: int) -> int: ...


class SecretRepository(Protocol):
    async def get(self, name: str) -> str | None: ...

    async def add(self, name: str, value: str) -> bool:
        """Insert unless present; False when another process won the race."""
        ...


class AuditRepository(Protocol):
    async def add(self, event: AuditEvent) -> None: ...

    async def list(self, user_id: int | None, limit: int) -> list[AuditEvent]:
        """Newest first; all users when ``user_id`` is None."""
        ...


class ThrottleRepository(Protocol):
    async def get(self, keys: list[str]) -> dict[str, ThrottleState]: ...

    async def save(
        self, key: str, failures: int, blocked_until: datetime | None, now: datetime
    ) -> None:
        """Insert or update the row for ``key``."""
        ...

    async def clear(self, key: str) -> None: ...

    async def purge(self, idle_since: datetime, now: datetime, limit: int) -> int:
        """Delete rows untouched since ``idle_since`` whose block (if any) has ended."""
        ...


class BroadcastRepository(Protocol):
    async def add(self, event: SessionEvent, now: datetime) -> int: ...

    async def after(self, last_id: int, limit: int) -> list[tuple[int, SessionEvent]]:
        """Events with an id above ``last_id``, oldest first."""
        ...

    async def last_id(self) -> int: ...

    async def purge(self, before: datetime, limit: int) -> int: ...


class UnitOfWork(Protocol):
    users: UserRepository
    sessions: SessionRepository
    tickets: TicketRepository
    secrets: SecretRepository
    audit: AuditRepository
    throttle: ThrottleRepository
    broadcasts: BroadcastRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = False) -> UnitOfWork:
        """A unit of work; ``write=True`` takes the write lock up front where that matters."""
        ...
