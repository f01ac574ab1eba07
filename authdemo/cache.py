"""What cookies resolved to, kept in memory so returning visitors cost no query.

An entry is the raw lookup result (the session row and its user, or "no row"); the
service still checks expiry on every use, so the cache can never make an expired session
live. Entries are dropped the moment a session event says their session changed
(revoked, rotated, data changed, …) — events from other processes and hosts arrive
through the broadcast follower — and they are re-read from the database at the latest
``ttl`` seconds after they were read, or whenever they look expired (another process may
have renewed them).

Two races are closed by construction: every token cached for a session is dropped when
an event names the session (a session can be cached under its pre- and post-rotation
tokens at once), and a row read before an event but stored after it is not stored at
all (``generation``: any event between the start of a read and its ``put`` voids it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from .domain import AuthSession, User
from .events import EventKind, SessionEvent

Found = tuple[AuthSession, User | None] | None
USER_SESSIONS_TTL = 5.0
"""A session list may miss a sign-in made on another host for this long (events drop it
at once when one of its sessions ends or changes)."""


_UNCHANGED = frozenset({EventKind.FOLLOWED, EventKind.COOKIE_HELD})
"""Events that say a browser presented a cookie: no session row changed."""


class SessionCache:
    def __init__(
        self,
        ttl: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Found]] = OrderedDict()
        self._by_session: dict[int, set[str]] = {}
        self.generation = 0
        """Moves on with every invalidation; a read that started before one is not cached."""
        self._user_sessions: dict[int, tuple[float, list[AuthSession]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str) -> tuple[bool, Found]:
        """(hit, value): value is the cached lookup result when hit is True."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return False, None
        read_at, found = entry
        if self._clock() - read_at > self.ttl:
            self._drop(token_hash)
            return False, None
        return True, found

    def put(self, token_hash: str, found: Found, read_from: int | None = None) -> None:
        """Cache a lookup; ``read_from``: the ``generation`` when the read began."""
        if self.ttl <= 0 or (read_from is not None and read_from != self.generation):
            return
        self._drop(token_hash)
        self._entries[token_hash] = (self._clock(), found)
        if found is not None:
            self._by_session.setdefault(found[0].id, set()).add(token_hash)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def update(self, session: AuthSession) -> None:
        """A session this process just changed (renewed): keep the entry current."""
        for token_hash in tuple(self._by_session.get(session.id, ())):
            entry = self._entries.get(token_hash)
            if entry is not None and entry[1] is not None:
                if entry[1][0].token_hash == session.token_hash:
                    self._entries[token_hash] = (entry[0], (session, entry[1][1]))
                else:  # a row of another token: it cannot be brought up to date here
                    self._drop(token_hash)

    def invalidate(self, event: SessionEvent) -> None:
        if event.kind in _UNCHANGED:
            return
        self.generation += 1
        keep = self._attached(event)
        # SIGNED_IN names a session that was just opened and had its cookie attached
        # (COOKIE_ATTACHED says what changed there): it only adds to the user's list.
        named = () if event.kind is EventKind.SIGNED_IN else event.session_ids
        for session_id in named:
            for token_hash in tuple(self._by_session.get(session_id, ())):
                if token_hash != keep:
                    self._drop(token_hash)
        if event.token_hash is not None and event.token_hash != keep:
            self._drop(event.token_hash)
        if event.user_id is not None:
            self._user_sessions.pop(event.user_id, None)
        if event.session_ids and self._user_sessions:
            ids = set(event.session_ids)
            for user_id, (_, sessions) in list(self._user_sessions.items()):
                if any(s.id in ids for s in sessions):
                    del self._user_sessions[user_id]

    def _attached(self, event: SessionEvent) -> str | None:
        """For "session S now has the cookie H" (COOKIE_ATTACHED): H, when the entry under
        H is already S's row with H. The redemption that attached the cookie put it there
        (``put`` refuses a row that an event overtook), or a read after it did: it is the
        state the event describes, so it stays. Anything else under H predates the event."""
        if event.kind is not EventKind.COOKIE_ATTACHED or event.token_hash is None:
            return None
        entry = self._entries.get(event.token_hash)
        found = entry[1] if entry is not None else None
        if found is None or found[0].token_hash != event.token_hash:
            return None
        return event.token_hash if event.session_ids == (found[0].id,) else None

    # A user's list of live sessions ("Your sessions"), for the views that show it.

    def user_sessions(self, user_id: int) -> list[AuthSession] | None:
        entry = self._user_sessions.get(user_id)
        if entry is None or self._clock() - entry[0] > min(self.ttl, USER_SESSIONS_TTL):
            return None
        return entry[1]

    def put_user_sessions(self, user_id: int, sessions: list[AuthSession]) -> None:
        if self.ttl > 0:
            self._user_sessions[user_id] = (self._clock(), sessions)
            if len(self._user_sessions) > self.max_entries:
                self._user_sessions.pop(next(iter(self._user_sessions)))

    def forget_user(self, user_id: int) -> None:
        self._user_sessions.pop(user_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_session.clear()
        self._user_sessions.clear()

    def _drop(self, token_hash: str) -> None:
        entry = self._entries.pop(token_hash, None)
        if entry is not None and entry[1] is not None:
            tokens = self._by_session.get(entry[1][0].id)
            if tokens is not None:
                tokens.discard(token_hash)
                if not tokens:
                    del self._by_session[entry[1][0].id]
