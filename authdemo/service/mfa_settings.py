"""Two-factor sign-in, its settings: turning it on (enrolment) and off, the status,
and the operator's reset and re-encryption.

Invariants:
- A new secret is pending (sealed, ≤ ``enrol_ttl``) until one code of it confirms it,
  in the write that makes the recovery codes (stored as keyed digests only), bumps the
  credential epoch and re-keys the acting session: every other session of the user
  ends, live, and sign-ins in flight under the old epoch fail.
- An abandoned setup leaves nothing behind: cancelled (only the one the caller began),
  replaced by a new one, or expired and purged; each is audited except the purge.
- Turning it off needs the password and a code (its step spent like a sign-in's), and
  ends access like turning it on: in the write that deletes the secret, the credential
  epoch moves on, the acting session is re-keyed and every other session of the user
  ends, live. The operator's reset needs neither password nor code and ends every
  session of the user (the epoch moves on, so pending second steps die too).
- New recovery codes need the password and a code, as turning it off does (with them
  one can sign in without the phone); in the write that stores them every old one
  dies. Sessions and the epoch stay as they are: nobody's access ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ..domain import (
    AuditKind,
    AuthSession,
    ClientInfo,
    CookieRequired,
    MfaStateConflict,
    NotSignedIn,
    SignedIn,
    User,
    may_act,
)
from ..mfa import (
    MfaRecord,
    SecretBox,
    SecretUnreadable,
    grouped,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    otpauth_uri,
)
from ..ports import AccountRows, UnitOfWork
from .batching import BatchedReads
from .core import BY_OPERATOR, OPERATOR, Rekeyed
from .mfa import SecondFactor, _Outcome, open_secret
from .signin import Verified

log = logging.getLogger("authdemo.auth")


@dataclass(frozen=True)
class Enrolment:
    """A new secret waiting for its first code. Shown to the user, never stored plain."""

    secret: str
    uri: str
    """``otpauth://totp/…``: what the QR code holds."""
    expires_at: datetime

    @property
    def grouped_secret(self) -> str:
        return grouped(self.secret)


@dataclass(frozen=True)
class Enrolled:
    rekeyed: Rekeyed
    recovery_codes: list[str]
    """Shown once; only their keyed digests are stored."""


class ResealReport(NamedTuple):
    """What ``reseal_mfa_secrets`` did."""

    resealed: int
    unreadable: int
    """Secrets the current key does not open: left as they were."""
    changed: int
    """Secrets that changed between the read and the write, and are still under an old
    key: left as they were (running it again re-seals them)."""


@dataclass(frozen=True)
class MfaStatus:
    enabled: bool
    recovery_codes_left: int = 0
    available: bool = True
    """This server can turn two-factor sign-in on (it has ``AUTHDEMO_MFA_KEY``): a card
    says so up front instead of asking for the password first."""


@dataclass(frozen=True)
class AccountSnapshot:
    """What a signed-in account view shows, read at one moment in one statement."""

    sessions: list[AuthSession]
    """The user's live sessions, most recently active first."""
    mfa: MfaStatus


class TwoFactor(SecondFactor):
    # --- enrolment ---------------------------------------------------------------------------

    async def mfa_status(self, session_id: int) -> MfaStatus:
        """Whether the session's user has two-factor sign-in on (``NotSignedIn`` once the
        session may not act). One read."""
        return (await self.account_snapshot(session_id)).mfa

    async def account_snapshot(self, session_id: int) -> AccountSnapshot:
        """The session's user's live sessions and two-factor status, in one statement
        (``NotSignedIn`` once the session may not act): what an account page shows.

        Sessions asked for at once are read together (``BatchedReads``): every session
        asked while a read runs is read by the next one, one statement for them all, and
        never by a read that had started before it was asked."""
        found = await self._account_reads(session_id)
        if found is None:
            raise NotSignedIn()
        rows, now = found
        if not may_act(rows.session, rows.user, now):
            raise NotSignedIn()
        if not rows.mfa_enabled:
            mfa = MfaStatus(False, available=self._mfa_box is not None)
        else:
            mfa = MfaStatus(True, rows.recovery_codes_left)
        return AccountSnapshot(rows.sessions, mfa)

    _account_batches: BatchedReads[int, tuple[AccountRows, datetime]] | None = None

    @property
    def _account_reads(self) -> BatchedReads[int, tuple[AccountRows, datetime]]:
        if self._account_batches is None:
            self._account_batches = BatchedReads(self._read_accounts)
        return self._account_batches

    async def _read_accounts(
        self, session_ids: list[int]
    ) -> dict[int, tuple[AccountRows, datetime]]:
        """One statement for the accounts of ``session_ids``, each with the time it was
        read at (what ``may_act`` is checked against)."""
        now = self.now()
        async with self._uow(one_statement=True) as tx:
            found = await tx.sessions.accounts_of(session_ids, now)
        return {session_id: (rows, now) for session_id, rows in found.items()}

    async def start_enrolment(
        self, session_id: int, password: str, client: ClientInfo, *, epoch: int | None = None
    ) -> Enrolment:
        """Re-check the password, then make a new secret, pending until a code confirms
        it (``enrol_ttl``). Starting again replaces a pending secret."""
        box = self._box()
        signed_in = await self._signed_in(session_id, epoch)
        if (await self.mfa_status(session_id)).enabled:
            raise MfaStateConflict("Two-factor sign-in is already on.")
        verified = await self._verify(signed_in.user.username, password, client)
        secret = new_totp_secret()
        now = self.now()
        expires_at = now + self.second_factor.enrol_ttl
        async with self._uow(write=True) as tx:
            _, user = await self._acting(
                tx, session_id, now, signed_in.session.user_epoch, lock_user=True
            )
            if user is None or await self._settle(tx, verified) is None:
                raise NotSignedIn()
            before = await tx.mfa.get(user.id)
            if before is not None and before.confirmed_at is None:
                await self._audit(
                    tx,
                    AuditKind.MFA_ENROL_ABANDONED,
                    user=user,
                    client=client,
                    detail="expired" if not before.is_pending(now) else "replaced by a new setup",
                )
            if not await tx.mfa.start(user.id, box.seal(user.id, secret), now, expires_at):
                raise MfaStateConflict("Two-factor sign-in is already on.")
            await self._audit(tx, AuditKind.MFA_ENROL_STARTED, user=user, client=client)
            await tx.commit()
        log.info("two-factor setup started user=%s", user.username)
        uri = otpauth_uri(secret, user.username, self.issuer, self.second_factor)
        return Enrolment(secret, uri, expires_at)

    async def confirm_enrolment(
        self,
        session_id: int,
        code: str,
        bound_token_hash: str | None,
        client: ClientInfo,
        *,
        origin: str = "",
        epoch: int | None = None,
    ) -> Enrolled:
        """Turn two-factor sign-in on with a first code of the pending secret: recovery
        codes are made (returned once), every other session of the user ends, and this
        one goes on under a new token (ticket bound to the cookie held now)."""
        if bound_token_hash is None:
            raise CookieRequired()
        box = self._box()
        codes = new_recovery_codes(self.second_factor.recovery_codes)
        now = self.now()
        async with self._uow(write=True) as tx:
            acting, user = await self._acting(tx, session_id, now, epoch, lock_user=True)
            if user is None:
                raise NotSignedIn()
            record = await tx.mfa.get(user.id)
            if record is None or not record.is_pending(now):
                raise MfaStateConflict("The setup expired. Start again.")
            sealed = record.sealed_secret
            outcome = await self._check_code(
                tx,
                user,
                client,
                code,
                now,
                open_secret(box, user.id, sealed),
                lambda step: tx.mfa.confirm(user.id, sealed, step, now),
                recovery=False,
            )
            if not outcome.ok:
                await self._code_failed(tx, user, client, outcome, drop_pending=False)
            digests = [
                self._tokens.recovery_digest(user.id, typed)
                for typed in (normalize_recovery_code(c) for c in codes)
                if typed is not None
            ]
            await tx.mfa.add_recovery_codes(user.id, digests, now)
            new_epoch = await tx.users.bump_epoch(user.id)
            result, events = await self._rekey(
                tx,
                acting,
                user,
                new_epoch,
                bound_token_hash,
                origin,
                client,
                "mfa_enabled",
                AuditKind.MFA_ENROL_CONFIRMED,
            )
            await tx.commit()
        log.info("two-factor sign-in on user=%s", user.username)
        return Enrolled(await self._rekeyed(result, events), codes)

    async def cancel_enrolment(
        self,
        session_id: int,
        client: ClientInfo,
        *,
        epoch: int | None = None,
        started: Enrolment | None = None,
    ) -> bool:
        """Drop a pending secret (the setup was abandoned); True when there was one.
        With ``started``, only that setup (not one begun since in another tab)."""
        signed_in = await self._signed_in(session_id, epoch)
        user = signed_in.user
        async with self._uow(write=True) as tx:
            await tx.users.lock(user.id)
            record = await tx.mfa.get(user.id)
            if record is None or record.confirmed_at is not None:
                return False
            if started is not None and not _holds(self._mfa_box, record, started.secret):
                return False  # a newer setup (another tab's): not ours to drop
            await tx.mfa.delete(user.id, pending_only=True)
            await self._audit(tx, AuditKind.MFA_ENROL_ABANDONED, user=user, client=client)
            await tx.commit()
        return True

    async def disable_mfa(
        self,
        session_id: int,
        password: str,
        code: str,
        bound_token_hash: str | None,
        client: ClientInfo,
        *,
        origin: str = "",
        epoch: int | None = None,
    ) -> Rekeyed:
        """Turn two-factor sign-in off: needs the password and a current code (or a
        recovery code, for someone who lost the phone but is signed in). The code's step
        is spent, so a code just used to sign in does not turn it off. As turning it on
        does, this ends every other session of the user and every other view of this
        one, live; this one goes on under a new token (ticket bound to the cookie held
        now). Raises ``CookieRequired``, ``NotSignedIn``, ``InvalidCredentials``,
        ``Throttled``, ``InvalidCode`` (wrong or spent) or ``CodeThrottled``,
        ``MfaStateConflict`` (it is not on), ``MfaUnavailable``."""
        if bound_token_hash is None:
            raise CookieRequired()
        box = self._box()
        signed_in = await self._signed_in(session_id, epoch)
        verified = await self._verify(signed_in.user.username, password, client)
        now = self.now()
        async with self._uow(write=True) as tx:
            acting, user, outcome = await self._password_and_code(
                tx, signed_in, verified, code, client, box, now
            )
            await tx.mfa.delete(user.id)
            new_epoch = await tx.users.bump_epoch(user.id)  # second steps in flight end too
            result, events = await self._rekey(
                tx,
                acting,
                user,
                new_epoch,
                bound_token_hash,
                origin,
                client,
                "mfa_disabled",
                AuditKind.MFA_DISABLED,
                note=f"with a {outcome.detail}",
            )
            await tx.commit()
        log.info("two-factor sign-in off user=%s", user.username)
        return await self._rekeyed(result, events)

    async def regenerate_recovery_codes(
        self,
        session_id: int,
        password: str,
        code: str,
        client: ClientInfo,
        *,
        epoch: int | None = None,
    ) -> list[str]:
        """New recovery codes for the signed-in user (returned once); the old ones stop
        working. Needs the password and a current code (or a recovery code), spent like
        turning it off. Raises ``NotSignedIn``, ``InvalidCredentials``, ``Throttled``,
        ``InvalidCode`` or ``CodeThrottled``, ``MfaStateConflict`` (it is not on),
        ``MfaUnavailable``."""
        box = self._box()
        signed_in = await self._signed_in(session_id, epoch)
        verified = await self._verify(signed_in.user.username, password, client)
        codes = new_recovery_codes(self.second_factor.recovery_codes)
        now = self.now()
        async with self._uow(write=True) as tx:
            acting, user, outcome = await self._password_and_code(
                tx, signed_in, verified, code, client, box, now
            )
            digests = [
                self._tokens.recovery_digest(user.id, typed)
                for typed in (normalize_recovery_code(c) for c in codes)
                if typed is not None
            ]
            await tx.mfa.add_recovery_codes(user.id, digests, now)
            await self._audit(
                tx,
                AuditKind.MFA_RECOVERY_RENEWED,
                user=user,
                session=acting,
                client=client,
                detail=f"{len(digests)} new; with a {outcome.detail}",
            )
            await tx.commit()
        log.info("recovery codes renewed user=%s", user.username)
        return codes

    async def _password_and_code(
        self,
        tx: UnitOfWork,
        signed_in: SignedIn,
        verified: Verified,
        code: str,
        client: ClientInfo,
        box: SecretBox,
        now: datetime,
    ) -> tuple[AuthSession, User, _Outcome]:
        """Inside ``tx``, what turning two-factor off and renewing recovery codes both need:
        the acting session may act (its user row locked, still on the epoch the view
        holds), the verified password settles (throttle), two-factor is on, and ``code``
        (or a recovery code) is right, its step spent. Raises ``NotSignedIn``,
        ``MfaStateConflict``, ``InvalidCode``/``CodeThrottled`` (the refusal committed)."""
        acting, user = await self._acting(
            tx, signed_in.session.id, now, signed_in.session.user_epoch, lock_user=True
        )
        if user is None or await self._settle(tx, verified) is None:
            raise NotSignedIn()
        record = await tx.mfa.get(user.id)
        if record is None or record.confirmed_at is None:
            raise MfaStateConflict("Two-factor sign-in is not on.")
        outcome = await self._check_code(
            tx,
            user,
            client,
            code,
            now,
            open_secret(box, user.id, record.sealed_secret),
            lambda step: tx.mfa.accept_step(user.id, step),
            recovery=True,
        )
        if not outcome.ok:
            await self._code_failed(tx, user, client, outcome, drop_pending=False)
        return acting, user, outcome

    # --- operators -------------------------------------------------------------------------

    async def reset_mfa(
        self, username: str, *, client: ClientInfo = OPERATOR, by: str = BY_OPERATOR
    ) -> int:
        """``authdemo mfa-reset``: remove the user's two-factor sign-in (a lost phone) and
        end every session of the user, live. Returns how many sessions ended. ``client``,
        ``by``: who asked (the CLI by default; the admin page passes its own)."""
        user = await self.get_user(username)
        async with self._uow(write=True) as tx:
            await tx.users.lock(user.id)
            if not await tx.mfa.delete(user.id):
                raise MfaStateConflict(f"{user.username} has no two-factor sign-in.")
            await tx.users.bump_epoch(user.id)  # second steps and sign-ins in flight end too
            event = await self._revoke_all(tx, user.id, "mfa_reset")
            ended = len(event.session_ids) if event is not None else 0
            await self._audit(
                tx,
                AuditKind.MFA_RESET,
                user=user,
                client=client,
                detail=f"by {by}; {ended} session(s) ended",
            )
            await tx.commit()
        log.info("two-factor sign-in reset user=%s", user.username)
        return await self._published(event)

    async def reseal_mfa_secrets(self, new_box: SecretBox) -> ResealReport:
        """Re-encrypt every secret under ``new_box``'s key. Already re-sealed ones are
        skipped, so running it again after an interruption finishes the job.

        Each write is conditional on the ciphertext read (``replace_sealed``): a secret
        that changed meanwhile (its user set two-factor up again) is never overwritten
        with the old one; it is counted in ``changed`` unless it is gone or under the new
        key already. Nothing is written unless ``new_box`` opens what it seals
        (``MfaStateConflict`` otherwise; ``MfaUnavailable`` without a current key)."""
        box = self._box()
        if not _opens_its_own_seal(new_box):
            raise MfaStateConflict("The new key cannot open what it encrypts; nothing was changed.")
        async with self._uow() as tx:
            rows = await tx.mfa.sealed_secrets()
        resealed = unreadable = changed = 0
        for user_id, sealed in rows:
            if new_box.sealed_by_current_key(sealed):
                continue
            try:
                secret = box.open(user_id, sealed)
            except SecretUnreadable:
                unreadable += 1
                log.warning("two-factor secret of user id %s does not open; skipped", user_id)
                continue
            async with self._uow(write=True) as tx:
                written = await tx.mfa.replace_sealed(
                    user_id, sealed, new_box.seal(user_id, secret)
                )
                if written:
                    await tx.commit()
                    resealed += 1
                    continue
                current = await tx.mfa.get(user_id)  # changed meanwhile: as it is now
            if current is not None and not new_box.sealed_by_current_key(current.sealed_secret):
                changed += 1
                log.warning("two-factor secret of user id %s changed meanwhile; skipped", user_id)
        async with self._uow(write=True) as tx:
            await self._audit(
                tx,
                AuditKind.MFA_REKEYED,
                client=OPERATOR,
                detail=f"{resealed} secret(s) re-encrypted, {unreadable} unreadable"
                + (f", {changed} changed meanwhile" if changed else ""),
            )
            await tx.commit()
        return ResealReport(resealed, unreadable, changed)


_PROBE = "AUTHDEMOPROBE234"


def _opens_its_own_seal(box: SecretBox) -> bool:
    """``box`` seals and opens a test value (before any secret is written under it)."""
    try:
        return box.open(0, box.seal(0, _PROBE)) == _PROBE
    except SecretUnreadable:
        return False


def _holds(box: SecretBox | None, record: MfaRecord, secret: str) -> bool:
    try:
        return box is not None and box.open(record.user_id, record.sealed_secret) == secret
    except SecretUnreadable:
        return False
