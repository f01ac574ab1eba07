"""In-memory stand-ins for the storage ports, a controllable clock and a cheap hasher."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from authdemo.domain import (
    AuditEvent,
    AuthSession,
    ClientInfo,
    DuplicateToken,
    ThrottlePolicy,
    ThrottleState,
    User,
    UserCredentials,
    UsernameTaken,
    may_act,
)
from authdemo.events import InProcessEventBus, SessionEvent
from authdemo.mail import CodePurpose, EmailCode, EmailTaken, OutgoingMail, QueuedMail
from authdemo.mfa import Challenge, MfaRecord
from authdemo.permissions import Role, RoleExists
from authdemo.ports import AccountRows, BroadcastCursor, ClaimedTicket

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BROWSER = "b" * 64
"""The hash of the cookie "the browser" holds, for service calls that bind a ticket to one."""


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeHasher:
    """'Hashes' are readable; ``outdated`` marks hashes that verify but need an upgrade."""

    def __init__(self) -> None:
        self.hash_calls = 0
        self.verify_calls = 0
        self.dummy_calls = 0
        self.outdated: set[str] = set()

    async def hash(self, password: str) -> str:
        self.hash_calls += 1
        return f"fake${password}"

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        self.verify_calls += 1
        ok = password_hash == f"fake${password}" or password_hash == f"old${password}"
        upgrade = f"fake${password}" if ok and password_hash.startswith("old$") else None
        return ok, upgrade

    async def dummy_verify(self, password: str) -> None:
        self.dummy_calls += 1

    def close(self) -> None:
        pass


@dataclass
class _Tables:
    users: dict[int, tuple[User, str, str]] = field(default_factory=dict)  # user, key, hash
    sessions: dict[int, AuthSession] = field(default_factory=dict)
    tickets: dict[str, dict[str, object]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    throttle: dict[str, ThrottleState] = field(default_factory=dict)
    broadcasts: list[tuple[int, SessionEvent, datetime]] = field(default_factory=list)
    mfa: dict[int, MfaRecord] = field(default_factory=dict)
    recovery: dict[int, dict[str, datetime | None]] = field(default_factory=dict)
    challenges: dict[str, Challenge] = field(default_factory=dict)
    roles: dict[int, Role] = field(default_factory=dict)
    holdings: set[tuple[int, int]] = field(default_factory=set)  # (user id, role id)
    email_keys: dict[int, str] = field(default_factory=dict)  # user id → address key
    codes: dict[tuple[int, str], EmailCode] = field(default_factory=dict)
    limits: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    outbox: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class FakeUsers:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(self, username: str, key: str, password_hash: str, now: datetime) -> User:
        if any(k == key for _, k, _ in self.t.users.values()):
            raise UsernameTaken(username)
        user = User(self.t.new_id(), username, True, now, now)
        self.t.users[user.id] = (user, key, password_hash)
        return user

    async def get(self, user_id: int) -> User | None:
        found = self.t.users.get(user_id)
        return found[0] if found else None

    async def get_by_key(self, key: str) -> User | None:
        return next((u for u, k, _ in self.t.users.values() if k == key), None)

    async def get_credentials(self, key: str) -> UserCredentials | None:
        return next((UserCredentials(u, h) for u, k, h in self.t.users.values() if k == key), None)

    async def lock(self, user_id: int) -> UserCredentials | None:
        found = self.t.users.get(user_id)
        return UserCredentials(found[0], found[2]) if found else None

    async def lock_signing_in(self, user_id: int) -> tuple[UserCredentials, bool] | None:
        locked = await self.lock(user_id)
        if locked is None:
            return None
        record = self.t.mfa.get(user_id)
        return locked, record is not None and record.confirmed_at is not None

    async def set_password_hash(
        self, user_id: int, password_hash: str, changed_at: datetime
    ) -> int:
        user, key, _ = self.t.users[user_id]
        user = replace(
            user, password_changed_at=changed_at, credential_epoch=user.credential_epoch + 1
        )
        self.t.users[user_id] = (user, key, password_hash)
        return user.credential_epoch

    async def upgrade_hash(self, user_id: int, verified_hash: str, new_hash: str) -> bool:
        user, key, stored = self.t.users[user_id]
        if stored != verified_hash:
            return False
        self.t.users[user_id] = (user, key, new_hash)
        return True

    async def set_active(self, user_id: int, active: bool) -> int:
        user, key, h = self.t.users[user_id]
        epoch = user.credential_epoch + (not active)
        self.t.users[user_id] = (replace(user, is_active=active, credential_epoch=epoch), key, h)
        return epoch

    async def bump_epoch(self, user_id: int) -> int:
        user, key, h = self.t.users[user_id]
        user = replace(user, credential_epoch=user.credential_epoch + 1)
        self.t.users[user_id] = (user, key, h)
        return user.credential_epoch

    async def list(self) -> list[User]:
        return sorted((u for u, _, _ in self.t.users.values()), key=lambda u: u.username)


class FakeSessions:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(
        self,
        token_hash: str,
        user_id: int | None,
        now: datetime,
        idle_expires_at: datetime,
        absolute_expires_at: datetime,
        client: ClientInfo,
        revoked: bool = False,
        data: dict[str, object] | None = None,
        user_epoch: int = 0,
    ) -> AuthSession:
        if any(s.token_hash == token_hash for s in self.t.sessions.values()):
            raise DuplicateToken("unique token hash")
        session = AuthSession(
            self.t.new_id(),
            token_hash,
            user_id,
            now,
            now,
            idle_expires_at,
            absolute_expires_at,
            now if revoked else None,
            client.addr,
            client.user_agent,
            data=copy.deepcopy(data),
            user_epoch=user_epoch,
        )
        self.t.sessions[session.id] = session
        return session

    async def get(self, session_id: int) -> AuthSession | None:
        return self.t.sessions.get(session_id)

    def _with_user(self, s: AuthSession | None) -> tuple[AuthSession, User | None] | None:
        if s is None:
            return None
        found = self.t.users.get(s.user_id) if s.user_id is not None else None
        return s, (found[0] if found else None)

    async def find_by_token_hash(self, token_hash: str) -> tuple[AuthSession, User | None] | None:
        return self._with_user(
            next((s for s in self.t.sessions.values() if s.token_hash == token_hash), None)
        )

    async def get_with_user(
        self, session_id: int, *, lock: bool = False
    ) -> tuple[AuthSession, User | None] | None:
        return self._with_user(self.t.sessions.get(session_id))

    async def touch(
        self,
        session_id: int,
        last_seen_at: datetime,
        idle_expires_at: datetime,
        now: datetime,
        user_epoch: int,
    ) -> bool:
        found = self._with_user(self.t.sessions.get(session_id))
        if found is None or not may_act(found[0], found[1], now):
            return False
        if found[0].user_epoch != user_epoch:
            return False
        self.t.sessions[session_id] = replace(
            found[0], last_seen_at=last_seen_at, idle_expires_at=idle_expires_at
        )
        return True

    async def get_data_for_update(self, session_id: int) -> dict[str, object] | None:
        s = self.t.sessions.get(session_id)
        return dict(copy.deepcopy(s.data) or {}) if s is not None else {}

    async def set_data(self, session_id: int, data: dict[str, object] | None) -> None:
        self.t.sessions[session_id] = replace(self.t.sessions[session_id], data=copy.deepcopy(data))

    async def set_token_hash(
        self,
        session_id: int,
        token_hash: str,
        user_epoch: int | None = None,
        *,
        replaced: str | None = None,
        unless_taken: bool = False,
    ) -> bool:
        if unless_taken and any(
            s.signed_in_from == replaced and sid != session_id for sid, s in self.t.sessions.items()
        ):
            return False
        s = self.t.sessions[session_id]
        epoch = s.user_epoch if user_epoch is None else user_epoch
        first = s.signed_in_from if s.signed_in_from is not None else replaced
        self.t.sessions[session_id] = replace(
            s, token_hash=token_hash, user_epoch=epoch, signed_in_from=first
        )
        return True

    async def revoke(self, session_ids: list[int], now: datetime) -> list[int]:
        done = []
        for sid in session_ids:
            s = self.t.sessions.get(sid)
            if s is not None and s.is_live(now):
                self.t.sessions[sid] = replace(s, revoked_at=now)
                done.append(sid)
        return done

    async def sign_out(
        self, session_id: int, now: datetime, *, epoch: int | None
    ) -> tuple[AuthSession, str] | None:
        s = self.t.sessions.get(session_id)
        if s is None or not s.is_live(now) or epoch not in (None, s.user_epoch):
            return None
        self.t.sessions[session_id] = s = replace(s, revoked_at=now)
        user = self.t.users.get(s.user_id) if s.user_id is not None else None
        return s, user[0].username if user is not None else ""

    async def revoke_one(
        self, session_id: int, now: datetime, *, user_id: int | None
    ) -> AuthSession | None:
        s = self.t.sessions.get(session_id)
        owned = s is not None and s.user_id is not None and user_id in (None, s.user_id)
        if s is None or not owned or not s.is_live(now):
            return None
        self.t.sessions[session_id] = s = replace(s, revoked_at=now)
        return s

    async def retire_token(self, token_hash: str, now: datetime, expires_at: datetime) -> None:
        for sid, s in self.t.sessions.items():
            if s.token_hash == token_hash:
                self.t.sessions[sid] = replace(s, revoked_at=s.revoked_at or now)
                return
        await self.add(token_hash, None, now, expires_at, expires_at, ClientInfo(), revoked=True)

    async def live_ids_for_user(self, user_id: int, now: datetime) -> list[int]:
        return [s.id for s in self.t.sessions.values() if s.user_id == user_id and s.is_live(now)]

    async def list_for_user(self, user_id: int, now: datetime) -> list[AuthSession]:
        return [s for s in self.t.sessions.values() if s.user_id == user_id and s.is_live(now)]

    async def accounts_of(
        self, session_ids: Collection[int], now: datetime
    ) -> dict[int, AccountRows]:
        found: dict[int, AccountRows] = {}
        for session_id in session_ids:
            session = self.t.sessions.get(session_id)
            owner = self.t.users.get(session.user_id) if session and session.user_id else None
            if session is None or owner is None:
                continue
            user = owner[0]
            live = sorted(
                (s for s in self.t.sessions.values() if s.user_id == user.id and s.is_live(now)),
                key=lambda s: (s.last_seen_at, s.id),
                reverse=True,
            )
            record = self.t.mfa.get(user.id)
            left = sum(1 for used in self.t.recovery.get(user.id, {}).values() if used is None)
            on = record is not None and record.confirmed_at is not None
            found[session_id] = AccountRows(session, user, live, on, left)
        return found

    async def list_live(self, user_id: int | None, now: datetime) -> list[tuple[AuthSession, User]]:
        return [
            (s, self.t.users[s.user_id][0])
            for s in sorted(self.t.sessions.values(), key=lambda s: s.last_seen_at, reverse=True)
            if s.user_id is not None
            and s.is_live(now)
            and (user_id is None or s.user_id == user_id)
        ]

    async def count_live_by_user(self, now: datetime) -> dict[int, int]:
        counts: dict[int, int] = {}
        for s in self.t.sessions.values():
            if s.user_id is not None and s.is_live(now):
                counts[s.user_id] = counts.get(s.user_id, 0) + 1
        return counts

    async def purge_expired(self, now: datetime, limit: int) -> int:
        doomed = [
            s.id
            for s in self.t.sessions.values()
            if s.absolute_expires_at <= now or (s.idle_expires_at <= now and s.revoked_at is None)
        ][:limit]
        for sid in doomed:
            del self.t.sessions[sid]
        return len(doomed)


class FakeTickets:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(
        self,
        ticket_hash: str,
        session_id: int,
        bound_token_hash: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        self.t.tickets[ticket_hash] = {
            "session_id": session_id,
            "bound": bound_token_hash,
            "expires_at": expires_at,
            "redeemed_at": None,
        }

    async def claim(self, ticket_hash: str, now: datetime) -> ClaimedTicket | None:
        row = self.t.tickets.get(ticket_hash)
        if row is None:
            return None
        already = row["redeemed_at"] is not None
        row["redeemed_at"] = row["redeemed_at"] or now
        return ClaimedTicket(row["session_id"], row["bound"], row["expires_at"], already)  # type: ignore[arg-type]

    async def purge_expired(self, now: datetime, limit: int) -> int:
        doomed = [h for h, r in self.t.tickets.items() if r["expires_at"] <= now][:limit]  # type: ignore[operator]
        for h in doomed:
            del self.t.tickets[h]
        return len(doomed)


class FakeSecrets:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get(self, name: str) -> str | None:
        return self.t.secrets.get(name)

    async def add(self, name: str, value: str) -> bool:
        if name in self.t.secrets:
            return False
        self.t.secrets[name] = value
        return True


class FakeAudit:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(self, event: AuditEvent) -> None:
        self.t.audit.append(event)

    async def purge(self, before: datetime, limit: int) -> int:
        doomed = [id(e) for e in self.t.audit if e.at < before][:limit]
        self.t.audit = [e for e in self.t.audit if id(e) not in doomed]
        return len(doomed)

    async def list(self, user_id: int | None, limit: int) -> list[AuditEvent]:
        chosen = [e for e in self.t.audit if user_id is None or e.user_id == user_id]
        return list(reversed(chosen))[:limit]


class FakeThrottle:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get(self, keys: list[str]) -> dict[str, ThrottleState]:
        return {k: self.t.throttle[k] for k in keys if k in self.t.throttle}

    async def lock(self, keys: list[str], now: datetime) -> dict[str, ThrottleState]:
        for key in keys:
            self.t.throttle.setdefault(key, ThrottleState(0, None, now))
        return await self.get(keys)

    async def save(
        self, key: str, failures: int, blocked_until: datetime | None, now: datetime
    ) -> None:
        self.t.throttle[key] = ThrottleState(failures, blocked_until, now)

    async def save_all(self, states: dict[str, ThrottleState]) -> None:
        self.t.throttle.update(states)

    async def clear(self, key: str) -> None:
        self.t.throttle.pop(key, None)

    async def settle(self, forget: str, refund: str, threshold: int) -> None:
        if forget in self.t.throttle:
            self.t.throttle[forget] = replace(
                self.t.throttle[forget], failures=0, blocked_until=None
            )
        state = self.t.throttle.get(refund)
        if state is not None and state.failures > 0:
            self.t.throttle[refund] = ThrottlePolicy().refund(state, threshold)

    async def refund(self, key: str, threshold: int) -> None:
        state = self.t.throttle.get(key)
        if state is not None:
            refunded = ThrottlePolicy().refund(state, threshold)
            if refunded.failures == 0:
                del self.t.throttle[key]
            else:
                self.t.throttle[key] = refunded

    async def purge(self, idle_since: datetime, now: datetime, limit: int) -> int:
        doomed = [
            k
            for k, s in self.t.throttle.items()
            if (s.blocked_until is None or s.blocked_until <= now)
            and (s.failures == 0 or s.updated_at < idle_since)
        ][:limit]
        for k in doomed:
            del self.t.throttle[k]
        return len(doomed)


class FakeBroadcasts:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(self, event: SessionEvent, now: datetime) -> int:
        event_id = self.t.new_id()
        self.t.broadcasts.append((event_id, event, now))
        return event_id

    async def add_all(self, events: list[SessionEvent], now: datetime) -> list[int]:
        return [await self.add(event, now) for event in events]

    async def position(self) -> BroadcastCursor:
        return BroadcastCursor(last_id=max((i for i, _, _ in self.t.broadcasts), default=0))

    async def changes(
        self, cursor: BroadcastCursor
    ) -> tuple[BroadcastCursor, list[tuple[int, SessionEvent]]]:
        rows = [(i, e) for i, e, _ in self.t.broadcasts if i > cursor.last_id]
        return BroadcastCursor(last_id=rows[-1][0] if rows else cursor.last_id), rows

    async def purge(self, before: datetime, limit: int) -> int:
        doomed = [i for i, _, at in self.t.broadcasts if at < before][:limit]
        self.t.broadcasts = [b for b in self.t.broadcasts if b[0] not in doomed]
        return len(doomed)


class FakeMfa:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get(self, user_id: int) -> MfaRecord | None:
        return self.t.mfa.get(user_id)

    async def start(
        self, user_id: int, sealed_secret: str, now: datetime, expires_at: datetime
    ) -> bool:
        found = self.t.mfa.get(user_id)
        if found is not None and found.confirmed_at is not None:
            return False
        self.t.mfa[user_id] = MfaRecord(user_id, sealed_secret, now, None, expires_at, 0)
        return True

    async def confirm(self, user_id: int, sealed_secret: str, step: int, now: datetime) -> bool:
        found = self.t.mfa.get(user_id)
        if (
            found is None
            or found.sealed_secret != sealed_secret
            or found.confirmed_at is not None
            or found.pending_expires_at is None
            or found.pending_expires_at <= now
        ):
            return False
        self.t.mfa[user_id] = replace(
            found, confirmed_at=now, pending_expires_at=None, last_step=step
        )
        return True

    async def accept_step(self, user_id: int, step: int) -> bool:
        found = self.t.mfa.get(user_id)
        if found is None or found.confirmed_at is None or not found.last_step < step:
            return False
        self.t.mfa[user_id] = replace(found, last_step=step)
        return True

    async def delete(self, user_id: int, *, pending_only: bool = False) -> bool:
        found = self.t.mfa.get(user_id)
        if found is None or (pending_only and found.confirmed_at is not None):
            return False
        del self.t.mfa[user_id]
        if not pending_only:
            self.t.recovery.pop(user_id, None)
            await self.drop_challenges(user_id)
        return True

    async def enabled_user_ids(self) -> set[int]:
        return {u for u, r in self.t.mfa.items() if r.confirmed_at is not None}

    async def sealed_secrets(self) -> list[tuple[int, str]]:
        return sorted((u, r.sealed_secret) for u, r in self.t.mfa.items())

    async def replace_sealed(self, user_id: int, old: str, new: str) -> bool:
        found = self.t.mfa.get(user_id)
        if found is None or found.sealed_secret != old:
            return False
        self.t.mfa[user_id] = replace(found, sealed_secret=new)
        return True

    async def add_recovery_codes(self, user_id: int, digests: list[str], now: datetime) -> None:
        self.t.recovery[user_id] = dict.fromkeys(digests)

    async def spend_recovery_code(self, user_id: int, digest: str, now: datetime) -> bool:
        codes = self.t.recovery.get(user_id, {})
        if digest not in codes or codes[digest] is not None:
            return False
        codes[digest] = now
        return True

    async def recovery_codes_left(self, user_id: int) -> int:
        return sum(1 for used in self.t.recovery.get(user_id, {}).values() if used is None)

    async def add_challenge(self, challenge_hash: str, challenge: Challenge, now: datetime) -> None:
        self.t.challenges[challenge_hash] = challenge

    async def get_challenge(self, challenge_hash: str) -> Challenge | None:
        return self.t.challenges.get(challenge_hash)

    async def take_challenge(self, challenge_hash: str) -> bool:
        return self.t.challenges.pop(challenge_hash, None) is not None

    async def drop_challenges(self, user_id: int) -> int:
        doomed = [h for h, c in self.t.challenges.items() if c.user_id == user_id]
        for h in doomed:
            del self.t.challenges[h]
        return len(doomed)

    async def purge(self, now: datetime, limit: int) -> int:
        doomed = [h for h, c in self.t.challenges.items() if c.expires_at <= now][:limit]
        for h in doomed:
            del self.t.challenges[h]
        pending = [
            u
            for u, r in self.t.mfa.items()
            if r.confirmed_at is None
            and r.pending_expires_at is not None
            and r.pending_expires_at <= now
        ][: max(0, limit - len(doomed))]
        for u in pending:
            del self.t.mfa[u]
        return len(doomed) + len(pending)


class FakeRoles:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(self, name: str, description: str, patterns: list[str], now: datetime) -> Role:
        if any(r.name == name for r in self.t.roles.values()):
            raise RoleExists(name)
        role = Role(self.t.new_id(), name, description, tuple(sorted(set(patterns))))
        self.t.roles[role.id] = role
        return role

    async def get(self, name: str, *, lock: bool = False) -> Role | None:
        return next((r for r in self.t.roles.values() if r.name == name), None)

    async def list(self) -> list[Role]:
        return [
            replace(r, holders=sum(1 for _, rid in self.t.holdings if rid == r.id))
            for r in sorted(self.t.roles.values(), key=lambda r: r.name)
        ]

    async def delete(self, role_id: int) -> list[int]:
        holders = sorted(u for u, r in self.t.holdings if r == role_id)
        self.t.holdings = {(u, r) for u, r in self.t.holdings if r != role_id}
        self.t.roles.pop(role_id, None)
        return holders

    async def grant(self, user_id: int, role_id: int, now: datetime) -> bool:
        if (user_id, role_id) in self.t.holdings:
            return False
        self.t.holdings.add((user_id, role_id))
        return True

    async def revoke(self, user_id: int, role_id: int) -> bool:
        if (user_id, role_id) not in self.t.holdings:
            return False
        self.t.holdings.discard((user_id, role_id))
        return True

    async def patterns_of(self, user_id: int) -> list[str]:
        return sorted(
            {p for u, r in self.t.holdings if u == user_id for p in self.t.roles[r].patterns}
        )

    async def acting_with_patterns(
        self, session_id: int
    ) -> tuple[AuthSession, User | None, list[str]] | None:
        session = self.t.sessions.get(session_id)
        if session is None:
            return None
        found = self.t.users.get(session.user_id) if session.user_id is not None else None
        user = found[0] if found else None
        return session, user, await self.patterns_of(user.id) if user is not None else []

    async def active_patterns(self, user_id: int) -> list[str] | None:
        found = self.t.users.get(user_id)
        if found is None or not found[0].is_active:
            return None
        return await self.patterns_of(user_id)

    async def names_by_user(self) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for u, r in self.t.holdings:
            found.setdefault(u, []).append(self.t.roles[r].name)
        return {u: sorted(names) for u, names in found.items()}


class FakeEmails:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def find_user(self, email_key: str) -> User | None:
        found = [uid for uid, key in self.t.email_keys.items() if key == email_key]
        return self.t.users[found[0]][0] if found else None

    async def set_email(
        self,
        user_id: int,
        email: str | None,
        email_key: str | None,
        verified_at: datetime | None,
        *,
        signup_expires_at: datetime | None = None,
    ) -> None:
        if email_key is not None and any(
            key == email_key and uid != user_id for uid, key in self.t.email_keys.items()
        ):
            raise EmailTaken()
        user, key, h = self.t.users[user_id]
        user = replace(
            user, email=email, email_verified_at=verified_at, signup_expires_at=signup_expires_at
        )
        self.t.users[user_id] = (user, key, h)
        if email_key is None:
            self.t.email_keys.pop(user_id, None)
        else:
            self.t.email_keys[user_id] = email_key

    async def mark_verified(self, user_id: int, now: datetime) -> bool:
        user, key, h = self.t.users[user_id]
        if user.signup_expires_at is None:
            return False
        user = replace(user, email_verified_at=now, signup_expires_at=None)
        self.t.users[user_id] = (user, key, h)
        return True

    async def purge_unverified(self, now: datetime, limit: int) -> int:
        doomed = [
            uid
            for uid, (u, _, _) in self.t.users.items()
            if u.signup_expires_at is not None and u.signup_expires_at <= now
        ][:limit]
        for uid in doomed:
            del self.t.users[uid]
            self.t.email_keys.pop(uid, None)
            for code_key in [k for k in self.t.codes if k[0] == uid]:
                del self.t.codes[code_key]
        return len(doomed)

    async def drop_unverified(self, user_id: int) -> bool:
        found = self.t.users.get(user_id)
        if found is None or found[0].signup_expires_at is None:
            return False
        del self.t.users[user_id]
        self.t.email_keys.pop(user_id, None)
        for code_key in [k for k in self.t.codes if k[0] == user_id]:
            del self.t.codes[code_key]
        return True

    async def put_code(
        self,
        user_id: int,
        purpose: CodePurpose,
        email: str,
        email_key: str,
        code_digest: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        self.t.codes[(user_id, str(purpose))] = EmailCode(
            self.t.new_id(), user_id, purpose, email, email_key, code_digest, expires_at, 0
        )

    async def get_code(self, user_id: int, purpose: CodePurpose) -> EmailCode | None:
        return self.t.codes.get((user_id, str(purpose)))

    def _by_id(self, code_id: int) -> tuple[tuple[int, str], EmailCode] | None:
        return next(((k, c) for k, c in self.t.codes.items() if c.id == code_id), None)

    async def spend_code(self, code_id: int, code_digest: str, now: datetime, tries: int) -> bool:
        found = self._by_id(code_id)
        if found is None:
            return False
        key, code = found
        if code.code_digest != code_digest or code.expires_at <= now or code.tries >= tries:
            return False
        del self.t.codes[key]
        return True

    async def count_wrong(self, code_id: int, tries: int) -> int | None:
        found = self._by_id(code_id)
        if found is None or found[1].tries >= tries:
            return None
        key, code = found
        self.t.codes[key] = replace(code, tries=code.tries + 1)
        return code.tries + 1

    async def drop_codes(self, user_id: int, purpose: CodePurpose | None = None) -> None:
        for key in [k for k in self.t.codes if k[0] == user_id]:
            if purpose is None or key[1] == str(purpose):
                del self.t.codes[key]

    async def purge_codes(self, now: datetime, limit: int) -> int:
        doomed = [k for k, c in self.t.codes.items() if c.expires_at <= now][:limit]
        for key in doomed:
            del self.t.codes[key]
        return len(doomed)


class FakeLimits:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def hit(self, key: str, now: datetime, window: timedelta) -> tuple[int, datetime]:
        count, ends = self.t.limits.get(key, (0, now))
        if ends <= now:
            count, ends = 0, now + window
        self.t.limits[key] = (count + 1, ends)
        return count + 1, ends

    async def purge(self, now: datetime, limit: int) -> int:
        doomed = [k for k, (_, ends) in self.t.limits.items() if ends <= now][:limit]
        for key in doomed:
            del self.t.limits[key]
        return len(doomed)


class FakeOutbox:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def add(self, mail: OutgoingMail, now: datetime) -> None:
        mail_id = self.t.new_id()
        self.t.outbox[mail_id] = {
            "mail": mail,
            "created_at": now,
            "attempts": 0,
            "next": now,
            "until": None,
            "claim": None,
            "sent": None,
        }

    def _due(self, row: dict[str, Any], now: datetime) -> bool:
        return (
            row["sent"] is None
            and row["next"] <= now
            and (row["until"] is None or row["until"] <= now)
        )

    async def claim_due(
        self, now: datetime, lease: timedelta, claim: str, limit: int
    ) -> list[QueuedMail]:
        claimed = []
        for mail_id in sorted(self.t.outbox):
            row = self.t.outbox[mail_id]
            if len(claimed) < limit and self._due(row, now):
                row.update(until=now + lease, claim=claim)
                claimed.append(
                    QueuedMail(mail_id, row["mail"], row["attempts"], row["created_at"], claim)
                )
        return claimed

    async def mark_sent(self, mail_id: int, claim: str, now: datetime) -> bool:
        row = self.t.outbox.get(mail_id)
        if row is None or row["claim"] != claim or row["sent"] is not None:
            return False
        row.update(sent=now, attempts=row["attempts"] + 1, until=None)
        return True

    async def mark_failed(
        self, mail_id: int, claim: str, error: str, next_attempt_at: datetime
    ) -> bool:
        row = self.t.outbox.get(mail_id)
        if row is None or row["claim"] != claim or row["sent"] is not None:
            return False
        row.update(attempts=row["attempts"] + 1, next=next_attempt_at, until=None, claim=None)
        return True

    async def next_due(self) -> datetime | None:
        times = [
            (r["until"] if r["claim"] is not None else r["next"])
            for r in self.t.outbox.values()
            if r["sent"] is None
        ]
        return min(times) if times else None

    async def pending(self) -> int:
        return sum(r["sent"] is None for r in self.t.outbox.values())

    async def purge(self, before: datetime, limit: int) -> int:
        doomed = [i for i, r in self.t.outbox.items() if r["created_at"] < before][:limit]
        for mail_id in doomed:
            del self.t.outbox[mail_id]
        return len(doomed)


class FakeUnitOfWork:
    """Works on a copy of the tables; ``commit()`` publishes the copy. Rolled back otherwise.

    Write units run one at a time (like SQLite's ``BEGIN IMMEDIATE``), so a write never
    overwrites another's commit with an older copy."""

    def __init__(self, store: FakeStore, write: bool, one_statement: bool = False) -> None:
        self._store = store
        self.write = write
        self.one_statement = one_statement
        """Asked for as a read of one statement: one repository call at most (each of
        the SQL repositories' reads that such units make is one statement)."""
        self.calls = 0
        self.committed = False

    async def __aenter__(self) -> Self:
        if self.write:
            await self._store.write_lock.acquire()
        self._tables = t = copy.deepcopy(self._store.tables)
        self.sessions = self._counted(FakeSessions(t))
        self.roles = self._counted(FakeRoles(t))
        if self.one_statement:  # as ``SqlOneRead``: only the reads it offers
            return self
        self.users = self._counted(FakeUsers(t))
        self.tickets = self._counted(FakeTickets(t))
        self.secrets = self._counted(FakeSecrets(t))
        self.audit = self._counted(FakeAudit(t))
        self.throttle = self._counted(FakeThrottle(t))
        self.broadcasts = self._counted(FakeBroadcasts(t))
        self.mfa = self._counted(FakeMfa(t))
        self.emails = self._counted(FakeEmails(t))
        self.limits = self._counted(FakeLimits(t))
        self.outbox = self._counted(FakeOutbox(t))
        return self

    def _counted(self, repository: Any) -> Any:
        return _OneCall(repository, self) if self.one_statement else repository

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.write:
            self._store.write_lock.release()

    async def commit(self) -> None:
        if not self.write:
            raise AssertionError("commit() in a read-only unit of work")
        self._store.tables = self._tables
        self.committed = True
        self._store.commits += 1


class _OneCall:
    """A repository of a unit of one statement: a second call in the unit fails, as the
    SQL unit of work refuses a second statement (``NotOneRead``)."""

    def __init__(self, repository: Any, unit: FakeUnitOfWork) -> None:
        self._repository = repository
        self._unit = unit

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._repository, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._unit.calls += 1
            assert self._unit.calls == 1, f"a second call ({name}) in a read of one statement"
            return method(*args, **kwargs)

        return counted


class FakeStore:
    """The 'database': a factory of fake units of work, counting commits (= writes)."""

    def __init__(self) -> None:
        self.tables = _Tables()
        # As the migration leaves it: the built-in role (ids from new_id() start at 2).
        self.tables.roles[1] = Role(1, "admin", "Administrators", ("authdemo:admin",))
        self.write_lock = asyncio.Lock()
        self.commits = 0
        self.units: list[FakeUnitOfWork] = []

    def __call__(self, *, write: bool = False, one_statement: bool = False) -> FakeUnitOfWork:
        assert not (write and one_statement), "a unit of work of one statement only reads"
        unit = FakeUnitOfWork(self, write, one_statement)
        self.units.append(unit)
        return unit


class RecordingBus(InProcessEventBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[SessionEvent] = []

    async def publish(self, event: SessionEvent) -> None:
        self.published.append(event)
        await super().publish(event)
