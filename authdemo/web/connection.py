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

from ..domain import AuthSession, ClientInfo, NotSignedIn, SignedIn, User
from ..events import EventBus, EventKind, SessionEvent
from ..service import AuthService, LoginResult

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
    generation: int = 0
    """Bumped whenever who is signed in changes."""


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
        """Hash of the cookie the browser holds, as far as we know (binds tickets)."""
        self.state = AuthState()
        self.rendered_generation = 0
        """The generation the browser's current view was rendered for."""
        self._listeners: set[Callable[[AuthState], None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        if signed_in is not None:
            self._enter(signed_in, ticket=None)
            self.rendered_generation = self.state.generation

    # --- what components call ---------------------------------------------------------

    async def login(self, username: str, password: str) -> User:
        """Sign in; raises ``InvalidCredentials`` (``Throttled`` after repeated failures)."""
        result = await self._service.login(self.cookie_token_hash, username, password, self.client)
        if not self._closed:
            self._leave()
            self._enter(result.signed_in, ticket=result.ticket)
            self._notify()
        return result.signed_in.user

    async def logout(self) -> None:
        session = self.state.session
        if session is None:
            return
        # Revoke first: the view only says "signed out" once the server agrees.
        await self._service.logout(session.id, self.client)
        if self._is_current(session):
            self._leave()
            self._notify()

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Needs the current password; ends every other session; rotates this one's token."""
        session = self._require_session()
        result: LoginResult = await self._service.change_password(
            session.id, current_password, new_password, self.cookie_token_hash, self.client
        )
        if self._is_current(session):
            self.state = AuthState(
                result.signed_in.user,
                result.signed_in.session,
                result.ticket,
                self.state.generation,
            )
            self._notify()

    async def sessions(self) -> list[AuthSession]:
        """The signed-in user's live sessions, most recently active first."""
        session = self._require_session()
        assert session.user_id is not None
        return await self._service.sessions_of(session.user_id)

    async def logout_others(self) -> int:
        """End every other session of this user (live, in every tab); returns how many."""
        return await self._service.revoke_other_sessions(self._require_session().id, self.client)

    def listen(self, listener: Callable[[AuthState], None]) -> Callable[[], None]:
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    # --- what the bridge calls ----------------------------------------------------------

    async def before_event(self) -> bool:
        """Run before each UI event; False means "drop it".

        No event runs as a user whose session has ended, and no event rendered for one
        signed-in state runs after that state changed (until the new view is rendered).
        Also slides the idle expiry (the service writes only when it is due).
        """
        generation = self.state.generation
        session = self.state.session
        if session is not None:
            now = self._service.now()
            if not session.is_live(now):
                await self._recheck()
            elif session.needs_renewal(now, self._service.policy):
                renewed = await self._service.renew(session)
                if self._is_current(session):
                    self._set_session(renewed)
        # The event was sent from a view of `generation`; if that is not the current
        # state (or it changed while we checked), the event must not run.
        return generation == self.state.generation == self.rendered_generation

    def close(self) -> None:
        self._closed = True
        self._leave()
        self._listeners.clear()

    # --- internals ------------------------------------------------------------------------

    def _require_session(self) -> AuthSession:
        if self.state.session is None:
            raise NotSignedIn()
        return self.state.session

    def _is_current(self, session: AuthSession) -> bool:
        return self.state.session is not None and self.state.session.id == session.id

    def _enter(self, signed_in: SignedIn, ticket: str | None) -> None:
        self.state = AuthState(signed_in.user, signed_in.session, ticket, self.state.generation + 1)
        self._unsubscribe = self._events.subscribe(signed_in.session.id, self._on_event)
        self._schedule_expiry(signed_in.session)

    def _leave(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.state.session is not None:
            self.state = AuthState(generation=self.state.generation + 1)

    def _set_session(self, session: AuthSession) -> None:
        self.state = AuthState(self.state.user, session, self.state.ticket, self.state.generation)
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
        renewed it) and sign this view out if it really has. Fails closed."""
        session, user = self.state.session, self.state.user
        if session is None or user is None:
            return
        try:
            current = await self._service.current(session.id)
        except Exception:
            log.warning("cannot confirm session=%s; signing the view out", session.short_id)
            current = None
        if not self._is_current(session):
            return
        if current is None:
            self._leave()
            self._notify()
            if not session.is_live(self._service.now()):  # timed out, not revoked
                await self._service.note_expired(session, user)
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
            if self.state.ticket is not None:
                self.state = AuthState(self.state.user, session, None, self.state.generation)
                self._notify()

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            listener(self.state)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("session check failed", exc_info=task.exception())
