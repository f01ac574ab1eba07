"""What a signed-in user does with the account in one view: change the password, turn
two-factor sign-in on and off, new recovery codes, list the sessions, end one of them
or all the others.

Invariants:
- Every action acts as this view's session, on the epoch this view holds: the service
  checks in its transaction that the session may act and is still this view's
  (``Connection._acting``); when it may not, this view signs out at once.
- An action that ends access elsewhere re-keys this view's session: it goes on under a
  new cookie, handed over by a ticket bound to the cookie the browser holds (``_adopt``).
- A session is ended by id only through the service's ownership check: the id may
  come from a forged event, so the owner is this view's user (never the event's), and
  the statement that ends it matches only a live session of that user.
- A two-factor setup this view began and did not finish is dropped when the view
  closes (only that one: not one another tab began since).
- What the account components show (the session list, the two-factor status) is one
  read, shared by every component of the view (``account``), for one state of the view:
  its session and epoch, ``sessions_version`` (a session of the user opened or ended
  anywhere) and this view's own account changes. A read started before any of those
  moved on is never served to a render after it: the next asker reads again. Views
  that ask at once, of any sessions, are read together by the service (one statement
  for all that asked while the previous read ran, ``service.batching``), and never by
  a read that had started before they asked.
"""

from __future__ import annotations

import asyncio

from ...domain import AuthSession, UnknownSession
from ...service import AccountSnapshot, Enrolment, MfaStatus
from .lifecycle import Connection, _retrieve

_AccountKey = tuple[int, int, int, int, int]
"""session id, its epoch, generation, sessions_version, this view's own changes"""


class AccountActions(Connection):
    _enrolment: Enrolment | None = None
    """A two-factor setup this view started and has not finished: dropped on close."""
    _account: tuple[_AccountKey, asyncio.Future[AccountSnapshot]] | None = None
    _account_changes: int = 0

    async def account(self) -> AccountSnapshot:
        """The user's live sessions and two-factor status: one read per state of this
        view, whichever component asks (``NotSignedIn`` signs the view out)."""
        session = self._require_signed_in()
        state = self.state
        key = (
            session.id,
            session.user_epoch,
            state.generation,
            state.sessions_version,
            self._account_changes,
        )
        memo = self._account
        if memo is None or memo[0] != key or memo[1].cancelled():
            reading = asyncio.ensure_future(
                self._acting(session, self._service.account_snapshot(session.id))
            )
            reading.add_done_callback(_retrieve)
            memo = self._account = (key, reading)
        try:
            return await asyncio.shield(memo[1])
        except Exception:
            if self._account is memo:
                self._account = None  # read again next time, not a failure remembered
            raise

    def _account_changed(self) -> None:
        """This view changed what the account components show: the next ask reads."""
        self._account_changes += 1

    async def mfa_status(self) -> MfaStatus:
        return (await self.account()).mfa

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
        self._account_changed()
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
        self._account_changed()
        await self._adopt(session, result)
        return result.ended

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
        snapshot = await self.account()
        now = self.now()
        return [s for s in snapshot.sessions if s.is_live(now)]  # none expired since

    async def end_session(self, session_id: int) -> bool:
        """End one session of the signed-in user, chosen by id; its views sign out at once.

        The id is the caller's to forge (it arrives in a UI event): the service ends it
        only if it is a live session of this view's user, in one conditional statement,
        as this view's session on its epoch. False when it is not (nothing changes). Ending
        this view's own session signs this view out, as its broadcast says."""
        session = self._require_signed_in()
        try:
            await self._acting(
                session,
                self._service.end_own_session(
                    session.id, session_id, self.client, epoch=session.user_epoch
                ),
            )
        except UnknownSession:
            return False
        finally:
            self._account_changed()  # the list is read again at once, not on the event
        return True

    async def regenerate_recovery_codes(self, password: str, code: str) -> list[str]:
        """New recovery codes (returned once, to show once); the old ones stop working."""
        session = self._require_signed_in()
        codes = await self._acting(
            session,
            self._service.regenerate_recovery_codes(
                session.id, password, code, self.client, epoch=session.user_epoch
            ),
        )
        self._account_changed()
        return codes

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
        self._account_changed()
        await self._adopt(session, result)
        return result.ended
