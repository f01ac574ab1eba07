"""The admin page's actions in one open view: reading users, roles and the audit trail,
and changing them.

Invariants:
- Every read and every change first checks, on the server and against the database,
  that this view's user holds ``authdemo:admin`` now (``require_permission``): the
  page's buttons are presentation, an event can be forged or come from a stale page.
- Every change also needs a recent sign-in: the admin's password entered (signing in,
  or ``confirm_password`` in this view) within the window the page was given; else
  ``RecentSignInRequired`` and nothing changes. When the password was entered is kept
  on the server, per view — nothing the browser sends can claim it.
- Changes go through the same service calls as the CLI (audited, live).
- What the page shows follows changes made anywhere (``watch_accounts``): a session
  opened, ended or re-keyed and a role granted or revoked, on any worker or host, are
  broadcast, and the page reads again within ``ADMIN_SETTLE`` of hearing one; what is not
  broadcast (an account created or enabled from the CLI, an e-mail change, new audit
  rows, last activity) is read again every ``refresh_every``. A refresh is a read: it is
  checked for admin rights like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...domain import AuditEvent, AuthError
from ...events import EventKind, SessionEvent
from ...permissions import ADMIN, Role
from ...service import UserSummary
from .rights import RightsChecks

ADMIN_ACTIONS = ("disable", "enable", "end_sessions", "reset_two_factor", "grant", "revoke")

ADMIN_SETTLE = 0.25
"""Seconds the admin page waits after hearing of a change before reading again, so that
a burst (an operator ending a hundred sessions) costs one read, not a hundred."""

_SHOWN_CHANGES = frozenset(
    {EventKind.REVOKED, EventKind.SIGNED_IN, EventKind.REKEYED, EventKind.RIGHTS_CHANGED}
)
"""The broadcast changes to what the admin page shows (sessions, roles)."""


class RecentSignInRequired(AuthError):
    """The change needs the admin's password entered within the recent-sign-in window."""

    def __init__(self) -> None:
        super().__init__("Enter your password again to make changes here.")


@dataclass(frozen=True)
class AdminUser:
    summary: UserSummary
    last_active: datetime | None
    """The latest activity of any of the user's live sessions (None: none live)."""


@dataclass(frozen=True)
class AdminOverview:
    users: list[AdminUser]
    roles: list[Role]
    events: list[AuditEvent]


class AdminActions(RightsChecks):
    _password_at: datetime | None = None

    def signed_in_recently(self, window: timedelta) -> bool:
        """The password was entered in this view's session within ``window``."""
        session = self.state.session
        if session is None or self.state.user is None:
            return False
        entered = max(session.created_at, self._password_at or session.created_at)
        return self.now() - entered <= window

    async def confirm_password(self, password: str) -> None:
        """Enter the password again (``InvalidCredentials``, ``Throttled``)."""
        session = self._require_signed_in()
        self._password_at = await self._acting(
            session,
            self._service.confirm_password(
                session.id, password, self.client, epoch=session.user_epoch
            ),
        )

    def watch_accounts(
        self, changed: Callable[[], None], refresh_every: timedelta
    ) -> Callable[[], None]:
        """Call ``changed`` when what the admin page shows may have changed: within
        ``ADMIN_SETTLE`` of a broadcast change to sessions or roles (from any worker,
        host or the CLI), and every ``refresh_every`` for the rest. Returns the stop."""
        loop = asyncio.get_running_loop()
        settling: asyncio.TimerHandle | None = None
        ticking: asyncio.TimerHandle | None = None

        def fire() -> None:
            nonlocal settling
            settling = None
            changed()

        def heard(event: SessionEvent) -> None:
            nonlocal settling
            if event.kind in _SHOWN_CHANGES and settling is None and not self._closed:
                settling = loop.call_later(ADMIN_SETTLE, fire)

        def tick() -> None:
            nonlocal ticking
            ticking = loop.call_later(refresh_every.total_seconds(), tick)
            changed()

        unsubscribe = self._events.subscribe_all(heard)
        ticking = loop.call_later(refresh_every.total_seconds(), tick)

        stopped = False

        def stop() -> None:
            # Idempotent: ReactPy 1.1 calls an effect's clean-up again at unmount when
            # the effect already re-ran (and was cleaned up then).
            nonlocal stopped
            if stopped:
                return
            stopped = True
            unsubscribe()
            for timer in (settling, ticking):
                if timer is not None:
                    timer.cancel()

        return stop

    async def admin_overview(self, events_of: str | None, limit: int) -> AdminOverview:
        """Users (roles, two-factor, sessions, last activity), roles and the audit trail
        (of ``events_of`` only, when given). ``PermissionDenied`` without admin rights."""
        await self.require_permission(ADMIN.name)
        service = self._service
        summaries = await self._finish(service.list_users())
        last: dict[int, datetime] = {}
        for session, user in await self._finish(service.live_sessions(None)):
            if user.id not in last or session.last_seen_at > last[user.id]:
                last[user.id] = session.last_seen_at
        roles = await self._finish(service.list_roles())
        events = await self._finish(service.audit_events(events_of, limit))
        users = [AdminUser(s, last.get(s.user.id)) for s in summaries]
        return AdminOverview(users, roles, events)

    async def admin_act(
        self, action: str, username: str, role: str | None, window: timedelta
    ) -> str:
        """Do one admin action; returns what was done, in a sentence. Raises
        ``PermissionDenied``, ``RecentSignInRequired``, ``UnknownUser``,
        ``UnknownRole``, ``MfaStateConflict``, ``ValueError`` for an unknown action."""
        if action not in ADMIN_ACTIONS:
            raise ValueError(f"unknown admin action {action!r}")
        await self.require_permission(ADMIN.name)
        if not self.signed_in_recently(window):
            raise RecentSignInRequired()
        service, client = self._service, self.client
        by = self.state.user.username if self.state.user else "?"
        if action == "disable":
            ended = await self._finish(service.set_active(username, False, client=client, by=by))
            return f"Disabled {username}; {ended} session(s) ended."
        if action == "enable":
            await self._finish(service.set_active(username, True, client=client, by=by))
            return f"Enabled {username}."
        if action == "end_sessions":
            ended = await self._finish(service.revoke_user_sessions(username, client=client, by=by))
            return f"Ended {ended} session(s) of {username}."
        if action == "reset_two_factor":
            ended = await self._finish(service.reset_mfa(username, client=client, by=by))
            return f"Reset two-factor sign-in of {username}; {ended} session(s) ended."
        name = role or ""
        if action == "grant":
            done = await self._finish(service.grant_role(username, name, client=client, by=by))
            return f"Granted {name} to {username}." if done else f"{username} holds {name} already."
        done = await self._finish(service.revoke_role(username, name, client=client, by=by))
        return f"Revoked {name} from {username}." if done else f"{username} does not hold {name}."
