"""Permissions in one open view: what to show, and the check before an action.

Invariants:
- What a view *shows* (``use_permission``, ``RequirePermission``) follows the user's
  roles live: a ``RIGHTS_CHANGED`` event for the user (from any worker, host or the CLI)
  bumps ``AuthState.rights_version``, and the grants are read again from the database.
  The grants are read once per version and shared by every component of the view.
- What a view *does* never trusts that: ``permitted`` asks the service, which reads the
  session and the user's roles from the database at the moment of the action. A view
  that missed an event (a revoke not delivered) shows a stale button, and the click on
  it is refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ...permissions import NO_GRANTS, Grants, PermissionDenied
from .lifecycle import Connection

_GrantsKey = tuple[int, int, int]  # user id, generation, rights version


class RightsChecks(Connection):
    _grants: tuple[_GrantsKey, asyncio.Future[Grants]] | None = None

    async def grants(self) -> Grants:
        """The signed-in user's grants as of the current ``rights_version`` (none while
        signed out); one database read per version, whoever asks."""
        user = self.state.user
        if user is None or self.state.pending:
            return NO_GRANTS
        key = (user.id, self.state.generation, self.state.rights_version)
        if self._grants is None or self._grants[0] != key or self._grants[1].cancelled():
            loading = asyncio.ensure_future(self._service.grants_of(user.id))
            self._grants = (key, loading)
        future = self._grants[1]
        try:
            return await asyncio.shield(future)
        except Exception:
            if self._grants is not None and self._grants[1] is future:
                self._grants = None  # read again next time, not a failure remembered
            raise

    def check_declared(self, permission: str) -> None:
        """``UndeclaredPermission`` for a name the app did not declare (a typo)."""
        self._service.permissions.require(permission)

    async def require_permission(self, permission: str) -> None:
        """Refuse (``PermissionDenied``) unless this view's user holds ``permission`` now,
        read from the database; the view then says so (``AuthState.refusal``).
        ``NotSignedIn`` when the session may not act (the view signs out)."""
        session = self._require_signed_in()
        allowed = await self._acting(
            session, self._service.permitted(session.id, permission, session.user_epoch)
        )
        if not allowed:
            refused = PermissionDenied(permission)
            if self._is_current(session):
                self.state = replace(self.state, refusal=str(refused))
                self._notify()
            raise refused
        if self.state.refusal is not None and self._is_current(session):
            self.state = replace(self.state, refusal=None)
            self._notify()
