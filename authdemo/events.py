"""Session events: how a logout or revocation reaches the open connections it concerns.

The service publishes after it commits; web connections subscribe to their session.
``InProcessEventBus`` reaches connections in this process; cross-process buses
implement the same :class:`EventBus` protocol.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    REVOKED = "revoked"
    """The sessions ended: logout, revocation, password change, disabled account, expiry."""
    COOKIE_ATTACHED = "cookie_attached"
    """The browser redeemed a ticket and now holds the session's (new) cookie."""
    DATA_CHANGED = "data_changed"
    """The session's data changed (``use_session()``): other views re-read it."""
    SESSION_OPENED = "session_opened"
    """An anonymous cookie got a row (its first data write): its other views join it."""
    TOKEN_RETIRED = "token_retired"  # noqa: S105 - an event name
    """A cookie no longer leads where it did (rotation): caches forget it, and the views
    that knew the browser by it ask the browser which cookie it holds now (a follow)."""
    COOKIE_HELD = "cookie_held"
    """The browser presented that new cookie (the ticket image's redirect): it holds it,
    so the view may now say "signed in"."""
    SIGNED_IN = "signed_in"
    """A new signed-in session of ``user_id`` opened: open session lists add it."""
    FOLLOWED = "followed"
    """A view's follow image was loaded: ``origin`` names the follow (``follow_key`` of
    its nonce), ``token_hash`` is the cookie that request carried, ``session_ids`` the
    live session that cookie leads to (empty: none)."""
    REKEYED = "rekeyed"
    """The session goes on under a new token and credential epoch in the view named by
    ``origin`` only (a password change, "sign out other sessions"): every other view of
    it ends."""
    RIGHTS_CHANGED = "rights_changed"
    """``user_id`` gained or lost a role (a grant, a revoke, a role deleted): their open
    views re-read their permissions. Names no session."""


@dataclass(frozen=True)
class SessionEvent:
    kind: EventKind
    session_ids: tuple[int, ...]
    reason: str = ""
    token_hash: str | None = None
    """For COOKIE_ATTACHED: the hash of the cookie the browser now holds."""
    origin: str = ""
    """For DATA_CHANGED and REKEYED: the connection that made the change; for FOLLOWED,
    the follow it answers."""
    user_id: int | None = None
    """Whose sessions these are, when the event changes a user's list of sessions."""
    serial: int | None = field(default=None, compare=False)
    """The ``session_broadcasts`` row that carries it: a process delivers each row once,
    whether it hears of it first from its own publish or from the broadcast follower."""


Listener = Callable[[SessionEvent], None]

_BY_COOKIE = frozenset({EventKind.SESSION_OPENED, EventKind.TOKEN_RETIRED})
"""The events delivered to the views that know the browser by ``token_hash``."""
_FOLLOW = "follow:"
"""Prefixes follow keys among the bus's keys (cookie hashes are 64 hex characters)."""


def follow_key(nonce: str) -> str:
    """What a follow is known by outside the view that made it: a digest of its nonce
    (the nonce itself stays in the page and in that view's memory)."""
    return hashlib.sha256(nonce.encode()).hexdigest()[:32]


class EventBus(Protocol):
    async def publish(self, event: SessionEvent) -> None: ...

    def subscribe(self, session_id: int, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for events about ``session_id``; returns the unsubscriber."""
        ...

    def subscribe_token(self, token_hash: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for events that name this cookie's hash (SESSION_OPENED,
        TOKEN_RETIRED)."""
        ...

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event (caches use it to forget)."""
        ...

    def subscribe_user(self, user_id: int, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for events that change ``user_id``'s sessions (lists)."""
        ...

    def subscribe_follow(self, key: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for the FOLLOWED event of the follow ``key`` names."""
        ...


class InProcessEventBus:
    """Delivers events to listeners in this process, on the event loop."""

    REMEMBERED = 65_536
    """How many delivered broadcast rows the bus remembers to drop their second copy."""

    def __init__(self) -> None:
        # Keys: session ids (int) and cookie hashes (str); the two never collide. Each
        # key's listeners are a tuple: most keys have one (a view's session, cookie,
        # user), and a one-element tuple is a quarter of an empty set's memory.
        self._listeners: dict[int | str, tuple[Listener, ...]] = {}
        self._everything: list[Listener] = []
        self._users: dict[int, tuple[Listener, ...]] = {}
        self._delivered: OrderedDict[int, None] = OrderedDict()

    async def publish(self, event: SessionEvent) -> None:
        self.deliver(event)

    def deliver(self, event: SessionEvent) -> None:
        """Call the listeners, once per broadcast row: the follower reads this process's
        own rows back a poll later, and a late copy is not harmless (a view waiting for
        this round's cookie would take the last round's ``COOKIE_HELD`` for it)."""
        if event.serial is not None:
            if event.serial in self._delivered:
                return
            self._delivered[event.serial] = None
            if len(self._delivered) > self.REMEMBERED:
                self._delivered.popitem(last=False)
        for listener in self._everything:  # caches first: listeners below may re-read
            listener(event)
        keys: list[int | str] = []
        if event.kind is EventKind.FOLLOWED:
            keys.append(_FOLLOW + event.origin)  # for the one view that asked, nobody else
        else:
            keys += event.session_ids
        if event.kind in _BY_COOKIE and event.token_hash is not None:
            keys.append(event.token_hash)
        listeners = [each for key in keys for each in self._listeners.get(key, ())]
        if event.user_id is not None:
            listeners += self._users.get(event.user_id, ())
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("session event listener failed")

    def subscribe(self, session_id: int, listener: Listener) -> Callable[[], None]:
        return self._subscribe(session_id, listener)

    def subscribe_token(self, token_hash: str, listener: Listener) -> Callable[[], None]:
        return self._subscribe(token_hash, listener)

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        self._everything.append(listener)
        return lambda: self._everything.remove(listener)

    def subscribe_user(self, user_id: int, listener: Listener) -> Callable[[], None]:
        return _subscribe(self._users, user_id, listener)

    def subscribe_follow(self, key: str, listener: Listener) -> Callable[[], None]:
        return self._subscribe(_FOLLOW + key, listener)

    def _subscribe(self, key: int | str, listener: Listener) -> Callable[[], None]:
        return _subscribe(self._listeners, key, listener)

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values()) + sum(
            len(v) for v in self._users.values()
        )


def _subscribe(
    table: dict[Any, tuple[Listener, ...]], key: Any, listener: Listener
) -> Callable[[], None]:
    listeners = table.get(key, ())
    if listener not in listeners:  # once per key, as in a set
        table[key] = (*listeners, listener)
    return _Unsubscribe(table, key, listener)


class _Unsubscribe:
    """Takes ``listener`` off ``key`` (any number of calls); an object rather than a
    closure, at a third of its memory: every open view holds a few of these."""

    __slots__ = ("_key", "_listener", "_table")

    def __init__(self, table: dict[Any, tuple[Listener, ...]], key: Any, listener: Listener):
        self._table = table
        self._key = key
        self._listener = listener

    def __call__(self) -> None:
        listeners = self._table.get(self._key)
        if listeners is not None and self._listener in listeners:
            rest = tuple(each for each in listeners if each != self._listener)
            if rest:
                self._table[self._key] = rest
            else:
                del self._table[self._key]


async def publish_quietly(bus: EventBus, event: SessionEvent) -> None:
    """Publish, logging instead of raising: the change is committed whatever happens here."""
    try:
        await bus.publish(event)
    except (TimeoutError, OSError, RuntimeError):
        log.exception("could not publish %s", event.kind)
