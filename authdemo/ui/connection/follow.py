"""Following another tab's sign-in: the open views of one browser agree on who is in.

When a tab's ticket is redeemed, the cookie the browser held before is retired
(``TOKEN_RETIRED``). Every view that knew the browser by that cookie hears it and asks
the browser which cookie it holds now: it renders a hidden image to
``/_auth/follow/<nonce>``, the nonce held in this view's memory and its page only. The
request carries the browser's current cookie; the answer comes back through the
broadcast (``FOLLOWED``), from whichever worker or host served it. The first image can
leave before the browser has stored the other tab's new cookie; it then carries the
retired one and goes unanswered, so an unanswered follow asks again with a new nonce
(``FOLLOW_ASK_AGAIN``, doubling) while ``policy.cookie_wait`` lasts.

Invariants:
- A view joins a signed-in session only through its own follow: a request that carried
  the browser's current cookie, for a session whose first cookie replaced the cookie
  this view knew (``service.followed_session`` checks both, in the database). A copy of
  the pre-sign-in cookie held open elsewhere hears the same retirement, but its image is
  never loaded with the browser's cookie: it stays signed out.
- Whatever it joins, a followed view learns the browser's current cookie, so its next
  ticket is bound to the cookie the browser really presents (a tab signed out by a
  password change elsewhere signs in again at once).
- A sign-in never opens a session the browser cannot pick up: one submitted while a
  follow is on its way waits for it (``FOLLOW_LOGIN_WAIT`` at most) and completes as
  the follow's session when it joined one; a ticket bound to a cookie that was retired
  while its password was checked is discarded (its session revoked before anything
  could use it) and the view follows the browser instead, or signs in again bound to
  the cookie the browser holds.
- A signed-in view never silently changes users: a follow into another user's session
  signs it out, saying why (``switched``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from ...domain import AuthSession, CookieRequired, SignedIn, User
from ...events import EventKind, SessionEvent, follow_key
from .lifecycle import _log_failure
from .signin import SignInFlow

log = logging.getLogger("authdemo.auth")

FOLLOW_LOGIN_WAIT = 3.0
"""Seconds a sign-in submitted while this view's follow is on its way waits for it."""

FOLLOW_ASK_AGAIN = 0.3
"""Seconds before an unanswered follow asks again (a new nonce, a new image), doubling
each time while ``policy.cookie_wait`` lasts. The first image can leave the browser
before it has stored the cookie of the other tab's ticket: it then carries the retired
cookie, which the follow route does not answer."""


class _CookieMoved(Exception):
    """The sign-in's ticket is bound to a cookie the browser no longer holds."""


@dataclass
class _Follow:
    keys: set[str]
    """``follow_key`` of each nonce this follow asked with (what an answer names)."""
    known: str
    """The retired cookie's hash: the one this view knew the browser by."""
    done: asyncio.Event
    answered: bool = False
    again_in: float = FOLLOW_ASK_AGAIN


class TabFollowing(SignInFlow):
    _follow: _Follow | None = None
    _follow_unsubscribe: list[Callable[[], None]] | None = None
    _follow_timer: asyncio.TimerHandle | None = None
    _follow_again: asyncio.TimerHandle | None = None
    _login_bound: str | None = None
    """The cookie hash the sign-in in progress bound its ticket to."""
    _ended_meanwhile: int | None = None
    """The session this view was on when a read said it may not act while a follow was
    on its way: the follow decides (the browser's sign-in in another tab retires this
    view's cookie and ends its session, and this view joins the new one); the view
    signs out only if it is still on that session when the follow ends."""

    def _ends_now(self, session: AuthSession) -> bool:
        if self._follow is None:
            return True
        self._ended_meanwhile = session.id
        return False

    # --- asking -----------------------------------------------------------------------

    def _on_cookie_retired(self, event: SessionEvent) -> None:
        known = event.token_hash
        if (
            event.kind is not EventKind.TOKEN_RETIRED
            or known is None
            or known != self.cookie_token_hash
            or self._closed
        ):
            return
        if self._follow is not None and self._follow.known == known:
            return  # asked already
        self._stop_follow()
        follow = _Follow(set(), known, asyncio.Event())
        self._follow = follow
        self._follow_unsubscribe = []
        wait = self._service.policy.cookie_wait.total_seconds()
        self._follow_timer = asyncio.get_running_loop().call_later(wait, self._follow_lapsed)
        self._ask(follow)

    def _ask(self, follow: _Follow) -> None:
        """Render an image with a new nonce; an answer to any of this follow's nonces
        counts. Asks again later until answered or lapsed."""
        nonce = secrets.token_urlsafe(24)
        key = follow_key(nonce)
        follow.keys.add(key)
        if self._follow_unsubscribe is not None:
            self._follow_unsubscribe.append(self._events.subscribe_follow(key, self._on_followed))
        loop = asyncio.get_running_loop()
        self._follow_again = loop.call_later(follow.again_in, self._ask_again, follow)
        follow.again_in *= 2
        self.state = replace(self.state, follow=nonce)
        self._notify()

    def _ask_again(self, follow: _Follow) -> None:
        self._follow_again = None
        if self._follow is follow and not follow.answered and not self._closed:
            self._ask(follow)

    def _follow_lapsed(self) -> None:
        """Nobody loaded the image with a cookie in time (a copy of the cookie outside
        the browser, or a closed tab): stop asking."""
        self._follow_timer = None
        follow = self._follow
        if follow is not None and not follow.answered:
            log.info("follow not answered in time")
            self._stop_follow()
            self._notify()

    def _stop_follow(self) -> None:
        follow, self._follow = self._follow, None
        self._unsubscribe_follow()
        for timer in (self._follow_timer, self._follow_again):
            if timer is not None:
                timer.cancel()
        self._follow_timer = self._follow_again = None
        if self.state.follow is not None:
            self.state = replace(self.state, follow=None)
        ended, self._ended_meanwhile = self._ended_meanwhile, None
        session = self.state.session
        if ended is not None and session is not None and session.id == ended:
            self._leave("ended")  # the follow did not move this view on: it ends now
        if follow is not None:
            follow.done.set()

    def _unsubscribe_follow(self) -> None:
        unsubscribes, self._follow_unsubscribe = self._follow_unsubscribe, None
        for unsubscribe in unsubscribes or ():
            unsubscribe()
        if self._follow_again is not None:
            self._follow_again.cancel()
            self._follow_again = None

    # --- the answer -------------------------------------------------------------------

    def _on_followed(self, event: SessionEvent) -> None:
        follow = self._follow
        if (
            follow is None
            or follow.answered
            or event.kind is not EventKind.FOLLOWED
            or event.origin not in follow.keys
            or event.token_hash is None
        ):
            return
        follow.answered = True
        self._unsubscribe_follow()
        session_id = event.session_ids[0] if event.session_ids else None
        task = asyncio.ensure_future(self._settle_follow(follow, event.token_hash, session_id))
        task.add_done_callback(_log_failure)

    async def _settle_follow(self, follow: _Follow, current: str, session_id: int | None) -> None:
        try:
            joined = None
            session = self.state.session
            if session_id is not None and (
                session is None or session.id != session_id or self.state.pending
            ):
                joined = await self._finish(
                    self._service.followed_session(session_id, current, follow.known)
                )
            if self._closed or self._follow is not follow:
                return
            stray = self._stray_sign_in(follow.known)
            if self.cookie_token_hash == follow.known:
                self.cookie_token_hash = current  # the browser's cookie: bind tickets to it
            if stray is not None and (joined is None or stray.id != joined.session.id):
                await self._discard(stray)
            if joined is not None:
                self._follow_into(joined)
        finally:
            if self._follow is follow:
                self._stop_follow()
                self._notify()

    def _stray_sign_in(self, retired: str) -> AuthSession | None:
        """This view's own sign-in, still waiting for its cookie, whose ticket is bound
        to the cookie just retired: the browser can never redeem it."""
        if self.state.pending and self._login_bound == retired:
            return self.state.session
        return None

    async def _discard(self, session: AuthSession) -> None:
        """Revoke a session whose cookie the browser will never get; the view leaves it
        first, so the revocation reads as nothing to explain."""
        if self._is_current(session):
            self._leave()
            self._cookie_held.set()  # the sign-in waiting for this cookie stops waiting
            self._notify()
        log.info("sign-in discarded: the browser's cookie changed session=%s", session.short_id)
        await self._finish(self._service.logout(session.id, self.client, epoch=session.user_epoch))

    def _follow_into(self, joined: SignedIn) -> None:
        user = self.state.user
        if user is not None and user.id != joined.user.id:
            self._leave("switched")
            self._notify()
            return
        challenge = self._challenge
        self._drop_second_step()  # the code asked for in this tab is not needed any more
        if challenge is not None:
            task = asyncio.ensure_future(self._abandon(challenge))
            task.add_done_callback(_log_failure)
        log.info("tab followed the browser's sign-in session=%s", joined.session.short_id)
        self._leave()
        self._enter(joined.session, joined.user, ticket=None)
        self._cookie_held.set()  # the browser presented this session's cookie
        self.state = replace(self.state, remote_data_version=self.state.remote_data_version + 1)
        self._notify()

    async def _abandon(self, challenge: str) -> None:
        await self._finish(self._service.abandon_second_factor(challenge))

    # --- signing in while a follow is on its way ------------------------------------

    async def _login(self, username: str, password: str) -> User:
        for attempt in range(2):
            follow = self._follow
            if follow is not None:
                try:
                    async with asyncio.timeout(FOLLOW_LOGIN_WAIT):
                        await follow.done.wait()
                except TimeoutError:
                    pass
            if self.state.user is not None:
                return self.state.user  # the browser signed in in another tab: followed
            self._login_bound = self.cookie_token_hash
            try:
                return await super()._login(username, password)
            except _CookieMoved:
                if attempt:
                    raise CookieRequired() from None
            finally:
                self._login_bound = None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _signed_in_by(
        self,
        session: AuthSession,
        user: User,
        ticket: str,
        *,
        recovery_codes_left: int | None = None,
    ) -> None:
        bound = self._login_bound
        if bound is not None and self.cookie_token_hash != bound:
            # A follow learned a new cookie while the password was checked: this
            # ticket is bound to one the browser no longer presents.
            await self._discard(session)
            if self.state.user is not None:
                return  # and it followed the browser into its session
            raise _CookieMoved()
        await super()._signed_in_by(session, user, ticket, recovery_codes_left=recovery_codes_left)
