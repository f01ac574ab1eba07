"""Accounts by e-mail: sign-up with a verified address, password reset by mail, change of
address, and the operators' commands for addresses.

Invariants:
- Every mail is an outbox row written in the transaction of the change that causes it
  (``tx.outbox.add``): a sender delivers it later, so nothing is lost to an SMTP outage.
- A code is checked, spent and acted on in one write transaction, the user row locked
  first: it is spent by one conditional ``DELETE`` (right digest, not expired, tries
  left), so of two requests redeeming it at once — any workers, any hosts — exactly one
  acts; a wrong code counts a try by one conditional ``UPDATE``; at the limit it is void.
- No enumeration: sign-up, "send a new code" and "forgot password" answer the same
  words whatever the address or username, after the same work (the password is hashed,
  a mail row written, the limits counted in each case), and not before
  ``EmailPolicy.answer_floor``; what differs is the mail, never the answer.
- Limits live in the database (``tx.limits``), so every worker and host counts the same
  windows; each is counted before any hashing or mail, and each refusal is audited.
- An account made by sign-up cannot sign in until its address is verified
  (``_verify``); verifying signs it in through the one sign-in path (``_open_session``:
  a new session, its cookie by a ticket bound to the browser's cookie).
- A reset ends every session of the user, live (the credential epoch moves on and the
  revocations are broadcast in the same transaction), and signs this browser in; a user
  with two-factor sign-in must also give a current code or a recovery code.
- Codes, passwords and mail bodies never reach a log line, an exception or the audit
  trail; addresses typed by visitors are audited as keyed digests.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from ..domain import (
    AuditKind,
    ClientInfo,
    CookieRequired,
    NotSignedIn,
    SecondFactorRequired,
    SignedIn,
    StorageRefused,
    User,
    UsernameTaken,
    address_key,
    check_password_policy,
    client_network,
    normalize_username,
)
from ..mail import (
    CodePurpose,
    EmailCode,
    EmailCodeLocked,
    EmailNotVerified,
    EmailTaken,
    MailThrottled,
    MailUnavailable,
    SignupClosed,
    WrongEmailCode,
    clean_code,
    new_email_code,
    normalize_email,
)
from ..ports import UnitOfWork
from . import mail_texts
from .core import OPERATOR, LoginResult
from .mfa import open_secret
from .mfa_settings import TwoFactor
from .signin import Verified

log = logging.getLogger("authdemo.auth")

T = TypeVar("T")


class EmailAccounts(TwoFactor):
    mail_hook: Callable[[], None] | None = None
    """Called after a transaction that wrote a mail committed (the sender looks at once)."""

    # --- operators -------------------------------------------------------------------------

    async def create_user_with_email(self, username: str, password: str, email: str) -> User:
        """An operator's new user with an address the operator vouches for (verified):
        both or neither (``UsernameTaken``, ``EmailTaken``)."""
        display, key = normalize_username(username)
        address, email_key = normalize_email(email)
        hashed = await self._hasher.hash(check_password_policy(password))
        now = self.now()
        async with self._uow(write=True) as tx:
            user = await tx.users.add(display, key, hashed, now)
            await tx.emails.set_email(user.id, address, email_key, now)
            await self._audit(
                tx, AuditKind.USER_CREATED, user=user, client=OPERATOR, detail="with an address"
            )
            await tx.commit()
        log.info("user created user=%s", user.username)
        return await self._user(user.id)

    async def set_email(self, username: str, email: str | None) -> User:
        """Operator: give the user this (verified) address, or none (``None``)."""
        user = await self.get_user(username)
        address, key = normalize_email(email) if email is not None else (None, None)
        async with self._uow(write=True) as tx:
            await tx.users.lock(user.id)
            await tx.emails.set_email(user.id, address, key, self.now() if address else None)
            await tx.emails.drop_codes(user.id, CodePurpose.CHANGE)
            await self._audit(
                tx,
                AuditKind.EMAIL_CHANGED,
                user=user,
                client=OPERATOR,
                detail="by operator" if address else "removed by operator",
            )
            await tx.commit()
        log.info("address %s by operator user=%s", "set" if address else "removed", user.username)
        return await self._user(user.id)

    async def find_user_by_email(self, email: str) -> User | None:
        _, key = normalize_email(email)
        async with self._uow() as tx:
            return await tx.emails.find_user(key)

    # --- sign-up ---------------------------------------------------------------------------

    async def sign_up(self, email: str, username: str, password: str, client: ClientInfo) -> str:
        """Start a sign-up: a code is mailed to ``email`` (or, when the address or the
        name is taken, a mail that says so). Returns the address in its normal form,
        which the code is then entered with (``verify_email``).

        The answer is the same whatever is taken. Raises ``SignupClosed``,
        ``MailUnavailable``, ``InvalidEmail``, ``InvalidUsername``, ``InvalidPassword``
        (checked before anything is counted), ``MailThrottled``."""
        if not self.email.signup_open:
            raise SignupClosed()
        self._need_mail()
        address, key = normalize_email(email)
        display, name_key = normalize_username(username)
        checked = check_password_policy(password)
        return await self._evenly(self._sign_up(address, key, display, name_key, checked, client))

    async def _sign_up(
        self, address: str, key: str, display: str, name_key: str, password: str, client: ClientInfo
    ) -> str:
        net = client_network(client.addr)
        await self._limit(
            [
                (f"signup:{net}", self.email.signups_per_network),
                (f"mail:{net}", self.email.mails_per_network),
                (self._address_limit(key), self.email.mails_per_address),
            ],
            client,
        )
        hashed = await self._hasher.hash(password)  # for taken ones too: the same work
        policy = self.email
        site = self.issuer
        now = self.now()
        try:
            async with self._uow(write=True) as tx:
                taken_by = await tx.emails.find_user(key)
                if taken_by is not None and taken_by.awaiting_verification:
                    # Nobody proved this address yet: the newest sign-up with it wins, so
                    # a stranger's sign-up cannot keep its owner out until it expires.
                    await tx.users.lock(taken_by.id)
                    if await tx.emails.drop_unverified(taken_by.id):
                        taken_by = None
                if taken_by is None and await tx.users.get_by_key(name_key) is None:
                    user = await tx.users.add(display, name_key, hashed, now)
                    await tx.emails.set_email(
                        user.id, address, key, None, signup_expires_at=now + policy.signup_ttl
                    )
                    code = await self._new_code(tx, user, CodePurpose.VERIFY, address, key, now)
                    await tx.outbox.add(
                        mail_texts.signup_code(site, address, display, code, self._minutes()), now
                    )
                    await self._audit(tx, AuditKind.SIGNUP, user=user, client=client)
                    await tx.commit()
                    self._queued()
                    log.info("sign-up started user=%s", display)
                    return address
        except (UsernameTaken, EmailTaken):
            pass  # taken meanwhile, by a sign-up at the same moment: as if taken before
        async with self._uow(write=True) as tx:
            taken_by = await tx.emails.find_user(key)
            mail = (
                mail_texts.signup_address_taken(site, address)
                if taken_by is not None
                else mail_texts.signup_username_taken(site, address, display)
            )
            await tx.outbox.add(mail, now)
            await self._audit(
                tx,
                AuditKind.SIGNUP,
                user=taken_by,
                username=self._shown_address(key),
                client=client,
                detail="address taken" if taken_by is not None else "username taken",
            )
            await tx.commit()
        self._queued()
        log.info("sign-up refused by mail (%s)", mail.kind)
        return address

    async def resend_verification(self, email: str, client: ClientInfo) -> None:
        """ "Send a new code" for a sign-up not yet verified: a new code replaces the old
        one — if an account awaits verification at this address; the same answer
        otherwise. Raises ``MailUnavailable``, ``InvalidEmail``, ``MailThrottled``."""
        self._need_mail()
        address, key = normalize_email(email)
        await self._evenly(self._resend(address, key, client))

    async def _resend(self, address: str, key: str, client: ClientInfo) -> None:
        await self._limit(
            [
                (f"mail:{client_network(client.addr)}", self.email.mails_per_network),
                (self._address_limit(key), self.email.mails_per_address),
            ],
            client,
        )
        now = self.now()
        async with self._uow(write=True) as tx:
            user = await tx.emails.find_user(key)
            if user is not None and user.awaiting_verification:
                await tx.users.lock(user.id)
                code = await self._new_code(tx, user, CodePurpose.VERIFY, address, key, now)
                mail = mail_texts.signup_code(
                    self.issuer, address, user.username, code, self._minutes()
                )
                await tx.outbox.add(mail, now)
                await self._audit(
                    tx, AuditKind.EMAIL_CODE_SENT, user=user, client=client, detail="sign-up"
                )
            else:
                await self._audit(
                    tx,
                    AuditKind.EMAIL_CODE_SENT,
                    username=self._shown_address(key),
                    client=client,
                    detail="sign-up: no account awaits this address; nothing sent",
                )
            await tx.commit()
        self._queued()

    async def verify_email(
        self,
        email: str,
        code: str,
        bound_token_hash: str | None,
        client: ClientInfo,
        carry_from: int | None = None,
    ) -> LoginResult:
        """Finish a sign-up: the code verifies the address and signs the account in (a
        new session, its cookie by a ticket bound to ``bound_token_hash``, as ``login``).

        Raises ``CookieRequired``, ``InvalidEmail``, ``WrongEmailCode`` (also for an
        address with no sign-up waiting), ``EmailCodeLocked``, ``MailThrottled``."""
        if bound_token_hash is None:
            raise CookieRequired()
        _, key = normalize_email(email)
        # As slow for an address with no sign-up waiting as for one with: the time of a
        # wrong code's answer does not tell whether someone signed up with the address.
        return await self._evenly(
            self._verify_email(key, code, bound_token_hash, client, carry_from)
        )

    async def _verify_email(
        self,
        key: str,
        code: str,
        bound_token_hash: str,
        client: ClientInfo,
        carry_from: int | None,
    ) -> LoginResult:
        await self._limit(
            [(f"code:{client_network(client.addr)}", self.email.codes_per_network)], client
        )
        now = self.now()
        async with self._uow(write=True) as tx:
            user = await self._code_owner(tx, key)
            if user is None or not user.awaiting_verification:
                raise WrongEmailCode()
            await self._redeem(tx, user, CodePurpose.VERIFY, code, client, now)
            if not await tx.emails.mark_verified(user.id, now):
                raise WrongEmailCode()  # verified meanwhile: that request won
            await self._audit(tx, AuditKind.EMAIL_VERIFIED, user=user, client=client)
            result = await self._open_session(tx, user, bound_token_hash, carry_from, client, now)
            await tx.commit()
        log.info("address verified, signed in user=%s", user.username)
        return result

    async def _verify(self, username: str, password: str, client: ClientInfo) -> Verified:
        """A sign-in's password check: an account made by sign-up and not yet verified
        is refused (``EmailNotVerified``, after a right password only), and counts as a
        failed attempt."""
        verified = await super()._verify(username, password, client)
        if verified.user.awaiting_verification:
            async with self._uow(write=True) as tx:
                await self._audit(
                    tx,
                    AuditKind.LOGIN_FAILED,
                    user=verified.user,
                    client=client,
                    detail="address not verified",
                )
                await tx.commit()
            log.info("login refused: address not verified user=%s", verified.user.username)
            raise EmailNotVerified(verified.user.email)
        return verified

    # --- password reset --------------------------------------------------------------------

    async def request_password_reset(self, email: str, client: ClientInfo) -> None:
        """ "Forgot password?": a code is mailed if the address is a verified account's
        (otherwise a mail that says no account has it). The same answer, after the same
        work, either way. Raises ``MailUnavailable``, ``InvalidEmail``, ``MailThrottled``."""
        self._need_mail()
        address, key = normalize_email(email)
        await self._evenly(self._request_reset(address, key, client))

    async def _request_reset(self, address: str, key: str, client: ClientInfo) -> None:
        await self._limit(
            [
                (f"mail:{client_network(client.addr)}", self.email.mails_per_network),
                (self._address_limit(key), self.email.mails_per_address),
            ],
            client,
        )
        now = self.now()
        async with self._uow(write=True) as tx:
            user = await tx.emails.find_user(key)
            if user is not None and user.is_active and not user.awaiting_verification:
                await tx.users.lock(user.id)
                to = user.email or address  # as stored: the owner's spelling
                code = await self._new_code(tx, user, CodePurpose.RESET, to, key, now)
                mail = mail_texts.reset_code(self.issuer, to, user.username, code, self._minutes())
                detail = "password reset"
            else:
                mail = mail_texts.reset_unknown(self.issuer, address)
                user, detail = None, "password reset: no verified account has this address"
            await tx.outbox.add(mail, now)
            await self._audit(
                tx,
                AuditKind.EMAIL_CODE_SENT,
                user=user,
                username=self._shown_address(key),
                client=client,
                detail=detail,
            )
            await tx.commit()
        self._queued()

    async def reset_password(
        self,
        email: str,
        code: str,
        new_password: str,
        bound_token_hash: str | None,
        client: ClientInfo,
        *,
        second_factor: str | None = None,
        carry_from: int | None = None,
    ) -> LoginResult:
        """Set a new password with a mailed code: every session of the user ends, live,
        and this browser is signed in (cookie by ticket, as ``login``).

        A user with two-factor sign-in gives a current code or a recovery code too
        (``second_factor``); without it ``SecondFactorRequired`` is raised and the mailed
        code stays valid. Raises ``CookieRequired``, ``InvalidEmail``, ``InvalidPassword``,
        ``WrongEmailCode``, ``EmailCodeLocked``, ``InvalidCode``/``CodeThrottled`` (the
        second factor), ``MfaUnavailable``, ``MailThrottled``."""
        if bound_token_hash is None:
            raise CookieRequired()
        _, key = normalize_email(email)
        checked = check_password_policy(new_password)
        await self._limit(
            [(f"code:{client_network(client.addr)}", self.email.codes_per_network)], client
        )
        hashed = await self._hasher.hash(checked)  # before the write: its lock stays short
        now = self.now()
        async with self._uow(write=True) as tx:
            user = await self._code_owner(tx, key)
            if user is None or user.awaiting_verification or not user.is_active:
                raise WrongEmailCode()
            found = await tx.emails.get_code(user.id, CodePurpose.RESET)
            record = await tx.mfa.get(user.id)
            mfa_on = record is not None and record.confirmed_at is not None
            if mfa_on and self._code_matches(found, user, CodePurpose.RESET, code, now):
                # The mailed code is right: now the second factor (counted as for sign-in).
                if not second_factor:
                    raise SecondFactorRequired()
                assert record is not None
                outcome = await self._check_code(
                    tx,
                    user,
                    client,
                    second_factor,
                    now,
                    open_secret(self._box(), user.id, record.sealed_secret),
                    lambda step: tx.mfa.accept_step(user.id, step),
                    recovery=True,
                )
                if not outcome.ok:
                    await self._code_failed(tx, user, client, outcome, drop_pending=False)
                await self._code_ok(tx, user, client, outcome)
            await self._redeem(tx, user, CodePurpose.RESET, code, client, now)
            await tx.users.set_password_hash(user.id, hashed, changed_at=now)
            revoked = await self._revoke_all(tx, user.id, "password_changed")
            await tx.mfa.drop_challenges(user.id)
            await tx.emails.drop_codes(user.id)
            ended = len(revoked.session_ids) if revoked is not None else 0
            await self._audit(
                tx,
                AuditKind.PASSWORD_RESET,
                user=user,
                client=client,
                detail=f"by mailed code; {ended} session(s) ended",
            )
            if user.email is not None:
                await tx.outbox.add(
                    mail_texts.password_was_reset(self.issuer, user.email, user.username), now
                )
            moved = await tx.users.lock(user.id)
            assert moved is not None
            result = await self._open_session(
                tx, moved.user, bound_token_hash, carry_from, client, now
            )
            await tx.commit()
        self._queued()
        await self._published(revoked)
        log.info("password reset by mailed code user=%s ended=%d", user.username, ended)
        return result

    # --- change of address -----------------------------------------------------------------

    async def request_email_change(
        self, session_id: int, email: str, client: ClientInfo, *, epoch: int | None = None
    ) -> str:
        """Mail a code to the new address (or, when another account has it, a mail that
        says so: the answer is the same). Returns the address in its normal form.
        Raises ``NotSignedIn``, ``MailUnavailable``, ``InvalidEmail``, ``MailThrottled``."""
        self._need_mail()
        address, key = normalize_email(email)
        signed_in = await self._signed_in(session_id, epoch)
        await self._evenly(self._request_change(signed_in, address, key, client, epoch))
        return address

    async def _request_change(
        self, signed_in: SignedIn, address: str, key: str, client: ClientInfo, epoch: int | None
    ) -> None:
        await self._limit(
            [
                (f"mail:{client_network(client.addr)}", self.email.mails_per_network),
                (self._address_limit(key), self.email.mails_per_address),
            ],
            client,
        )
        now = self.now()
        async with self._uow(write=True) as tx:
            _, user = await self._acting(tx, signed_in.session.id, now, epoch, lock_user=True)
            if user is None:
                raise NotSignedIn()
            owner = await tx.emails.find_user(key)
            if owner is not None and owner.id != user.id:
                await tx.outbox.add(mail_texts.change_address_taken(self.issuer, address), now)
                await tx.emails.drop_codes(user.id, CodePurpose.CHANGE)
                detail = "change of address: taken by another account"
            else:
                code = await self._new_code(tx, user, CodePurpose.CHANGE, address, key, now)
                mail = mail_texts.change_code(
                    self.issuer, address, user.username, code, self._minutes()
                )
                await tx.outbox.add(mail, now)
                detail = "change of address"
            await self._audit(
                tx, AuditKind.EMAIL_CODE_SENT, user=user, client=client, detail=detail
            )
            await tx.commit()
        self._queued()

    async def confirm_email_change(
        self,
        session_id: int,
        code: str,
        client: ClientInfo,
        *,
        epoch: int | None = None,
    ) -> User:
        """The code from the new address makes it the account's (verified); the old
        address is told. Raises ``NotSignedIn``, ``WrongEmailCode``, ``EmailCodeLocked``,
        ``EmailTaken`` (another account took the address meanwhile), ``MailThrottled``."""
        await self._limit(
            [(f"code:{client_network(client.addr)}", self.email.codes_per_network)], client
        )
        now = self.now()
        async with self._uow(write=True) as tx:
            _, user = await self._acting(tx, session_id, now, epoch, lock_user=True)
            if user is None:
                raise NotSignedIn()
            pending = await self._redeem(tx, user, CodePurpose.CHANGE, code, client, now)
            await tx.emails.set_email(user.id, pending.email, pending.email_key, now)
            if user.email is not None and user.email.casefold() != pending.email_key:
                await tx.outbox.add(
                    mail_texts.address_changed(
                        self.issuer, user.email, user.username, pending.email
                    ),
                    now,
                )
            await self._audit(tx, AuditKind.EMAIL_CHANGED, user=user, client=client)
            await tx.commit()
        self._queued()
        log.info("address changed user=%s", user.username)
        return await self._user(user.id)

    # --- shared ----------------------------------------------------------------------------

    def _queued(self) -> None:
        if self.mail_hook is not None:
            self.mail_hook()

    def _need_mail(self) -> None:
        if not self.email.mail_available:
            raise MailUnavailable()

    def _minutes(self) -> int:
        return max(1, int(self.email.code_ttl.total_seconds() // 60))

    def _shown_address(self, key: str) -> str:
        """How the audit trail names a typed address: a keyed digest, never the text."""
        return f"email:{self._tokens.name_digest('email:' + key)[:12]}"

    def _address_limit(self, key: str) -> str:
        return f"to:{self._tokens.name_digest('email:' + key)}"

    async def _limit(self, limits: list[tuple[str, int]], client: ClientInfo) -> None:
        """Count one event on each ``(key, limit)`` (every worker and host shares the
        counts); ``MailThrottled`` when one is past its limit — audited."""
        now = self.now()
        async with self._uow(write=True) as tx:
            over: list[datetime] = []
            for key, limit in sorted(limits):  # one order for every transaction: no deadlock
                count, ends = await tx.limits.hit(key, now, self.email.window)
                if count > limit:
                    over.append(ends)
            if over:
                await self._audit(
                    tx,
                    AuditKind.MAIL_THROTTLED,
                    client=client,
                    detail=f"{len(over)} limit(s) reached at {address_key(client.addr)}",
                )
            await tx.commit()
        if over:
            log.info("mail or code request refused (limit) client=%s", client.addr)
            raise MailThrottled(max(over) - now)

    async def _evenly(self, work: Awaitable[T]) -> T:
        """Run ``work``; answer no sooner than ``answer_floor`` after starting, so the
        time of an answer tells nothing about which way the work went."""
        started = time.monotonic()
        try:
            return await work
        finally:
            left = self.email.answer_floor.total_seconds() - (time.monotonic() - started)
            if left > 0:
                await asyncio.sleep(left)

    async def _new_code(
        self,
        tx: UnitOfWork,
        user: User,
        purpose: CodePurpose,
        address: str,
        key: str,
        now: datetime,
    ) -> str:
        code = new_email_code()
        digest = self._tokens.email_code_digest(user.id, purpose, code)
        await tx.emails.put_code(
            user.id, purpose, address, key, digest, now, now + self.email.code_ttl
        )
        return code

    async def _code_owner(self, tx: UnitOfWork, key: str) -> User | None:
        """The user with this address, locked (before any code row is touched)."""
        user = await tx.emails.find_user(key)
        if user is None:
            return None
        locked = await tx.users.lock(user.id)
        return locked.user if locked is not None else None

    def _code_matches(
        self, found: EmailCode | None, user: User, purpose: CodePurpose, code: str, now: datetime
    ) -> bool:
        typed = clean_code(code)
        if found is None or typed is None:
            return False
        digest = self._tokens.email_code_digest(user.id, purpose, typed)
        return (
            hmac.compare_digest(digest, found.code_digest)
            and now < found.expires_at
            and found.tries < self.email.code_tries
        )

    async def _redeem(
        self,
        tx: UnitOfWork,
        user: User,
        purpose: CodePurpose,
        code: str,
        client: ClientInfo,
        now: datetime,
    ) -> EmailCode:
        """Inside ``tx`` (the user row locked): spend the user's code for ``purpose``, or
        count a wrong try — committed — and raise ``WrongEmailCode``/``EmailCodeLocked``."""
        found = await tx.emails.get_code(user.id, purpose)
        if self._code_matches(found, user, purpose, code, now):
            assert found is not None
            if await tx.emails.spend_code(found.id, found.code_digest, now, self.email.code_tries):
                return found
            raise WrongEmailCode()  # spent by another request a moment ago
        locked = False
        if found is not None and now < found.expires_at:
            tries = await tx.emails.count_wrong(found.id, self.email.code_tries)
            locked = tries is None or tries >= self.email.code_tries
        await self._audit(
            tx,
            AuditKind.EMAIL_CODE_FAILED,
            user=user,
            client=client,
            detail=f"{purpose}: " + ("void after too many wrong codes" if locked else "wrong code"),
        )
        await tx.commit()
        log.info("mailed code refused (%s) user=%s", purpose, user.username)
        if locked:
            raise EmailCodeLocked()
        raise WrongEmailCode()

    async def _user(self, user_id: int) -> User:
        async with self._uow() as tx:
            user = await tx.users.get(user_id)
        if user is None:  # pragma: no cover - deleted in between by an operator
            raise StorageRefused()
        return user
