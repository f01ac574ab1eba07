"""Accounts by e-mail in one view: sign-up and its code, "forgot password", and a new
address for the signed-in user.

Invariants:
- Entering a code that signs in (a sign-up's, a reset's) goes through the sign-in path
  of this view (``SignInFlow._signed_in_by``): one step at a time, never switching
  users (``AlreadySignedIn``), "signed in" said only once the browser holds the cookie
  a ticket bound to its current cookie hands over.
- A change of address acts as this view's session, on its epoch (``_acting``): when the
  session may not act any more the view signs out.
- Nothing here keeps a code or a password: they go to the service and are forgotten.
"""

from __future__ import annotations

from dataclasses import replace

from ...domain import AlreadySignedIn, User
from .signin import SignInFlow


class EmailFlow(SignInFlow):
    @property
    def signup_open(self) -> bool:
        """Sign-up is on (``AUTHDEMO_SIGNUP=open``) and mail can be sent."""
        policy = self._service.email
        return policy.signup_open and policy.mail_available

    @property
    def mail_available(self) -> bool:
        return self._service.email.mail_available

    async def sign_up(self, email: str, username: str, password: str) -> str:
        """Start a sign-up; returns the address (normal form) the code went to."""
        if self.state.user is not None:
            raise AlreadySignedIn()
        return await self._finish(self._service.sign_up(email, username, password, self.client))

    async def verify_email(self, email: str, code: str) -> User:
        """The code of a sign-up: verifies the address and signs this view in."""
        async with self._login_lock:
            if self.state.user is not None:
                raise AlreadySignedIn()
            anonymous = self.state.session
            result = await self._finish(
                self._service.verify_email(
                    email,
                    code,
                    self.cookie_token_hash,
                    self.client,
                    carry_from=anonymous.id if anonymous else None,
                )
            )
            await self._signed_in_by(result.signed_in.session, result.signed_in.user, result.ticket)
            return result.signed_in.user

    async def resend_code(self, email: str) -> None:
        await self._finish(self._service.resend_verification(email, self.client))

    async def request_password_reset(self, email: str) -> None:
        await self._finish(self._service.request_password_reset(email, self.client))

    async def reset_password(
        self, email: str, code: str, password: str, second_factor: str | None = None
    ) -> User:
        """Set a new password with the mailed code: every session of the account ends,
        and this view signs in."""
        async with self._login_lock:
            if self.state.user is not None:
                raise AlreadySignedIn()
            anonymous = self.state.session
            result = await self._finish(
                self._service.reset_password(
                    email,
                    code,
                    password,
                    self.cookie_token_hash,
                    self.client,
                    second_factor=second_factor or None,
                    carry_from=anonymous.id if anonymous else None,
                )
            )
            await self._signed_in_by(result.signed_in.session, result.signed_in.user, result.ticket)
            return result.signed_in.user

    async def request_email_change(self, email: str) -> str:
        session = self._require_signed_in()
        return await self._acting(
            session,
            self._service.request_email_change(
                session.id, email, self.client, epoch=session.user_epoch
            ),
        )

    async def confirm_email_change(self, code: str) -> User:
        session = self._require_signed_in()
        user = await self._acting(
            session,
            self._service.confirm_email_change(
                session.id, code, self.client, epoch=session.user_epoch
            ),
        )
        if self._is_current(session):
            self.state = replace(self.state, user=user)
            self._notify()
        return user
