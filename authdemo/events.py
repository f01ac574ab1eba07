"""Session events: how a logout or revocation reaches the open connections it concerns.

The service publishes after it commits; web connections subscribe to their session.
``InProcessEventBus`` reaches connections in this process; cross-process buses
implement the same :class:`EventBus` protocol.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    REVOKED = "revoked"
    """The sessions ended: logout, revocation, password change, disabled account, expiry."""
    COOKIE_ATTACHED = "cookie_attached"
    """The browser redeemed a ticket and now holds the session's (new) cookie."""


@dataclass(frozen=True)
class SessionEvent:
    kind: EventKind
    session_ids: tuple[int, ...]
    reason: str = ""
    token_hash: str | None = None
    """For COOKIE_ATTACHED: the hash of the cookie the browser now holds."""


Listener = Callable[[SessionEvent], None]


class EventBus(Protocol):
    async def publish(self, event: SessionEvent) -> None: ...

    def subscribe(self, session_id: int, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for events about ``session_id``; returns the unsubscriber."""
        ...


class InProcessEventBus:
    """Delivers events to listeners in this process, on the event loop."""

    def __init__(self) -> None:
        self._listeners: defaultdict[int, set[Listener]] = defaultdict(set)

    async def publish(self, event: SessionEvent) -> None:
        self.deliver(event)

    def deliver(self, event: SessionEvent) -> None:
        for session_id in event.session_ids:
            for listener in tuple(self._listeners.get(session_id, ())):
                try:
                    listener(event)
                except Exception:
                    log.exception("session event listener failed")

    def subscribe(self, session_id: int, listener: Listener) -> Callable[[], None]:
        self._listeners[session_id].add(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(session_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[session_id]

        return unsubscribe

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())


async def publish_quietly(bus: EventBus, event: SessionEvent) -> None:
    """Publish, logging instead of raising: the change is committed whatever happens here."""
    try:
        await bus.publish(event)
    except (TimeoutError, OSError, RuntimeError):
        log.exception("could not publish %s", event.kind)
