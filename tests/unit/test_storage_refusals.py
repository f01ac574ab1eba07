"""Issue 13: a sign-in whose bookkeeping the database refuses answers like any failure,
and never hashes a password whose attempt was not counted first."""

from __future__ import annotations

import logging

import pytest

from authdemo.domain import ClientInfo, InvalidCredentials, StorageRefused
from authdemo.service import AuthService
from tests.support.fakes import BROWSER, FakeAudit, FakeHasher, FakeStore, FakeThrottle

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def refuse(*_: object, **__: object) -> None:
    raise StorageRefused()


async def test_a_reservation_the_database_refuses_is_the_generic_refusal_and_never_hashed(
    service: AuthService, hasher: FakeHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.create_user("alice", "correct horse")
    monkeypatch.setattr(FakeThrottle, "lock", refuse)
    with pytest.raises(InvalidCredentials) as refused:
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert str(refused.value) == "Incorrect username or password."
    assert hasher.verify_calls + hasher.dummy_calls == 0


async def test_a_failure_whose_audit_row_is_refused_is_still_the_generic_refusal(
    service: AuthService,
    store: FakeStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(FakeAudit, "add", refuse)
    with caplog.at_level(logging.WARNING), pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "nobody", "whatever pw", CLIENT)
    assert any("refused to record" in r.getMessage() for r in caplog.records)
    # The attempt was counted before it was hashed, whatever happened to its audit row.
    assert sum(s.failures for s in store.tables.throttle.values()) == 2  # account + address


async def test_a_sign_in_the_database_refuses_to_record_is_logged_as_such(
    service: AuthService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(FakeThrottle, "lock", refuse)
    caplog.set_level(logging.WARNING, logger="authdemo.auth")
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert [r.getMessage() for r in caplog.records] == [
        "login refused: the database refused to record it"
    ]
