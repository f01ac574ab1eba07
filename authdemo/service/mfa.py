"""Two-factor sign-in, the second step: checking a code, and settling a pending sign-in.

Invariants:
- A time step is accepted at most once per user, by one conditional write
  (``accept_step``: ``… WHERE last_step < :step``); a recovery code is spent by one
  (``… WHERE used_at IS NULL``); a challenge is settled by one delete. Whatever runs at
  once on other workers or hosts, exactly one caller sees the row change; the others
  are refused, and a refusal rolls back whatever else its transaction did.
- Every code is checked in the write transaction that records its outcome, after the
  user row and then the code throttle rows are locked (the same order as sign-ins):
  wrong codes are counted on every worker and host, and a locked second step refuses
  the right code too, and drops the user's pending sign-ins.
- A challenge becomes a session only for the cookie it was issued to, before it
  expires, while the user is active and on the credential epoch the password was
  checked under. Until then nothing is signed in: no session row, no ticket.
- Secrets are sealed (``mfa.SecretBox``) with the user id as associated data, and
  neither they, codes nor recovery codes reach a log line, an exception message or the
  audit trail.

Turning it on and off, and the operator's commands, are in ``mfa_settings``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from ..domain import (
    AuditKind,
    ClientInfo,
    CodeThrottled,
    InvalidCode,
    MfaUnavailable,
    NotSignedIn,
    SecondStepExpired,
    SignedIn,
    ThrottlePolicy,
    User,
    address_key,
)
from ..mfa import SecretBox, SecretUnreadable, matching_step, normalize_recovery_code, typed_code
from ..ports import UnitOfWork
from ..security import hash_token
from .accounts import Accounts
from .core import LoginResult

log = logging.getLogger("authdemo.auth")


@dataclass(frozen=True)
class SecondStepResult(LoginResult):
    recovery_codes_left: int | None = None
    """Set when a recovery code was used: how many are left."""


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    detail: str
    """What the audit trail says: never the code."""
    recovery_left: int | None = None
    locked: timedelta | None = None


class SecondFactor(Accounts):
    def _box(self) -> SecretBox:
        if self._mfa_box is None:
            log.warning("two-factor sign-in refused: no AUTHDEMO_MFA_KEY on this server")
            raise MfaUnavailable()
        return self._mfa_box

    def _code_throttle(self) -> ThrottlePolicy:
        policy = self.second_factor
        return ThrottlePolicy(
            account_threshold=policy.account_threshold,
            address_threshold=policy.address_threshold,
            base=policy.lock,
            cap=policy.lock,
            forget_after=self.throttle.forget_after,
        )

    @staticmethod
    def _code_keys(user: User, client: ClientInfo) -> tuple[str, str]:
        return f"mfa:user:{user.id}", f"mfa:{address_key(client.addr)}"

    # --- the second step of a sign-in ------------------------------------------------------

    async def verify_second_factor(
        self,
        challenge: str,
        bound_token_hash: str | None,
        code: str,
        client: ClientInfo,
    ) -> SecondStepResult:
        """Settle a sign-in's second step with a TOTP code or a recovery code.

        Returns the new session (its cookie by ticket, as ``login`` does). Raises
        ``InvalidCode`` (wrong, replayed; the challenge stays), ``CodeThrottled`` (the
        challenge is dropped), ``SecondStepExpired`` (expired, dropped, another cookie,
        or the account changed since the password was checked)."""
        box = self._box()
        now = self.now()
        challenge_hash = hash_token(challenge)
        async with self._uow(write=True) as tx:
            pending = await tx.mfa.get_challenge(challenge_hash)
            if pending is None or bound_token_hash != pending.bound_token_hash:
                raise SecondStepExpired()
            locked = await tx.users.lock(pending.user_id)
            if await tx.mfa.get_challenge(challenge_hash) is None:
                # Settled (or dropped) by a request that held the user's lock first: a
                # double submit is not a wrong code, and counts as none.
                raise SecondStepExpired()
            user = locked.user if locked is not None else None
            if (
                now >= pending.expires_at
                or user is None
                or not user.is_active
                or user.credential_epoch != pending.user_epoch
            ):
                await tx.mfa.take_challenge(challenge_hash)
                await tx.commit()
                raise SecondStepExpired()
            record = await tx.mfa.get(user.id)
            if record is None or record.confirmed_at is None:  # reset meanwhile
                await tx.mfa.take_challenge(challenge_hash)
                await tx.commit()
                raise SecondStepExpired()
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
                await self._code_failed(tx, user, client, outcome, drop_pending=True)
            if not await tx.mfa.take_challenge(challenge_hash):
                raise SecondStepExpired()  # settled elsewhere: this rolls the step back
            await self._code_ok(tx, user, client, outcome)
            result = await self._open_session(
                tx, user, pending.bound_token_hash, pending.carry_from, client, now
            )
            await tx.commit()
        log.info(
            "login ok (second factor: %s) user=%s session=%s",
            outcome.detail,
            user.username,
            result.signed_in.session.short_id,
        )
        return SecondStepResult(result.signed_in, result.ticket, outcome.recovery_left)

    async def abandon_second_factor(self, challenge: str) -> None:
        """The visitor went back to the password form: the challenge is void."""
        async with self._uow(write=True) as tx:
            if await tx.mfa.take_challenge(hash_token(challenge)):
                await tx.commit()

    async def _check_code(
        self,
        tx: UnitOfWork,
        user: User,
        client: ClientInfo,
        code: str,
        now: datetime,
        secret: str,
        accept: Callable[[int], Awaitable[bool]],
        *,
        recovery: bool,
    ) -> _Outcome:
        """Inside the write that records it, with the user row locked: is ``code`` a code
        of ``secret`` whose step ``accept`` takes (or, with ``recovery``, an unspent
        recovery code)? Counts a failure; clears the user's count on success."""
        throttle = self._code_throttle()
        keys = self._code_keys(user, client)
        states = await tx.throttle.lock(list(keys), now)
        blocked = [
            s.blocked_until for s in states.values() if s.blocked_until and s.blocked_until > now
        ]
        if blocked:
            return _Outcome(False, "locked", locked=max(blocked) - now)
        outcome = _Outcome(False, "wrong code")
        totp = typed_code(code, self.second_factor)
        if totp is not None:
            step = matching_step(secret, totp, now, self.second_factor)
            if step is not None:
                accepted = await accept(step)
                outcome = _Outcome(accepted, "code" if accepted else "replayed code")
        elif recovery and (typed := normalize_recovery_code(code)) is not None:
            digest = self._tokens.recovery_digest(user.id, typed)
            if await tx.mfa.spend_recovery_code(user.id, digest, now):
                left = await tx.mfa.recovery_codes_left(user.id)
                outcome = _Outcome(True, "recovery code", recovery_left=left)
            else:
                outcome = _Outcome(False, "wrong recovery code")
        if outcome.ok:
            await tx.throttle.clear(keys[0])
            return outcome
        thresholds = (throttle.account_threshold, throttle.address_threshold)
        blocks: list[timedelta] = []
        for key, threshold in zip(keys, thresholds, strict=True):
            counted = throttle.reserve(states.get(key), threshold, now)
            assert counted is not None  # not blocked: checked above, under the lock
            await tx.throttle.save(key, counted.failures, counted.blocked_until, now)
            if counted.blocked_until is not None:
                blocks.append(counted.blocked_until - now)
        return _Outcome(False, outcome.detail, locked=max(blocks) if blocks else None)

    async def _code_failed(
        self,
        tx: UnitOfWork,
        user: User,
        client: ClientInfo,
        outcome: _Outcome,
        *,
        drop_pending: bool,
    ) -> NoReturn:
        """Record a refused code (its count is in ``tx`` already), commit, and raise."""
        detail = outcome.detail
        if outcome.locked is not None:
            detail += f"; locked for {int(outcome.locked.total_seconds())} s"
            if drop_pending:
                await tx.mfa.drop_challenges(user.id)
        await self._audit(tx, AuditKind.MFA_CODE_FAILED, user=user, client=client, detail=detail)
        await tx.commit()
        log.info("code refused (%s) user=%s client=%s", detail, user.username, client.addr)
        if outcome.locked is not None:
            raise CodeThrottled(outcome.locked)
        raise InvalidCode()

    async def _code_ok(
        self, tx: UnitOfWork, user: User, client: ClientInfo, outcome: _Outcome
    ) -> None:
        if outcome.recovery_left is not None:
            await self._audit(
                tx,
                AuditKind.MFA_RECOVERY_USED,
                user=user,
                client=client,
                detail=f"{outcome.recovery_left} left",
            )
        else:
            await self._audit(tx, AuditKind.MFA_CODE_OK, user=user, client=client)

    async def _signed_in(self, session_id: int, epoch: int | None) -> SignedIn:
        signed_in = await self.current(session_id)
        if signed_in is None or (epoch is not None and signed_in.session.user_epoch != epoch):
            raise NotSignedIn()
        return signed_in


def open_secret(box: SecretBox, user_id: int, sealed: str) -> str:
    """The secret, or ``MfaUnavailable`` when this server's key does not open it (the
    operator changed ``AUTHDEMO_MFA_KEY`` without re-encrypting): fail closed, say why."""
    try:
        return box.open(user_id, sealed)
    except SecretUnreadable:
        log.error(
            "the two-factor secret of user id %s does not open with AUTHDEMO_MFA_KEY", user_id
        )
        raise MfaUnavailable(key_set=True) from None
