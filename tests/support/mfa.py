"""Two-factor helpers: a fixed test key, codes computed like an authenticator app."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pyotp
import pytest

from authdemo.domain import ClientInfo, SecondFactorRequired
from authdemo.mfa import SecretBox, SecretUnreadable, parse_mfa_key
from authdemo.security import hash_token

if TYPE_CHECKING:
    from authdemo.service import AuthService, Enrolled
    from tests.support.fakes import FakeClock

MFA_KEY_TEXT = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
MFA_KEY = parse_mfa_key(MFA_KEY_TEXT)
OTHER_KEY = bytes(range(100, 132))
CLIENT = ClientInfo("203.0.113.7", "pytest")
PASSWORD = "correct horse 1"


STEP = timedelta(seconds=30)


def box(*keys: bytes) -> SecretBox:
    return SecretBox(keys or (MFA_KEY,))


@pytest.fixture
def mfa_box() -> SecretBox:
    """The fake service (``tests/conftest.py``) with a two-factor key, for the tests of a
    module that imports this fixture::

        from tests.support.mfa import mfa_box  # noqa: F401 (a fixture)
    """
    return box()


async def enrolled(service: AuthService, clock: FakeClock) -> tuple[str, list[str]]:
    """Two-factor on for alice: (its secret, its recovery codes), with the step that
    confirmed the secret used up."""
    secret, done = await enrol(service)
    clock.advance(STEP)
    return secret, done.recovery_codes


class OpensNothing(SecretBox):
    """A key that cannot open what it seals (a broken crypto backend, say)."""

    def open(self, user_id: int, sealed: str) -> str:
        raise SecretUnreadable("never")


def code_at(secret: str, moment: datetime, steps: int = 0) -> str:
    """What an authenticator app shows at ``moment`` (``steps`` steps of 30 s later)."""
    return pyotp.TOTP(secret).at(moment + timedelta(seconds=30 * steps))


async def sign_in(service: AuthService, username: str = "alice") -> tuple[str, int]:
    """A signed-in cookie and its session id (password only: before 2FA is on)."""
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), username, PASSWORD, CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    return token, result.signed_in.session.id


async def enrol(service: AuthService, username: str = "alice") -> tuple[str, Enrolled]:
    """Turn 2FA on for ``username`` from a fresh session; returns (secret, enrolled)."""
    token, session_id = await sign_in(service, username)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    code = code_at(started.secret, service.now())
    done = await service.confirm_enrolment(session_id, code, hash_token(token), CLIENT)
    return started.secret, done


async def password_step(
    service: AuthService, username: str = "alice", *, cookie: str | None = None
) -> tuple[str, str]:
    """A correct password for a 2FA user: (the browser's cookie hash, the challenge)."""
    cookie_hash = hash_token(cookie or service.new_token())
    try:
        await service.login(cookie_hash, username, PASSWORD, CLIENT)
    except SecondFactorRequired as required:
        assert required.challenge is not None
        return cookie_hash, required.challenge
    raise AssertionError("signed in without a second factor")


async def sign_in_with_code(
    service: AuthService, clock: FakeClock, secret: str, username: str = "alice"
) -> tuple[str, int]:
    """A 2FA user's signed-in cookie and session id: password, then the code of the next
    step (the clock moves on one step first, so earlier sign-ins' steps stay spent)."""
    clock.advance(timedelta(seconds=30))
    anonymous = service.new_token()
    cookie_hash, challenge = await password_step(service, username, cookie=anonymous)
    result = await service.verify_second_factor(
        challenge, cookie_hash, code_at(secret, clock.now()), CLIENT
    )
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    return token, result.signed_in.session.id
