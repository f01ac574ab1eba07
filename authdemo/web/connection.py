"""The auth state of one open websocket, kept in step with the server-side session.

A websocket lives for hours; this object never holds a database session. Each
operation runs its own unit of work through the service. Expiry is scheduled with a
timer (not checked by polling), revocations arrive through the event bus, and every
incoming UI event is checked against the local expiry before it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..domain import AuthSession, ClientInfo, SignedIn, User
from ..events import EventBus, EventKind, SessionEvent
from ..service import AuthService

log = logging.getLogger("authdemo.auth")

# Fire expiry timers slightly late so that "now >= expiry" holds when they run.
_TIMER_SLACK = 0.05


@dataclass(frozen=True)
class AuthState:
    """An immutable snapshot for rendering."""

    user: User | None = None
    session: AuthSession | None = None
    ticket: str | None = None
    """A cookie ticket the page must redeem (rendered as a hidden image request)."""


class LiveSession:
    def __init__(
        self,
        service: AuthService,
        events: EventBus,
        client: ClientInfo,
        cookie_token_hash: str | None,
        signed_in: SignedIn | None,
    ) -> None:
        self._service = service
        self._events = events
        self.client = client
        self.cookie_token_hash = cookie_token_hash
        """Hash of the cookie the browser holds, as far as we know (binds login tickets)."""
        self.state = AuthState()
        self._listeners: set[Callable[[AuthState], None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        if signed_in is not None:
            self._enter(signed_in, ticket=None)

    # --- what components call ---------------------------------------------------------

    async def login(self, username: str, password: str) -> User:
        """Sign in; raises ``InvalidCredentials`` (one generic message for every failure)."""
        result = await self._service.login(self.cookie_token_hash, username, password, self.client)
        if self._closed:
            return result.signed_in.user
        if self.state.session is not None:
            self._leave()
        self._enter(result.signed_in, ticket=result.ticket)
        self._notify()
        return result.signed_in.user

    async def logout(self) -> None:
        session = self.state.session
        if session is None:
            return
        # Revoke first: the view only says "signed out" once the server agrees.
        await self._service.logout(session.id)
        if self.state.session is not None and self.state.session.id == session.id:
            self._leave()
            self._notify()

    def listen(self, listener: Callable[[AuthState], None]) -> Callable[[], None]:
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    # --- what the bridge calls ----------------------------------------------------------

    async def before_event(self) -> None:
        """Run before each UI event: no event runs as a user whose session has ended.

        Also slides the idle expiry (the service writes only when it is due).
        """
        session = self.state.session
        if session is None:
            return
        now = self._service.now()
        if not session.is_live(now):
            await self._recheck()
        elif session.needs_renewal(now, self._service.policy):
            renewed = await self._service.renew(session)
            if self.state.session is not None and self.state.session.id == renewed.id:
                self._set_session(renewed)

    def close(self) -> None:
        self._closed = True
        self._leave()
        self._listeners.clear()

    # --- internals ------------------------------------------------------------------------

    def _enter(self, signed_in: SignedIn, ticket: str | None) -> None:
        self.state = AuthState(signed_in.user, signed_in.session, ticket)
        self._unsubscribe = self._events.subscribe(signed_in.session.id, self._on_event)
        self._schedule_expiry(signed_in.session)

    def _leave(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.state = AuthState()

    def _set_session(self, session: AuthSession) -> None:
        self.state = AuthState(self.state.user, session, self.state.ticket)
        self._schedule_expiry(session)

    def _schedule_expiry(self, session: AuthSession) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = (session.expires_at() - self._service.now()).total_seconds() + _TIMER_SLACK
        self._timer = loop.call_later(max(0.0, delay), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._recheck())
        task.add_done_callback(_log_failure)

    async def _recheck(self) -> None:
        """The local view says the session ended; ask the database (another tab may have
        renewed it) and sign this view out if it really has."""
        session = self.state.session
        if session is None:
            return
        current = await self._service.current(session.id)
        if self.state.session is None or self.state.session.id != session.id:
            return
        if current is None:
            log.info("session ended on an open connection session=%s", session.short_id)
            self._leave()
            self._notify()
        else:
            self._set_session(current.session)

    def _on_event(self, event: SessionEvent) -> None:
        session = self.state.session
        if session is None or session.id not in event.session_ids:
            return
        if event.kind is EventKind.REVOKED:
            self._leave()
            self._notify()
        elif event.kind is EventKind.COOKIE_ATTACHED and event.token_hash is not None:
            self.cookie_token_hash = event.token_hash
            self.state = AuthState(self.state.user, session, ticket=None)
            self._notify()

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            listener(self.state)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("session check failed", exc_info=task.exception())
