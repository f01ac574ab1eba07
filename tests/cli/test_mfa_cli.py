"""Operator commands for two-factor sign-in: list-users shows it, mfa-reset removes it,
mfa-reencrypt moves every secret to a new key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import AuditKind
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.cli.test_cli import invoke
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.mfa import (
    CLIENT,
    MFA_KEY,
    MFA_KEY_TEXT,
    OTHER_KEY,
    PASSWORD,
    OpensNothing,
    code_at,
    enrol,
    password_step,
)

T = TypeVar("T")


def now() -> FakeClock:
    """The CLI runs on the real clock: sessions made for it must be live now."""
    return FakeClock(datetime.now(UTC))


def run(
    db_url: str,
    action: Callable[[AuthService], Awaitable[T]],
    keys: tuple[bytes, ...] = (MFA_KEY,),
    clock: FakeClock | None = None,
) -> T:
    async def main() -> T:
        settings = Settings(database_url=db_url, mfa_keys=keys)
        async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
            return await action(rt.service)

    return asyncio.run(main())


def alice_with_2fa(db_url: str, clock: FakeClock) -> str:
    async def setup(service: AuthService) -> str:
        await service.create_user("alice", PASSWORD)
        await service.create_user("bob", PASSWORD)
        secret, _ = await enrol(service)
        return secret

    return run(db_url, setup, clock=clock)


def test_list_users_shows_who_has_2fa(db_url: str) -> None:
    alice_with_2fa(db_url, now())
    result = invoke(db_url, "list-users")
    assert result.exit_code == 0, result.output
    header, _, *rows = result.output.splitlines()[:4]
    column = header.index("2FA")
    assert [r[column : column + 3].strip() for r in rows] == ["on", "off"]


def test_mfa_reset_removes_2fa_ends_every_session_and_is_audited(db_url: str) -> None:
    clock = now()
    alice_with_2fa(db_url, clock)
    result = invoke(db_url, "mfa-reset", "ALICE")
    assert result.exit_code == 0, result.output
    assert "Two-factor sign-in of 'alice' removed; 1 session ended." in result.output

    async def check(service: AuthService) -> None:
        assert await service.live_sessions("alice") == []
        result = await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
        assert result.signed_in.user.username == "alice"  # the password alone again
        events = await service.audit_events("alice", 5)
        assert any(e.kind is AuditKind.MFA_RESET for e in events)

    run(db_url, check, clock=clock)
    again = invoke(db_url, "mfa-reset", "alice")
    assert again.exit_code == 1 and "has no two-factor sign-in" in again.output
    assert invoke(db_url, "mfa-reset", "nobody").exit_code == 1


def test_mfa_reencrypt_moves_every_secret_to_the_new_key(db_url: str) -> None:
    clock = now()
    secret = alice_with_2fa(db_url, clock)
    result = invoke(
        db_url,
        "mfa-reencrypt",
        "--new-key-stdin",
        input=OTHER_KEY.hex() + "\n",
        AUTHDEMO_MFA_KEY=MFA_KEY_TEXT,
    )
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 secret under the new key." in result.output
    assert OTHER_KEY.hex() not in result.output
    signs_in_with_a_code(db_url, secret, clock, OTHER_KEY)


def test_mfa_reencrypt_refuses_a_weak_new_key_or_no_current_key(db_url: str) -> None:
    alice_with_2fa(db_url, now())
    weak = invoke(
        db_url, "mfa-reencrypt", "--new-key-stdin", input="hunter2\n", AUTHDEMO_MFA_KEY=MFA_KEY_TEXT
    )
    assert weak.exit_code == 1 and "The new key must be 32 random bytes" in weak.output
    missing = invoke(db_url, "mfa-reencrypt", "--new-key-stdin", input=OTHER_KEY.hex() + "\n")
    assert missing.exit_code == 1 and "AUTHDEMO_MFA_KEY is not set" in missing.output


THIRD_KEY = bytes(range(150, 182))


def stored_secrets(db_url: str) -> list[tuple[int, str]]:
    async def read() -> list[tuple[int, str]]:
        async with runtime(Settings(database_url=db_url)) as rt, rt.uow() as tx:
            return await tx.mfa.sealed_secrets()

    return asyncio.run(read())


def rekeyed_audit_rows(db_url: str) -> int:
    async def count(service: AuthService) -> int:
        events = await service.audit_events(None, 100)
        return sum(e.kind is AuditKind.MFA_REKEYED for e in events)

    return run(db_url, count)


def signs_in_with_a_code(db_url: str, secret: str, clock: FakeClock, key: bytes) -> None:
    clock.advance(timedelta(seconds=30))  # a step no earlier sign-in used

    async def sign_in(service: AuthService) -> None:
        cookie, challenge = await password_step(service)
        await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)

    run(db_url, sign_in, keys=(key,), clock=clock)


def test_mfa_reencrypt_asks_for_the_new_key_twice_without_echo(db_url: str) -> None:
    clock = now()
    secret = alice_with_2fa(db_url, clock)
    typed = OTHER_KEY.hex()
    result = invoke(
        db_url, "mfa-reencrypt", input=f"{typed}\n{typed}\n", AUTHDEMO_MFA_KEY=MFA_KEY_TEXT
    )
    assert result.exit_code == 0, result.output
    assert "New key:" in result.output and "Repeat the new key:" in result.output
    assert typed not in result.output
    assert "Re-encrypted 1 secret under the new key." in result.output
    signs_in_with_a_code(db_url, secret, clock, OTHER_KEY)


def test_a_mistyped_confirmation_writes_nothing_and_codes_still_work(db_url: str) -> None:
    clock = now()
    secret = alice_with_2fa(db_url, clock)
    before = stored_secrets(db_url)
    result = invoke(
        db_url,
        "mfa-reencrypt",
        input=f"{OTHER_KEY.hex()}\n{THIRD_KEY.hex()}\n",
        AUTHDEMO_MFA_KEY=MFA_KEY_TEXT,
    )
    assert result.exit_code == 1, result.output
    assert "do not match" in result.output
    assert "Re-encrypted" not in result.output
    assert OTHER_KEY.hex() not in result.output and THIRD_KEY.hex() not in result.output
    assert stored_secrets(db_url) == before
    assert rekeyed_audit_rows(db_url) == 0
    signs_in_with_a_code(db_url, secret, clock, MFA_KEY)  # the old key still opens it


def test_a_weak_new_key_is_refused_at_the_first_prompt(db_url: str) -> None:
    alice_with_2fa(db_url, now())
    result = invoke(db_url, "mfa-reencrypt", input="hunter2\n", AUTHDEMO_MFA_KEY=MFA_KEY_TEXT)
    assert result.exit_code == 1
    assert "The new key must be 32 random bytes" in result.output
    assert "Repeat the new key" not in result.output


def test_mfa_reencrypt_writes_nothing_with_a_key_that_cannot_open_its_own_seal(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = now()
    secret = alice_with_2fa(db_url, clock)
    before = stored_secrets(db_url)
    monkeypatch.setattr("authdemo.cli.SecretBox", OpensNothing)
    result = invoke(
        db_url,
        "mfa-reencrypt",
        "--new-key-stdin",
        input=OTHER_KEY.hex() + "\n",
        AUTHDEMO_MFA_KEY=MFA_KEY_TEXT,
    )
    assert result.exit_code == 1, result.output
    assert "The new key cannot open what it encrypts; nothing was changed." in result.output
    assert stored_secrets(db_url) == before
    assert rekeyed_audit_rows(db_url) == 0
    signs_in_with_a_code(db_url, secret, clock, MFA_KEY)
