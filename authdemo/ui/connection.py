"""The auth state of one open websocket, kept in step with the server-side session.

A websocket lives for hours; this object never holds a database session. Each
operation runs its own unit of work through the service. Expiry is scheduled with a
timer (not checked by polling), revocations and data changes arrive through the event
bus, and every incoming UI event is checked against the local expiry before it runs.

A view never outlives a missed event by more than half the idle window: it re-reads its
session from the database at least that often (a timer when idle, before the next UI
event when busy), renewal is a conditional write that fails for a session that may not
act, and every action it takes is checked by the service against the session's epoch
as this view knows it — a view of a session that was re-keyed elsewhere ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from ..domain import (
    AlreadySignedIn,
    AuthSession,
    ClientInfo,
    CodeThrottled,
    NotSignedIn,
    SecondFactorRequired,
    SecondStepExpired,
    User,
)
from ..events import EventBus, EventKind, SessionEvent
from ..service import AuthService, Enrolment, MfaStatus, Rekeyed, Resolution

log = logging.getLogger("authdemo.auth")
T = TypeVar("T")

# Fire expiry timers slightly late so that "now >= expiry" holds when they run.
_TIMER_SLACK = 0.05
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class SecondStep:
    """A correct password waiting for its code in this view: nothing is signed in."""

    expires_at: datetime
    """After this the view goes back to the password form (the service refuses too)."""


@dataclass(frozen=True)
class AuthState:
    """An immutable snapshot for rendering."""

    user: User | None = None
    session: AuthSession | None = None
    """The live row: the signed-in session, or an anonymous one that holds data."""
    ticket: str | None = None
    """A cookie ticket the page must redeem (rendered as a hidden image request)."""
    generation: int = 0
    """Bumped whenever who is signed in changes."""
    remote_data_version: int = 0
    """Bumped when another view changed the session's data."""
    pending: bool = False
    """The password checked out, but the browser does not hold the session's cookie yet:
    the view says "Signing in…" (and renders the ticket), not "signed in"."""
    sessions_version: int = 0
    """Bumped when one of the signed-in user's sessions opened or ended anywhere."""
    cookie_refused: bool = False
    """The browser never picked up its cookie in time: this tab stays signed in, a
    reload or a new tab will not be."""
    second_step: SecondStep | None = None
    """The password checked out for an account with two-factor sign-in: the view asks
    for the code. ``user`` stays None; no session, ticket or cookie exists for it."""
    recovery_codes_left: int | None = None
    """Set when this view signed in with a recovery code: how many are left."""

    @property
    def data(self) -> Mapping[str, Any]:
        if self.session is None or not self.session.data:
            return _EMPTY
        return MappingProxyType(dict(self.session.data))


class LiveSession:
    def __init__(
        self,
        service: AuthService,
        events: EventBus,
        client: ClientInfo,
        cookie_token_hash: str | None,
        resolution: Resolution,
    ) -> None:
        self._service = service
        self._events = events
        self.client = client
        self.origin = secrets.token_hex(8)
        """Names this connection in the data changes it broadcasts."""
        self.cookie_token_hash = cookie_token_hash
        """Hash of the cookie the browser holds, as far as we know (binds tickets)."""
        self._cookie_issued_at: datetime | None = resolution.issued_at
        """Set while that cookie is a valid anonymous one without a row."""
        self.state = AuthState()
        self.rendered_generation = 0
        """The generation the browser's current view was rendered for."""
        self._listeners: set[Callable[[AuthState], None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._user_unsubscribe: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._verified_at: datetime | None = None
        """When the database last confirmed that this view's session may act."""
        self._closed = False
        self._data_lock = asyncio.Lock()
        self._login_lock = asyncio.Lock()
        self._cookie_held = asyncio.Event()
        """Set when the browser redeemed the ticket of the current session."""
        self._token_unsubscribe: Callable[[], None] | None = None
        self._challenge: str | None = None
        """The pending second step's challenge: only ever in this connection's memory."""
        self._challenge_timer: asyncio.TimerHandle | None = None
        self._enrolment: Enrolment | None = None
        """A two-factor setup this view started and has not finished: dropped on close."""
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

    # --- what components call ---------------------------------------------------------

    async def login(self, username: str, password: str) -> User:
        """Sign in; raises ``InvalidCredentials`` (``Throttled`` after repeated failures),
        and ``AlreadySignedIn`` when this view is signed in (or signing in) already: a
        sign-in never silently switches users. Sign-ins of one view run one at a time,
        so a double submit gets ``AlreadySignedIn`` too, not a second session.

        For an account with two-factor sign-in a correct password raises
        ``SecondFactorRequired`` and the view waits for ``verify_code``: nothing is
        signed in, no cookie changes, until the code is accepted."""
        async with self._login_lock:
            if self.state.user is not None:
                raise AlreadySignedIn()
            return await self._login(username, password)

    async def _login(self, username: str, password: str) -> User:
        self._drop_second_step()
        anonymous = self.state.session
        try:
            result = await self._finish(
                self._service.login(
                    self.cookie_token_hash,
                    username,
                    password,
                    self.client,
                    carry_from=anonymous.id if anonymous else None,
                )
            )
        except SecondFactorRequired as required:
            if not self._closed and required.challenge and required.expires_at:
                self._await_code(required.challenge, required.expires_at)
            raise SecondFactorRequired(None, required.expires_at) from None  # no challenge
        await self._signed_in_by(result.signed_in.session, result.signed_in.user, result.ticket)
        return result.signed_in.user

    async def verify_code(self, code: str) -> User:
        """The second step: a code from the authenticator app, or a recovery code.

        Raises ``InvalidCode`` (the view keeps asking), ``CodeThrottled`` or
        ``SecondStepExpired`` (the view goes back to the password form)."""
        async with self._login_lock:  # a double submit is one attempt after the other
            if self.state.user is not None:
                raise AlreadySignedIn()
            return await self._verify_code(code)

    async def _verify_code(self, code: str) -> User:
        challenge = self._challenge
        if challenge is None:
            raise SecondStepExpired()
        try:
            result = await self._finish(
                self._service.verify_second_factor(
                    challenge, self.cookie_token_hash, code, self.client
                )
            )
        except (CodeThrottled, SecondStepExpired):
            if self._challenge == challenge:
                self._drop_second_step()
                self._notify()
            raise
        if self._challenge == challenge:
            self._drop_second_step()
        await self._signed_in_by(
            result.signed_in.session,
            result.signed_in.user,
            result.ticket,
            recovery_codes_left=result.recovery_codes_left,
        )
        return result.signed_in.user

    async def cancel_second_step(self) -> None:
        """Back to the password form; the challenge is void."""
        challenge = self._challenge
        self._drop_second_step()
        self._notify()
        if challenge is not None:
            await self._finish(self._service.abandon_second_factor(challenge))

    def _abandon_enrolment(self) -> None:
        """The view closes halfway through a two-factor setup: that setup is dropped
        (not one another tab began since), so nothing is left behind."""
        started, self._enrolment = self._enrolment, None
        session, user = self.state.session, self.state.user
        if started is None or session is None or user is None:
            return
        task = asyncio.ensure_future(
            self._finish(
                self._service.cancel_enrolment(
                    session.id, self.client, epoch=session.user_epoch, started=started
                )
            )
        )
        task.add_done_callback(_retrieve)

    def _await_code(self, challenge: str, expires_at: datetime) -> None:
        self._challenge = challenge
        self.state = replace(self.state, second_step=SecondStep(expires_at))
        delay = (expires_at - self._service.now()).total_seconds() + _TIMER_SLACK
        loop = asyncio.get_running_loop()
        self._challenge_timer = loop.call_later(max(0.0, delay), self._second_step_expired)
        self._notify()

    def _second_step_expired(self) -> None:
        self._challenge_timer = None
        if self._challenge is not None:
            self._drop_second_step()
            self._notify()

    def _drop_second_step(self) -> None:
        self._challenge = None
        if self._challenge_timer is not None:
            self._challenge_timer.cancel()
            self._challenge_timer = None
        if self.state.second_step is not None:
            self.state = replace(self.state, second_step=None)

    async def _signed_in_by(
        self,
        session: AuthSession,
        user: User,
        ticket: str,
        *,
        recovery_codes_left: int | None = None,
    ) -> None:
        """A sign-in opened ``session``: "Signing in…" until the browser holds its cookie."""
        if self._closed:
            return
        self._leave()
        self._enter(session, user, ticket=ticket)
        self.state = replace(self.state, pending=True, recovery_codes_left=recovery_codes_left)
        self._notify()
        await self._until_cookie_held(session)

    # --- two-factor settings of the signed-in user (authdemo's own components) ----------

    async def mfa_status(self) -> MfaStatus:
        session = self._require_signed_in()
        return await self._acting(session, self._service.mfa_status(session.id))

    async def start_mfa_enrolment(self, password: str) -> Enrolment:
        session = self._require_signed_in()
        started = await self._acting(
            session,
            self._service.start_enrolment(
                session.id, password, self.client, epoch=session.user_epoch
            ),
        )
        self._enrolment = started
        return started

    async def confirm_mfa_enrolment(self, code: str) -> list[str]:
        """Turn two-factor sign-in on; returns the recovery codes (to show once). Every
        other session of the user and every other view of this one ends; this view goes
        on under a new cookie."""
        session = self._require_signed_in()
        done = await self._acting(
            session,
            self._service.confirm_enrolment(
                session.id,
                code,
                self.cookie_token_hash,
                self.client,
                origin=self.origin,
                epoch=session.user_epoch,
            ),
        )
        self._enrolment = None
        await self._adopt(session, done.rekeyed)
        return done.recovery_codes

    async def cancel_mfa_enrolment(self) -> None:
        session = self._require_signed_in()
        started, self._enrolment = self._enrolment, None
        await self._acting(
            session,
            self._service.cancel_enrolment(
                session.id, self.client, epoch=session.user_epoch, started=started
            ),
        )

    async def disable_mfa(self, password: str, code: str) -> int:
        """Turn two-factor sign-in off (the password and a code). As turning it on does,
        every other session of the user and every other view of this one ends; this view
        goes on under a new cookie. Returns how many other sessions ended."""
        session = self._require_signed_in()
        result = await self._acting(
            session,
            self._service.disable_mfa(
                session.id,
                password,
                code,
                self.cookie_token_hash,
                self.client,
                origin=self.origin,
                epoch=session.user_epoch,
            ),
        )
        await self._adopt(session, result)
        return result.ended

    async def logout(self) -> None:
        """Revoke the signed-in session; the view starts over as a new anonymous visitor
        (no data), like Django's ``flush()``."""
        session = self.state.session
        if session is None or self.state.user is None:
            return
        # Revoke first: the view only says "signed out" once the server agrees.
        stored = await self._finish(
            self._service.logout(session.id, self.client, epoch=session.user_epoch)
        )
        if stored is not None and stored.token_hash != session.token_hash:
            # The ticket was redeemed (maybe by another worker, whose event may not have
            # reached us yet): the browser holds this session's cookie, and the next
            # sign-in's ticket must be bound to that.
            self.cookie_token_hash = stored.token_hash
        if self._is_current(session):
            self._leave()
            self._notify()

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Needs the current password; ends every other session; rotates this one's token."""
        session = self._require_signed_in()
        result = await self._acting(
            session,
            self._service.change_password(
                session.id,
                current_password,
                new_password,
                self.cookie_token_hash,
                self.client,
                origin=self.origin,
                epoch=session.user_epoch,
            ),
        )
        await self._adopt(session, result)

    async def sessions(self) -> list[AuthSession]:
        """The signed-in user's live sessions, most recently active first."""
        session = self._require_signed_in()
        assert session.user_id is not None
        return await self._finish(self._service.sessions_of(session.user_id))

    async def logout_others(self) -> int:
        """End every other session of this user and every other view of this one (live, in
        every tab); this view goes on under a new cookie. Returns how many sessions."""
        session = self._require_signed_in()
        result = await self._acting(
            session,
            self._service.revoke_other_sessions(
                session.id,
                self.client,
                self.cookie_token_hash,
                origin=self.origin,
                epoch=session.user_epoch,
            ),
        )
        await self._adopt(session, result)
        return result.ended

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
            if self._is_current(session):
                self._leave()
                self._notify()
            raise

    def now(self) -> datetime:
        """The service's clock (expiry times are in it)."""
        return self._service.now()

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
                # A conditional write: it is the re-check too.
                renewed = await self._finish(self._service.renew(session))
                if not self._is_current(session) or self.state.session is None:
                    return False  # the state changed while we renewed
                if renewed is None:  # may not act: every view of it hears so too
                    self._leave()
                    self._notify()
                else:
                    self._verified_at = now
                    self._set_session(replace(renewed, data=self.state.session.data))
            elif self._recheck_due(now):
                await self._recheck()
        # The event was sent from a view of `generation`; if that is not the current
        # state (or it changed while we checked), the event must not run.
        return generation == self.state.generation == self.rendered_generation

    def close(self) -> None:
        self._closed = True
        self._drop_second_step()
        self._abandon_enrolment()
        self._stop_following_cookie()
        self._leave()
        self._listeners.clear()

    # --- internals ------------------------------------------------------------------------

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

    def _recheck_due(self, now: datetime) -> bool:
        """True once half the idle window passed since the database last vouched for us."""
        verified = self._verified_at
        return verified is None or now - verified >= self._service.policy.renew_margin

    def _require_signed_in(self) -> AuthSession:
        if self.state.session is None or self.state.user is None:
            raise NotSignedIn()
        return self.state.session

    def _is_current(self, session: AuthSession) -> bool:
        return self.state.session is not None and self.state.session.id == session.id

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
        )
        self._unsubscribe = self._events.subscribe(session.id, self._on_event)
        if user is not None:
            self._user_unsubscribe = self._events.subscribe_user(user.id, self._on_user_event)
        self._verified_at = self._service.now()  # it was just read or written
        self._schedule_expiry(session)

    def _leave(self) -> None:
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
            )

    def _set_session(self, session: AuthSession) -> None:
        self.state = replace(self.state, session=session)
        self._schedule_expiry(session)

    def _schedule_expiry(self, session: AuthSession) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        due = session.expires_at()
        if self._verified_at is not None:  # re-read at least once per half idle window
            due = min(due, self._verified_at + self._service.policy.renew_margin)
        delay = (due - self._service.now()).total_seconds() + _TIMER_SLACK
        self._timer = loop.call_later(max(0.0, delay), self._on_timer)

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
            self._leave()
            self._notify()
            if user is not None and not session.is_live(self._service.now()):
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
            self._leave()
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
        """One of this user's sessions opened or ended somewhere: lists re-read."""
        if self.state.user is None or event.user_id != self.state.user.id:
            return
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
        for listener in tuple(self._listeners):
            listener(self.state)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("session check failed", exc_info=task.exception())


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
