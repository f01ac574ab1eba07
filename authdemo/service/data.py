"""Session data (``use_session()``): an anonymous visitor's row, and changes to any row.

Invariants:
- Data is written only by a session that may act, checked in the writing transaction
  with the row locked (``_acting``): a write racing a sign-out, a disable or a re-key
  either commits first (and is then ended with the session) or is refused.
- ``update_session_value`` computes the new value from the stored one inside that same
  transaction, after the lock: concurrent updates of one session (any tab, worker or
  host) apply one after the other, none lost. Its function's result passes the same
  checks as any value; when it raises or is refused, nothing is written.
- An anonymous row for a browser that presented a cookie is reached only through that
  cookie or a ticket bound to it; a browser that presented none is told to reload
  rather than given a ticket anyone could redeem.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..domain import (
    AuthSession,
    ClientInfo,
    CookieRequired,
    DuplicateToken,
    InvalidSessionData,
    SessionDataTooLarge,
)
from ..events import EventKind, SessionEvent, publish_quietly
from ..security import hash_token, new_ticket, unreachable_token_hash
from .sessions import Sessions


class SessionData(Sessions):
    async def open_anonymous_session(
        self, cookie_token_hash: str | None, cookie_issued_at: datetime | None, client: ClientInfo
    ) -> tuple[AuthSession, str | None]:
        """A row for an anonymous visitor's data, created on the first write.

        When the browser holds a valid anonymous cookie the row takes its token, so no
        cookie has to change. Otherwise (a dead cookie) the row gets a new token that the
        browser picks up through a ticket bound to the cookie it holds, returned as the
        second value. A browser that sent no cookie at all gets ``CookieRequired``.
        """
        if cookie_token_hash is None:
            raise CookieRequired()
        now = self.now()
        absolute = now + self.policy.absolute_timeout
        if cookie_token_hash is not None and cookie_issued_at is not None:
            absolute = min(absolute, cookie_issued_at + self.policy.absolute_timeout)
            try:
                async with self._uow(write=True) as tx:
                    session = await tx.sessions.add(
                        cookie_token_hash,
                        None,
                        now,
                        min(now + self.policy.idle_timeout, absolute),
                        absolute,
                        client,
                    )
                    event = SessionEvent(
                        EventKind.SESSION_OPENED, (session.id,), token_hash=cookie_token_hash
                    )
                    event = await self._broadcast(tx, event, now)
                    await tx.commit()
                await publish_quietly(self._events, event)  # other tabs with this cookie
                return session, None
            except DuplicateToken:  # another tab was first, or the token is dead
                async with self._uow() as tx:
                    found = await tx.sessions.find_by_token_hash(cookie_token_hash)
                if found is not None and found[1] is None and found[0].is_live(now):
                    return found[0], None
        ticket = new_ticket()
        async with self._uow(write=True) as tx:
            session = await tx.sessions.add(
                unreachable_token_hash(),
                None,
                now,
                min(now + self.policy.idle_timeout, absolute),
                absolute,
                client,
            )
            await tx.tickets.add(
                hash_token(ticket), session.id, cookie_token_hash, now, now + self.policy.ticket_ttl
            )
            await tx.commit()
        return session, ticket

    async def change_session_data(
        self,
        session_id: int,
        values: Mapping[str, Any],
        deletions: Iterable[str] = (),
        origin: str = "",
        epoch: int | None = None,
    ) -> AuthSession:
        """Set and delete keys in one small write; every open view of the session hears of it.

        Raises ``InvalidSessionData`` for values JSON cannot hold, ``SessionDataTooLarge``
        past the size cap, ``NotSignedIn`` when the session may not act (``epoch``: the
        one the writing view holds).
        """
        for key in [*values, *deletions]:
            _check_key(key)

        def change(data: dict[str, Any]) -> None:
            data.update(values)
            for key in deletions:
                data.pop(key, None)

        return await self._change_data(session_id, change, origin, epoch)

    async def update_session_value(
        self,
        session_id: int,
        key: str,
        function: Callable[[Any], Any],
        origin: str = "",
        epoch: int | None = None,
    ) -> tuple[AuthSession, Any]:
        """Set ``key`` to ``function(current)`` (``current``: the stored value, None when
        unset), computed in the writing transaction with the row locked, so concurrent
        updates apply one after the other. Returns the session and the new value, as
        stored (read back from JSON).

        ``function`` is a plain, quick function (it runs while the row is locked). When it
        raises, the error propagates and nothing is written (the value it got was read in
        this transaction: mutating it in place changes nothing stored either);
        its result is checked like any value (``InvalidSessionData``,
        ``SessionDataTooLarge``); ``NotSignedIn`` as for ``change_session_data``.
        """
        _check_key(key)

        def change(data: dict[str, Any]) -> None:
            new = function(data.get(key))
            if inspect.isawaitable(new):
                if inspect.iscoroutine(new):
                    new.close()  # never awaited: say so once, not as a RuntimeWarning
                raise InvalidSessionData(
                    "update_value() needs a plain function that returns the new value, "
                    "not an async one."
                )
            data[key] = new

        session = await self._change_data(session_id, change, origin, epoch)
        assert session.data is not None
        return session, session.data[key]

    async def _change_data(
        self,
        session_id: int,
        change: Callable[[dict[str, Any]], None],
        origin: str,
        epoch: int | None,
    ) -> AuthSession:
        """Apply ``change`` to the session's data in one write transaction, with the row
        locked by ``_acting``; check the result (JSON, size cap) before writing it. What
        is returned is what was stored (read back from its JSON: tuples become lists)."""
        now = self.now()
        async with self._uow(write=True) as tx:
            session, _ = await self._acting(tx, session_id, now, epoch)
            data = dict(session.data or {})
            change(data)
            try:
                stored = json.dumps(data, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError) as error:
                raise InvalidSessionData(f"Session data must be JSON: {error}") from None
            size = len(stored.encode())
            data = json.loads(stored)
            if size > self.policy.data_max_bytes:
                raise SessionDataTooLarge(size, self.policy.data_max_bytes)
            await tx.sessions.set_data(session_id, data or None)
            event = SessionEvent(EventKind.DATA_CHANGED, (session_id,), origin=origin)
            event = await self._broadcast(tx, event, now)
            await tx.commit()
        await publish_quietly(self._events, event)
        return replace(session, data=data)


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise InvalidSessionData(f"Session data keys must be strings, not {key!r}.")
