"""The lifecycle of one open view: entering and leaving a session, timers, re-checks,
the events it follows, and the check before every UI event.

A websocket lives for hours; this object never holds a database session. Each
operation runs its own unit of work through the service. Expiry is scheduled with a
timer, not checked by polling (one loop timer for every view of the server:
``deadlines``); revocations and data changes arrive through the event bus, and every
incoming UI event is checked against the local expiry before it runs.

Invariants:
- A view never outlives a missed event by more than half the idle window: it re-reads
  its session from the database at least that often (a timer when idle, before the
  next UI event when busy), renewal is a conditional write that fails for a session
  that may not act, and every action it takes is checked by the service against the
  session's epoch as this view knows it (``_acting``) — a view of a session that was
  re-keyed elsewhere ends.
- No UI event runs for a signed-in state other than the one it was rendered for
  (``before_event``), and a service call, once started, runs to its end even if the
  view goes away (``_finish``).

The flows built on this (``signin``, ``account``, ``data``) add what a user does; this
module is what keeps the view true while they do it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from ...domain import AuthSession, ClientInfo, NotSignedIn, User
from ...events import EventBus, EventKind, SessionEvent
from ...service import AuthService, Rekeyed, Resolution
from .deadlines import Deadline, Deadlines
from .state import AuthState

log = logging.getLogger("authdemo.auth")
T = TypeVar("T")

# Fire expiry timers slightly late so that "now >= expiry" holds when they run.
_TIMER_SLACK = 0.05


class Connection:
    """The part of ``LiveSession`` every flow shares: the view's state and its upkeep."""

    def __init__(
        self,
        service: AuthService,
        events: EventBus,
        client: ClientInfo,
        cookie_token_hash: str | None,
        resolution: Resolution,
        deadlines: Deadlines | None = None,
    ) -> None:
        self._service = service
        self._events = events
        self._deadlines = deadlines if deadlines is not None else Deadlines()
        """The server's views' expiry timers (one loop timer for them all)."""
        self.client = client
        self.origin = secrets.token_hex(8)
        """Names this connection in the data changes it broadcasts."""
        self._cookie_hash: str | None = None
        self._retired_unsubscribe: Callable[[], None] | None = None
        self._closed = False
        self.cookie_token_hash = cookie_token_hash
        self._cookie_issued_at: datetime | None = resolution.issued_at
        """Set while that cookie is a valid anonymous one without a row."""
        self.state = AuthState()
        self.rendered_generation = 0
        """The generation the browser's current view was rendered for."""
        self.root: Any = None
        """The root component's listener on this view and its memo (``ui.hooks``),
        made on its first render."""
        self._listeners: tuple[Callable[[AuthState], None], ...] = ()
        """Usually one (the root component): a tuple, not a set (a quarter the memory)."""
        self._unsubscribe: Callable[[], None] | None = None
        self._user_unsubscribe: Callable[[], None] | None = None
        self._timer: Deadline | None = None
        self._verified_at: datetime | None = None
        """When the database last confirmed that this view's session may act."""
        self._cookie_held = Flag()
        """Set when the browser redeemed the ticket of the current session."""
        self._token_unsubscribe: Callable[[], None] | None = None
        session = resolution.session
        if session is not None:
            user = resolution.signed_in.user if resolution.signed_in else None
            self._enter(session, user, ticket=None)
            self.rendered_generation = self.state.generation
        elif cookie_token_hash is not None and resolution.issued_at is not None:
            # Another tab of this browser may write data first and create the row:
            # follow the cookie so that this view joins it.
            self._token_unsubscribe = events.subscribe_token(
                cookie_token_hash, self._on_cookie_event
            )

    _data_lock_made: asyncio.Lock | None = None
    _login_lock_made: asyncio.Lock | None = None

    @property
    def _data_lock(self) -> asyncio.Lock:
        """One data write of this view at a time (``data``); made on first use, as most
        views never write (each lock is an object with a dict, kept while the view is open)."""
        if self._data_lock_made is None:
            self._data_lock_made = asyncio.Lock()
        return self._data_lock_made

    @property
    def _login_lock(self) -> asyncio.Lock:
        """One sign-in step of this view at a time (``signin``); made on first use."""
        if self._login_lock_made is None:
            self._login_lock_made = asyncio.Lock()
        return self._login_lock_made

    @property
    def cookie_token_hash(self) -> str | None:
        """Hash of the cookie the browser holds, as far as we know (binds tickets)."""
        return self._cookie_hash

    @cookie_token_hash.setter
    def cookie_token_hash(self, value: str | None) -> None:
        # Follow the cookie we know the browser by: when it is retired (another tab's
        # sign-in rotated it), this view asks the browser which one it holds now.
        if value == self._cookie_hash and (value is None or self._retired_unsubscribe):
            return
        self._cookie_hash = value
        self._stop_watching_cookie()
        if value is not None and not self._closed:
            self._retired_unsubscribe = self._events.subscribe_token(value, self._on_cookie_retired)

    def _stop_watching_cookie(self) -> None:
        if self._retired_unsubscribe is not None:
            self._retired_unsubscribe()
            self._retired_unsubscribe = None

    def _on_cookie_retired(self, event: SessionEvent) -> None:
        """The cookie this view knows the browser by was retired (``follow``)."""

    def now(self) -> datetime:
        """The service's clock (expiry times are in it)."""
        return self._service.now()

    def listen(self, listener: Callable[[AuthState], None]) -> None:
        """Call ``listener`` with the new state on every change, until ``close``."""
        if listener not in self._listeners:
            self._listeners = (*self._listeners, listener)

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
                # A conditional write: it is the re-check too.
                renewed = await self._finish(self._service.renew(session))
                if not self._is_current(session) or self.state.session is None:
                    return False  # the state changed while we renewed
                if renewed is None:  # may not act: every view of it hears so too
                    self._leave("ended")
                    self._notify()
                else:
                    self._verified_at = now
                    self._set_session(replace(renewed, data=self.state.session.data))
            elif self._recheck_due(now):
                await self._recheck()
        # The event was sent from a view of `generation`; if that is not the current
        # state (or it changed while we checked), the event must not run.
        return generation == self.state.generation == self.rendered_generation

    async def _finish(self, operation: Awaitable[T]) -> T:
        """Await a service call that runs to its end even if this view goes away meanwhile:
        a websocket that closes (and the effects it cancels) never aborts a transaction
        half-way, and the app waits for these before it closes the database."""
        task = asyncio.ensure_future(operation)
        task.add_done_callback(_retrieve)  # if nobody awaits it any more
        return await asyncio.shield(task)

    async def _acting(self, session: AuthSession, operation: Awaitable[T]) -> T:
        """A service call on behalf of ``session``; if the service says the session may not
        act (ended, or re-keyed by another view), this view signs out at once."""
        try:
            return await self._finish(operation)
        except NotSignedIn:
            if self._is_current(session) and self._ends_now(session):
                self._leave("ended")
                self._notify()
            raise

    def _ends_now(self, session: AuthSession) -> bool:
        """Whether a "may not act" for ``session`` signs this view out at once (``follow``
        defers it while the view asks the browser which cookie it holds)."""
        return True

    async def _adopt(self, session: AuthSession, result: Rekeyed) -> None:
        """This view re-keyed its session: the new epoch, and a ticket for the new cookie;
        returns once the browser holds that cookie (or the wait ran out)."""
        if self._is_current(session):
            self._cookie_held.clear()
            self.state = replace(
                self.state,
                user=result.signed_in.user,
                session=result.signed_in.session,
                ticket=result.ticket,
            )
            self._verified_at = self._service.now()
            self._schedule_expiry(result.signed_in.session)
            self._notify()
            await self._until_cookie_held(result.signed_in.session)

    async def _until_cookie_held(self, session: AuthSession) -> None:
        """Wait for the browser to redeem the ticket (``COOKIE_ATTACHED``), at most
        ``policy.cookie_wait``; then the view stops saying "Signing in…" either way."""
        try:
            async with asyncio.timeout(self._service.policy.cookie_wait.total_seconds()):
                await self._cookie_held.wait()
            refused = False
        except TimeoutError:
            refused = True
            log.warning("the browser did not pick up its cookie session=%s", session.short_id)
        if self._is_current(session) and (self.state.pending or refused):
            self.state = replace(self.state, pending=False, cookie_refused=refused)
            self._notify()

    def _require_signed_in(self) -> AuthSession:
        if self.state.session is None or self.state.user is None:
            raise NotSignedIn()
        return self.state.session

    def _is_current(self, session: AuthSession) -> bool:
        return self.state.session is not None and self.state.session.id == session.id

    def _recheck_due(self, now: datetime) -> bool:
        """True once half the idle window passed since the database last vouched for us."""
        verified = self._verified_at
        return verified is None or now - verified >= self._service.policy.renew_margin

    def _stop_following_cookie(self) -> None:
        if self._token_unsubscribe is not None:
            self._token_unsubscribe()
            self._token_unsubscribe = None

    def _on_cookie_event(self, event: SessionEvent) -> None:
        if event.kind is not EventKind.SESSION_OPENED or self.state.session is not None:
            return
        self._stop_following_cookie()
        (session_id,) = event.session_ids
        # Listen at once, so that a data change made before we joined is not missed.
        changed: list[SessionEvent] = []
        stop = self._events.subscribe(session_id, changed.append)
        task = asyncio.ensure_future(self._join(session_id, stop, changed))
        task.add_done_callback(_log_failure)

    async def _join(
        self, session_id: int, stop: Callable[[], None], changed: list[SessionEvent]
    ) -> None:
        try:
            found = await self._finish(self._service.live_session(session_id))
            if found is None or found[1] is not None or self.state.session is not None:
                return
            self._enter(found[0], None, None)
            self.state = replace(self.state, remote_data_version=self.state.remote_data_version + 1)
            self._notify()
        finally:
            stop()
        if changed:  # changes that raced with the read above
            await self._reload_data(found[0])

    def _enter(self, session: AuthSession, user: User | None, ticket: str | None) -> None:
        self._stop_following_cookie()
        self._cookie_held.clear()
        previous = self.state.user.id if self.state.user else None
        generation = self.state.generation + (previous != (user.id if user else None))
        self.state = AuthState(
            user,
            session,
            ticket,
            generation,
            self.state.remote_data_version,
            sessions_version=self.state.sessions_version,
            # An anonymous row joined while the code is asked for: still asked for.
            second_step=self.state.second_step if user is None else None,
            # Still said after a sign-out, until someone signs in.
            signed_out_reason=self.state.signed_out_reason if user is None else None,
        )
        self._unsubscribe = self._events.subscribe(session.id, self._on_event)
        if user is not None:
            self._user_unsubscribe = self._events.subscribe_user(user.id, self._on_user_event)
        self._verified_at = self._service.now()  # it was just read or written
        self._schedule_expiry(session)

    def _leave(self, reason: str | None = None) -> None:
        """Sign this view out of its session. ``reason``: why, when the user did not ask
        for it (a signed-in view then says so)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._user_unsubscribe is not None:
            self._user_unsubscribe()
            self._user_unsubscribe = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.state.session is not None:
            # Whatever the row was, the browser's cookie no longer leads to live data.
            self._cookie_issued_at = None
            self.state = AuthState(
                generation=self.state.generation + (self.state.user is not None),
                remote_data_version=self.state.remote_data_version + 1,
                second_step=self.state.second_step,
                signed_out_reason=reason if self.state.user is not None else None,
            )

    def _set_session(self, session: AuthSession) -> None:
        self.state = replace(self.state, session=session)
        self._schedule_expiry(session)

    def _schedule_expiry(self, session: AuthSession) -> None:
        if self._timer is not None:
            self._timer.cancel()
        due = session.expires_at()
        if self._verified_at is not None:  # re-read at least once per half idle window
            due = min(due, self._verified_at + self._service.policy.renew_margin)
        delay = (due - self._service.now()).total_seconds() + _TIMER_SLACK
        self._timer = self._deadlines.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._recheck())
        task.add_done_callback(_log_failure)

    async def _recheck(self) -> None:
        """The local view says the session ended; ask the database (another tab may have
        renewed it) and sign this view out if it really has. Fails closed."""
        session, user = self.state.session, self.state.user
        if session is None:
            return
        try:
            current = await self._finish(self._service.live_session(session.id))
        except Exception:
            log.warning("cannot confirm session=%s; ending it in this view", session.short_id)
            current = None
        if not self._is_current(session):
            return
        if current is not None and current[0].user_epoch != session.user_epoch:
            current = None  # re-keyed by another view: this one ends
        if current is None:
            expired = not session.is_live(self._service.now())
            self._leave("expired" if expired else "ended")
            self._notify()
            if user is not None and expired:
                await self._finish(
                    self._service.note_expired(session, user)
                )  # timed out, not revoked
        else:
            self._verified_at = self._service.now()
            self._set_session(current[0])

    def _on_event(self, event: SessionEvent) -> None:
        session = self.state.session
        if session is None or session.id not in event.session_ids:
            return
        if event.kind is EventKind.REVOKED or (
            event.kind is EventKind.REKEYED and event.origin != self.origin
        ):
            # A sign-out in another tab of this session was asked for: nothing to explain.
            self._leave(None if event.reason == "logout" else event.reason or "ended")
            self._notify()
        elif event.kind is EventKind.COOKIE_ATTACHED and event.token_hash is not None:
            self.cookie_token_hash = event.token_hash  # the next ticket is bound to it
        elif event.kind is EventKind.COOKIE_HELD:
            # The browser presented the new cookie: now, and not before, "signed in".
            self._cookie_held.set()
            if self.state.ticket is not None or self.state.pending:
                self.state = replace(self.state, ticket=None, pending=False, cookie_refused=False)
                self._notify()
        elif event.kind is EventKind.DATA_CHANGED and event.origin != self.origin:
            task = asyncio.ensure_future(self._reload_data(session))
            task.add_done_callback(_log_failure)

    def _on_user_event(self, event: SessionEvent) -> None:
        """One of this user's sessions opened or ended somewhere: lists re-read. Their
        roles changed: permissions are read again (``rights``)."""
        if self.state.user is None or event.user_id != self.state.user.id:
            return
        if event.kind is EventKind.RIGHTS_CHANGED:
            self.state = replace(
                self.state, rights_version=self.state.rights_version + 1, refusal=None
            )
        else:
            self.state = replace(self.state, sessions_version=self.state.sessions_version + 1)
        self._notify()

    async def _reload_data(self, session: AuthSession) -> None:
        current = await self._finish(self._service.live_session(session.id))
        if current is None or not self._is_current(session) or self.state.session is None:
            return
        fresh = replace(self.state.session, data=current[0].data)
        self.state = replace(
            self.state, session=fresh, remote_data_version=self.state.remote_data_version + 1
        )
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.state)


class Flag:
    """``asyncio.Event``'s ``set``, ``clear`` and ``wait``, with the event (and the queue
    of waiters it allocates) made on the first wait only: every open view has one, and
    most never wait on it (they open signed in, or never sign in)."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        self._set = False
        if self._event is not None:
            self._event.clear()

    async def wait(self) -> None:
        if self._set:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("session check failed", exc_info=task.exception())


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
