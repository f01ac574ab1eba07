"""The session's data in one view: writes of ``use_session()``.

Invariants:
- Every change is written at once, one at a time per view (so this view's order is the
  stored order), as this view's session on its epoch; other views hear of it through
  the event bus and re-read.
- An anonymous visitor's row is created by the first write, bound to the cookie the
  browser holds (a ticket hands it over when that cookie has no row yet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from ...domain import AuthSession
from .lifecycle import Connection

log = logging.getLogger("authdemo.auth")


class DataWrites(Connection):
    async def update_data(self, values: Mapping[str, Any], deletions: Iterable[str] = ()) -> None:
        """Persist a change of session data at once (one small write) and show it here;
        other views of the session hear of it through the event bus.

        An anonymous visitor's row is created by the first write.
        """
        async with self._data_lock:  # one write at a time keeps this view's order
            session = self.state.session
            if session is None:
                session = await self._open_anonymous_session()
            updated = await self._acting(
                session,
                self._service.change_session_data(
                    session.id, values, deletions, origin=self.origin, epoch=session.user_epoch
                ),
            )
            self._show_data(session, updated)

    async def update_value(self, key: str, function: Callable[[Any], Any]) -> Any:
        """Set ``key`` to ``function(current)``, computed by the service in the writing
        transaction (see ``update_session_value``); returns the value stored."""
        async with self._data_lock:
            session = self.state.session
            if session is None:
                session = await self._open_anonymous_session()
            updated, value = await self._acting(
                session,
                self._service.update_session_value(
                    session.id, key, function, origin=self.origin, epoch=session.user_epoch
                ),
            )
            self._show_data(session, updated)
            return value

    def _show_data(self, session: AuthSession, updated: AuthSession) -> None:
        """This view's own write succeeded: show the data as stored."""
        if self._is_current(session) and self.state.session is not None:
            fresh = replace(self.state.session, data=updated.data)
            self.state = replace(self.state, session=fresh)
            self._notify()

    async def _open_anonymous_session(self) -> AuthSession:
        session, ticket = await self._finish(
            self._service.open_anonymous_session(
                self.cookie_token_hash, self._cookie_issued_at, self.client
            )
        )
        if ticket is not None:
            log.info("anonymous session opened; the browser gets its cookie by ticket")
        self._enter(session, None, ticket)
        return session
