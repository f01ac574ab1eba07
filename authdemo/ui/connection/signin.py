"""Signing in and out in one view: the password, the second step, and signing out.

Invariants:
- A sign-in never silently switches users: a view that is signed in (or signing in)
  refuses another (``AlreadySignedIn``), and the steps of one view run one at a time.
- A correct password for an account with two-factor sign-in signs nothing in: the
  challenge stays in this connection's memory only (never rendered, never sent), and
  the view goes back to the password form when it expires or is refused.
- "Signed in" is said only once the browser holds the session's cookie (or the wait
  ran out: then the view says the cookie was refused); signing out revokes first and
  only then says so. A tab that follows another tab's sign-in (``follow``) says it
  once the browser presented that session's cookie on the tab's own follow request.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from ...domain import (
    AlreadySignedIn,
    AuthSession,
    CodeThrottled,
    SecondFactorRequired,
    SecondStepExpired,
    User,
)
from .lifecycle import _TIMER_SLACK, Connection
from .state import SecondStep


class SignInFlow(Connection):
    _challenge: str | None = None
    """The pending second step's challenge: only ever in this connection's memory."""
    _challenge_timer: asyncio.TimerHandle | None = None

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
