"""Account actions a signed-in user takes on one thing by its id or with a second factor:
ending one chosen session, renewing the recovery codes (the service, on fakes)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditKind,
    InvalidCode,
    InvalidCredentials,
    MfaStateConflict,
    NotSignedIn,
    UnknownSession,
)
from authdemo.events import EventKind
from authdemo.service import AuthService
from tests.support.fakes import FakeClock, FakeStore, RecordingBus
from tests.support.mfa import (
    CLIENT,
    PASSWORD,
    code_at,
    enrol,
    mfa_box,  # noqa: F401 (a fixture: the service has a key)
    password_step,
    sign_in,
    sign_in_with_code,
)


@pytest.fixture
async def users(service: AuthService) -> None:
    await service.create_user("alice", PASSWORD)
    await service.create_user("mallory", PASSWORD)


def user_id_of(store: FakeStore, session_id: int) -> int:
    user_id = store.tables.sessions[session_id].user_id
    assert user_id is not None
    return user_id


# --- ending one chosen session ----------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_ending_one_of_my_sessions_revokes_it_broadcasts_and_audits_it(
    service: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    _, here = await sign_in(service)
    _, there = await sign_in(service)
    _, third = await sign_in(service)
    alice = user_id_of(store, here)
    bus.published.clear()

    ended = await service.end_own_session(here, there, CLIENT)

    assert ended.id == there
    assert store.tables.sessions[there].revoked_at is not None
    assert store.tables.sessions[here].revoked_at is None  # the others stay
    assert store.tables.sessions[third].revoked_at is None
    (event,) = bus.published
    assert event.kind is EventKind.REVOKED and event.session_ids == (there,)
    assert event.user_id == alice  # session lists follow
    audit = store.tables.audit[-1]
    assert audit.kind is AuditKind.REVOKED and audit.user_id == alice
    assert audit.session == store.tables.sessions[there].short_id
    assert f"from session {store.tables.sessions[here].short_id}" in audit.detail


@pytest.mark.usefixtures("users")
async def test_ending_another_users_session_is_refused_and_changes_nothing(
    service: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    _, mine = await sign_in(service, "mallory")
    _, theirs = await sign_in(service, "alice")
    audit_before = list(store.tables.audit)
    broadcasts_before = list(store.tables.broadcasts)
    bus.published.clear()

    with pytest.raises(UnknownSession):
        await service.end_own_session(mine, theirs, CLIENT)

    assert store.tables.sessions[theirs].revoked_at is None
    assert bus.published == []
    assert store.tables.audit == audit_before
    assert store.tables.broadcasts == broadcasts_before


@pytest.mark.usefixtures("users")
async def test_ending_a_session_twice_or_one_that_does_not_exist_does_nothing(
    service: AuthService, store: FakeStore
) -> None:
    _, here = await sign_in(service)
    _, there = await sign_in(service)
    await service.end_own_session(here, there, CLIENT)
    with pytest.raises(UnknownSession):
        await service.end_own_session(here, there, CLIENT)
    with pytest.raises(UnknownSession):
        await service.end_own_session(here, 10_000, CLIENT)


@pytest.mark.usefixtures("users")
async def test_a_session_that_may_not_act_cannot_end_another(
    service: AuthService, store: FakeStore
) -> None:
    _, here = await sign_in(service)
    _, there = await sign_in(service)
    await service.logout(here)
    with pytest.raises(NotSignedIn):
        await service.end_own_session(here, there, CLIENT)
    assert store.tables.sessions[there].revoked_at is None


# --- new recovery codes -------------------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_new_recovery_codes_replace_the_old_ones_and_are_audited(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    secret, done = await enrol(service)
    _, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(timedelta(seconds=30))

    fresh = await service.regenerate_recovery_codes(
        session_id, PASSWORD, code_at(secret, clock.now()), CLIENT
    )

    assert len(fresh) == len(done.recovery_codes) and not set(fresh) & set(done.recovery_codes)
    assert (await service.mfa_status(session_id)).recovery_codes_left == len(fresh)
    assert store.tables.audit[-1].kind is AuditKind.MFA_RECOVERY_RENEWED
    # An old code no longer signs in; a new one does.
    cookie_hash, challenge = await password_step(service)
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie_hash, done.recovery_codes[0], CLIENT)
    cookie_hash, challenge = await password_step(service)
    assert await service.verify_second_factor(challenge, cookie_hash, fresh[0], CLIENT)


@pytest.mark.usefixtures("users")
async def test_new_recovery_codes_need_the_password_and_a_code(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    secret, done = await enrol(service)
    _, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(timedelta(seconds=30))
    with pytest.raises(InvalidCredentials):
        await service.regenerate_recovery_codes(
            session_id, "wrong password", code_at(secret, clock.now()), CLIENT
        )
    with pytest.raises(InvalidCode):
        await service.regenerate_recovery_codes(session_id, PASSWORD, "000000", CLIENT)
    assert (await service.mfa_status(session_id)).recovery_codes_left == len(done.recovery_codes)


@pytest.mark.usefixtures("users")
async def test_new_recovery_codes_without_two_factor_on_are_refused(service: AuthService) -> None:
    _, session_id = await sign_in(service)
    with pytest.raises(MfaStateConflict):
        await service.regenerate_recovery_codes(session_id, PASSWORD, "123456", CLIENT)
