"""Two-factor sign-in in the service, on fakes with an injected clock."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditEvent,
    AuditKind,
    ClientInfo,
    CodeThrottled,
    CookieRequired,
    InvalidCode,
    InvalidCredentials,
    MfaStateConflict,
    MfaUnavailable,
    NotSignedIn,
    SecondFactorRequired,
    SecondStepExpired,
    SessionPolicy,
    address_key,
)
from authdemo.events import EventKind
from authdemo.mfa import SecondFactorPolicy
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus
from tests.support.gates import BeforeFirstWrite
from tests.support.mfa import (
    CLIENT,
    OTHER_KEY,
    PASSWORD,
    STEP,
    OpensNothing,
    box,
    code_at,
    enrol,
    enrolled,
    mfa_box,  # noqa: F401 (a fixture: the service has a key)
    password_step,
    sign_in,
    sign_in_with_code,
)


@pytest.fixture
async def alice(service: AuthService) -> None:
    await service.create_user("alice", PASSWORD)


# --- enrolment ---------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_enrolment_re_asks_the_password(service: AuthService) -> None:
    _, session_id = await sign_in(service)
    with pytest.raises(InvalidCredentials):
        await service.start_enrolment(session_id, "wrong password", CLIENT)
    assert not (await service.mfa_status(session_id)).enabled


@pytest.mark.usefixtures("alice")
async def test_the_status_is_read_only_for_a_session_that_may_act(
    service: AuthService, clock: FakeClock
) -> None:
    _, ended = await sign_in(service)
    _, disabled = await sign_in(service)
    _, expired = await sign_in(service)
    await service.logout(ended)
    with pytest.raises(NotSignedIn):
        await service.mfa_status(ended)
    clock.advance(service.policy.idle_timeout + timedelta(seconds=1))
    with pytest.raises(NotSignedIn):
        await service.mfa_status(expired)
    _, live = await sign_in(service)
    assert not (await service.mfa_status(live)).enabled
    await service.set_active("alice", False)
    with pytest.raises(NotSignedIn):
        await service.mfa_status(live)
    with pytest.raises(NotSignedIn):
        await service.mfa_status(disabled)


@pytest.mark.usefixtures("alice")
async def test_a_pending_secret_does_not_turn_2fa_on(service: AuthService) -> None:
    _, session_id = await sign_in(service)
    await service.start_enrolment(session_id, PASSWORD, CLIENT)
    assert not (await service.mfa_status(session_id)).enabled
    result = await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert result.signed_in.user.username == "alice"  # still password only


@pytest.mark.usefixtures("alice")
async def test_confirming_needs_a_code_of_the_new_secret(
    service: AuthService, clock: FakeClock
) -> None:
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    with pytest.raises(InvalidCode):
        await service.confirm_enrolment(
            session_id, code_at(started.secret, clock.now(), 2), hash_token(token), CLIENT
        )
    assert not (await service.mfa_status(session_id)).enabled


@pytest.mark.usefixtures("alice")
async def test_confirming_ends_other_sessions_rekeys_this_one_and_shows_ten_codes(
    service: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    _, other = await sign_in(service)
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    done = await service.confirm_enrolment(
        session_id, code_at(started.secret, service.now()), hash_token(token), CLIENT
    )
    assert len(done.recovery_codes) == 10
    assert done.rekeyed.ended == 1
    assert store.tables.sessions[other].revoked_at is not None
    assert done.rekeyed.signed_in.session.token_hash != hash_token(token)
    assert any(e.kind is EventKind.REKEYED for e in bus.published)
    assert (await service.resolve(token)).signed_in is None  # the old cookie leads nowhere
    redeemed = await service.redeem_ticket(done.rekeyed.ticket, token)
    assert (await service.mfa_status(redeemed.session.id)).enabled


@pytest.mark.usefixtures("alice")
async def test_confirming_moves_the_epoch_so_another_view_of_this_session_cannot_act(
    service: AuthService, store: FakeStore
) -> None:
    token, session_id = await sign_in(service)
    old_epoch = store.tables.sessions[session_id].user_epoch
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT, epoch=old_epoch)
    done = await service.confirm_enrolment(
        session_id,
        code_at(started.secret, service.now()),
        hash_token(token),
        CLIENT,
        epoch=old_epoch,
    )
    new_epoch = done.rekeyed.signed_in.session.user_epoch
    assert new_epoch > old_epoch
    assert (await service.get_user("alice")).credential_epoch == new_epoch
    # Another open view of the same session (another tab, or a thief's copy of the
    # cookie), still on the old epoch: whatever it tries is refused.
    with pytest.raises(NotSignedIn):
        await service.change_session_data(session_id, {"note": "x"}, epoch=old_epoch)
    with pytest.raises(NotSignedIn):
        await service.revoke_other_sessions(session_id, CLIENT, hash_token(token), epoch=old_epoch)
    await service.logout(session_id, CLIENT, epoch=old_epoch)  # it can only leave
    # The view that enrolled goes on, on the new epoch.
    await service.change_session_data(session_id, {"note": "x"}, epoch=new_epoch)
    assert store.tables.sessions[session_id].revoked_at is None


@pytest.mark.usefixtures("alice")
async def test_the_stored_secret_is_sealed_and_recovery_codes_are_digests(
    service: AuthService, store: FakeStore
) -> None:
    secret, done = await enrol(service)
    (record,) = store.tables.mfa.values()
    assert secret not in record.sealed_secret
    assert box().open(record.user_id, record.sealed_secret) == secret
    stored = set(store.tables.recovery[record.user_id])
    for code in done.recovery_codes:
        assert code not in stored and code.replace("-", "") not in stored


@pytest.mark.usefixtures("alice")
async def test_an_abandoned_enrolment_expires_and_leaves_nothing(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    token, session_id = await sign_in(service)
    first = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    clock.advance(timedelta(minutes=10))
    with pytest.raises(MfaStateConflict):
        await service.confirm_enrolment(
            session_id, code_at(first.secret, clock.now()), hash_token(token), CLIENT
        )
    report = await service.purge_expired()
    assert report.mfa_pending == 1 and store.tables.mfa == {}
    second = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    assert second.secret != first.secret


@pytest.mark.usefixtures("alice")
async def test_starting_again_replaces_the_pending_secret(
    service: AuthService, clock: FakeClock
) -> None:
    token, session_id = await sign_in(service)
    first = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    await service.start_enrolment(session_id, PASSWORD, CLIENT)
    with pytest.raises(InvalidCode):
        await service.confirm_enrolment(
            session_id, code_at(first.secret, clock.now()), hash_token(token), CLIENT
        )


@pytest.mark.usefixtures("alice")
async def test_cancelling_drops_the_pending_secret_and_audits_it(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await sign_in(service)
    await service.start_enrolment(session_id, PASSWORD, CLIENT)
    assert await service.cancel_enrolment(session_id, CLIENT)
    assert store.tables.mfa == {}
    assert store.tables.audit[-1].kind is AuditKind.MFA_ENROL_ABANDONED


@pytest.mark.usefixtures("alice")
async def test_without_a_key_2fa_cannot_be_turned_on(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    service = AuthService(store, hasher, tokens, clock, SessionPolicy(), bus)
    _, session_id = await sign_in(service)
    assert not (await service.mfa_status(session_id)).available  # said up front
    with pytest.raises(MfaUnavailable) as refused:
        await service.start_enrolment(session_id, PASSWORD, CLIENT)
    assert refused.value.detail == "no AUTHDEMO_MFA_KEY"  # for the operator, and logged
    assert str(refused.value) == "Two-factor sign-in is not available on this server."


async def test_a_key_that_does_not_open_the_secret_says_so(
    service: AuthService,
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    bus: RecordingBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The key was changed without re-encrypting: the key is set, it just does not open.
    await service.create_user("alice", PASSWORD)
    secret, _ = await enrolled(service, clock)
    wrong_key = AuthService(
        store, hasher, tokens, clock, SessionPolicy(), bus, mfa_box=box(OTHER_KEY)
    )
    cookie, challenge = await password_step(wrong_key)
    with pytest.raises(MfaUnavailable) as refused:
        await wrong_key.verify_second_factor(
            challenge, cookie, code_at(secret, clock.now()), CLIENT
        )
    assert refused.value.detail.startswith("its AUTHDEMO_MFA_KEY does not open")
    assert "AUTHDEMO_" not in str(refused.value)  # the person sees no setting's name
    alice_id = next(iter(store.tables.mfa))
    assert [
        (r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR
    ] == [
        (
            "ERROR",
            f"the two-factor secret of user id {alice_id} does not open with AUTHDEMO_MFA_KEY",
        )
    ]


# --- the second step ---------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_a_correct_password_opens_nothing_until_the_code(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    sessions_before = dict(store.tables.sessions)
    tickets_before = dict(store.tables.tickets)
    cookie, challenge = await password_step(service)
    assert store.tables.sessions == sessions_before
    assert store.tables.tickets == tickets_before
    result = await service.verify_second_factor(
        challenge, cookie, code_at(secret, clock.now()), CLIENT
    )
    assert result.signed_in.user.username == "alice"
    assert result.recovery_codes_left is None


@pytest.mark.usefixtures("alice")
async def test_the_same_code_twice_is_refused_the_second_time(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    code = code_at(secret, clock.now())
    cookie, challenge = await password_step(service)
    await service.verify_second_factor(challenge, cookie, code, CLIENT)
    cookie, challenge = await password_step(service)
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie, code, CLIENT)


@pytest.mark.parametrize(("steps", "accepted"), [(-2, False), (-1, True), (1, True), (2, False)])
@pytest.mark.usefixtures("alice")
async def test_codes_of_the_neighbouring_steps_work_and_farther_ones_do_not(
    service: AuthService, clock: FakeClock, steps: int, accepted: bool
) -> None:
    secret, _ = await enrolled(service, clock)
    clock.advance(STEP * 3)  # well past the step enrolment used
    cookie, challenge = await password_step(service)
    code = code_at(secret, clock.now(), steps)
    if accepted:
        await service.verify_second_factor(challenge, cookie, code, CLIENT)
    else:
        with pytest.raises(InvalidCode):
            await service.verify_second_factor(challenge, cookie, code, CLIENT)


@pytest.mark.usefixtures("alice")
async def test_after_a_code_of_the_next_step_the_current_steps_code_is_refused(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now(), 1), CLIENT)
    cookie, challenge = await password_step(service)
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)


@pytest.mark.parametrize(("ahead", "accepted"), [(45, True), (75, False)])
@pytest.mark.usefixtures("alice")
async def test_a_phone_clock_45_s_ahead_works_75_s_does_not(
    service: AuthService, clock: FakeClock, ahead: int, accepted: bool
) -> None:
    secret, _ = await enrolled(service, clock)  # the clock is at the start of a step
    cookie, challenge = await password_step(service)
    code = code_at(secret, clock.now() + timedelta(seconds=ahead))
    if accepted:
        await service.verify_second_factor(challenge, cookie, code, CLIENT)
    else:
        with pytest.raises(InvalidCode):
            await service.verify_second_factor(challenge, cookie, code, CLIENT)


@pytest.mark.usefixtures("alice")
async def test_the_second_step_is_bound_to_the_cookie_and_expires(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(
            challenge, hash_token(service.new_token()), code_at(secret, clock.now()), CLIENT
        )
    clock.advance(timedelta(minutes=5))
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)


@pytest.mark.usefixtures("alice")
async def test_a_challenge_settles_one_sign_in_only(service: AuthService, clock: FakeClock) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(
            challenge, cookie, code_at(secret, clock.now(), 1), CLIENT
        )


@pytest.mark.usefixtures("alice")
async def test_a_password_change_during_the_second_step_voids_it(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    await service.set_password("alice", "another password 2")
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)


@pytest.mark.usefixtures("alice")
async def test_five_wrong_codes_lock_the_second_step_and_drop_the_pending_sign_in(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    right = code_at(secret, clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(4):
        with pytest.raises(InvalidCode) as refused:
            await service.verify_second_factor(challenge, cookie, wrong, CLIENT)
        assert not isinstance(refused.value, CodeThrottled)
    with pytest.raises(CodeThrottled):
        await service.verify_second_factor(challenge, cookie, wrong, CLIENT)
    assert store.tables.challenges == {}  # the pending sign-in is gone
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(challenge, cookie, right, CLIENT)
    cookie, challenge = await password_step(service)
    with pytest.raises(CodeThrottled):  # the right code, refused while the lock lasts
        await service.verify_second_factor(challenge, cookie, right, CLIENT)
    clock.advance(timedelta(minutes=15))
    cookie, challenge = await password_step(service)
    await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)


async def test_a_right_code_clears_the_accounts_wrong_code_count_not_the_networks(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
) -> None:
    # The network's lock guards every account behind it: one account's success must not
    # wipe the wrong codes sent for the others (nor its own, as the network counts them).
    mfa = SecondFactorPolicy(account_threshold=5, address_threshold=6)
    service = AuthService(
        store, hasher, tokens, clock, policy, bus, mfa_box=box(), second_factor=mfa
    )
    await service.create_user("alice", PASSWORD)
    await service.create_user("bob", PASSWORD)
    secret, _ = await enrolled(service, clock)
    bobs, _ = await enrol(service, "bob")
    alice = await service.get_user("alice")
    account, network = f"mfa:user:{alice.id}", f"mfa:{address_key(CLIENT.addr)}"
    right = code_at(secret, clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    cookie, challenge = await password_step(service)
    for _ in range(4):
        with pytest.raises(InvalidCode):
            await service.verify_second_factor(challenge, cookie, wrong, CLIENT)
    assert store.tables.throttle[account].failures == 4
    await service.verify_second_factor(challenge, cookie, right, CLIENT)
    assert account not in store.tables.throttle  # the account's count starts over...
    assert store.tables.throttle[network].failures == 4  # ...the network's does not
    # So alice has five wrong codes before her second step locks again (from elsewhere,
    # which this network's count does not see)...
    elsewhere = ClientInfo("198.51.100.9", "pytest")
    clock.advance(STEP)
    cookie, challenge = await password_step(service)
    for _ in range(4):
        with pytest.raises(InvalidCode) as refused:
            await service.verify_second_factor(challenge, cookie, wrong, elsewhere)
        assert not isinstance(refused.value, CodeThrottled)
    with pytest.raises(CodeThrottled):
        await service.verify_second_factor(challenge, cookie, wrong, elsewhere)
    # ...while two more wrong codes from the first network (4 + 2 = 6) lock it out.
    bob_right = code_at(bobs, clock.now())
    bob_wrong = f"{(int(bob_right) + 1) % 1_000_000:06d}"
    cookie, challenge = await password_step(service, "bob")
    with pytest.raises(InvalidCode) as refused:
        await service.verify_second_factor(challenge, cookie, bob_wrong, CLIENT)
    assert not isinstance(refused.value, CodeThrottled)
    with pytest.raises(CodeThrottled):
        await service.verify_second_factor(challenge, cookie, bob_wrong, CLIENT)


@pytest.mark.usefixtures("alice")
async def test_a_recovery_code_works_once_and_says_how_many_are_left(
    service: AuthService, clock: FakeClock
) -> None:
    _, codes = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    result = await service.verify_second_factor(challenge, cookie, codes[0].lower(), CLIENT)
    assert result.recovery_codes_left == 9
    cookie, challenge = await password_step(service)
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie, codes[0], CLIENT)
    result = await service.verify_second_factor(challenge, cookie, codes[1], CLIENT)
    assert result.recovery_codes_left == 8


@pytest.mark.usefixtures("alice")
async def test_a_wrong_recovery_code_of_the_right_length_fails(
    service: AuthService, clock: FakeClock
) -> None:
    _, codes = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    made_up = "ZZZZ-ZZZZ-ZZZZ" if "ZZZZ-ZZZZ-ZZZZ" not in codes else "YYYY-YYYY-YYYY"
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie, made_up, CLIENT)


@pytest.mark.usefixtures("alice")
async def test_another_users_recovery_code_does_not_work(
    service: AuthService, clock: FakeClock
) -> None:
    await service.create_user("bob", PASSWORD)
    _, alices = await enrolled(service, clock)
    await enrol(service, "bob")
    cookie, challenge = await password_step(service, "bob")
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie, alices[0], CLIENT)


# --- disable, reset, list ------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_disabling_needs_the_password_and_a_current_code(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    result = await service.verify_second_factor(
        challenge, cookie, code_at(secret, clock.now()), CLIENT
    )
    session_id = result.signed_in.session.id
    clock.advance(STEP)
    with pytest.raises(InvalidCredentials):
        await service.disable_mfa(
            session_id, "wrong password", code_at(secret, clock.now()), cookie, CLIENT
        )
    with pytest.raises(InvalidCode):
        await service.disable_mfa(session_id, PASSWORD, "000000", cookie, CLIENT)
    await service.disable_mfa(session_id, PASSWORD, code_at(secret, clock.now()), cookie, CLIENT)
    assert not (await service.mfa_status(session_id)).enabled
    result2 = await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert result2.signed_in.user.username == "alice"


@pytest.mark.usefixtures("alice")
async def test_disabling_ends_other_sessions_rekeys_this_one_and_is_audited(
    service: AuthService, store: FakeStore, bus: RecordingBus, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    other_token, other = await sign_in_with_code(service, clock, secret)
    token, session_id = await sign_in_with_code(service, clock, secret)
    others = tuple(s.id for s, _ in await service.live_sessions("alice") if s.id != session_id)
    assert other in others and len(others) == 2  # and the one that enrolled
    epoch_before = (await service.get_user("alice")).credential_epoch
    clock.advance(STEP)
    bus.published.clear()
    done = await service.disable_mfa(
        session_id, PASSWORD, code_at(secret, clock.now()), hash_token(token), CLIENT
    )
    assert done.ended == 2
    assert all(store.tables.sessions[i].revoked_at is not None for i in others)
    assert (await service.resolve(other_token)).signed_in is None
    assert (await service.get_user("alice")).credential_epoch > epoch_before
    assert done.signed_in.session.user_epoch > epoch_before
    # Announced live here, and queued in the outbox for the other workers and hosts.
    published = {(e.kind, tuple(sorted(e.session_ids)), e.reason) for e in bus.published}
    assert published == {
        (EventKind.REKEYED, (session_id,), "mfa_disabled"),
        (EventKind.REVOKED, tuple(sorted(others)), "mfa_disabled"),
    }
    queued = {(e.kind, tuple(sorted(e.session_ids))) for _, e, _ in store.tables.broadcasts}
    assert {
        (EventKind.REKEYED, (session_id,)),
        (EventKind.REVOKED, tuple(sorted(others))),
    } <= queued
    # This session goes on under a new cookie; the old one leads nowhere.
    assert (await service.resolve(token)).signed_in is None
    redeemed = await service.redeem_ticket(done.ticket, token)
    assert redeemed.session.id == session_id
    assert not (await service.mfa_status(session_id)).enabled
    disabled = [e for e in store.tables.audit if e.kind is AuditKind.MFA_DISABLED]
    assert [e.detail for e in disabled] == ["with a code; 2 other session(s)"]


@pytest.mark.usefixtures("alice")
async def test_disabling_ends_every_other_view_of_the_acting_session(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    old_epoch = (await service.get_user("alice")).credential_epoch
    clock.advance(STEP)
    await service.disable_mfa(
        session_id, PASSWORD, code_at(secret, clock.now()), hash_token(token), CLIENT
    )
    # A view that still holds the session at its old epoch (a thief's copy of the cookie,
    # another tab) can no longer act on it.
    with pytest.raises(NotSignedIn):
        await service.revoke_other_sessions(session_id, CLIENT, hash_token(token), epoch=old_epoch)


@pytest.mark.usefixtures("alice")
async def test_disabling_voids_a_second_step_in_flight(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    cookie, challenge = await password_step(service)
    clock.advance(STEP)
    await service.disable_mfa(
        session_id, PASSWORD, code_at(secret, clock.now()), hash_token(token), CLIENT
    )
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(
            challenge, cookie, code_at(secret, clock.now(), 1), CLIENT
        )


@pytest.mark.usefixtures("alice")
async def test_disabling_needs_the_cookie_the_browser_holds(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    _, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(STEP)
    with pytest.raises(CookieRequired):
        await service.disable_mfa(session_id, PASSWORD, code_at(secret, clock.now()), None, CLIENT)
    assert (await service.mfa_status(session_id)).enabled


@pytest.mark.usefixtures("alice")
async def test_the_code_that_just_signed_in_cannot_turn_2fa_off(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    used = code_at(secret, clock.now())  # the code that signed this session in
    with pytest.raises(InvalidCode):
        await service.disable_mfa(session_id, PASSWORD, used, hash_token(token), CLIENT)
    assert (await service.mfa_status(session_id)).enabled
    assert store.tables.audit[-1].kind is AuditKind.MFA_CODE_FAILED
    assert store.tables.audit[-1].detail == "replayed code"
    # Nor does a code of an earlier step; a code of a later one does.
    with pytest.raises(InvalidCode):
        await service.disable_mfa(
            session_id, PASSWORD, code_at(secret, clock.now(), -1), hash_token(token), CLIENT
        )
    await service.disable_mfa(
        session_id, PASSWORD, code_at(secret, clock.now(), 1), hash_token(token), CLIENT
    )
    assert not (await service.mfa_status(session_id)).enabled


@pytest.mark.usefixtures("alice")
async def test_an_operator_reset_removes_2fa_and_ends_every_session(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    await enrolled(service, clock)
    assert [s.mfa for s in await service.list_users()] == [True]
    ended = await service.reset_mfa("alice")
    assert ended == 1
    assert all(s.revoked_at is not None for s in store.tables.sessions.values() if s.user_id)
    assert store.tables.audit[-1].kind is AuditKind.MFA_RESET
    assert [s.mfa for s in await service.list_users()] == [False]
    await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    with pytest.raises(MfaStateConflict):
        await service.reset_mfa("alice")


@pytest.mark.usefixtures("alice")
async def test_a_reset_voids_a_second_step_in_flight(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie, challenge = await password_step(service)
    await service.reset_mfa("alice")
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(challenge, cookie, code_at(secret, clock.now()), CLIENT)


@pytest.mark.usefixtures("alice")
async def test_a_signed_out_session_cannot_manage_2fa(service: AuthService) -> None:
    _, session_id = await sign_in(service)
    await service.logout(session_id, CLIENT)
    with pytest.raises(NotSignedIn):
        await service.start_enrolment(session_id, PASSWORD, CLIENT)


@pytest.mark.usefixtures("alice")
async def test_a_second_factor_required_never_reads_as_signed_in(
    service: AuthService, clock: FakeClock
) -> None:
    await enrolled(service, clock)
    with pytest.raises(SecondFactorRequired) as required:
        await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert "code" in str(required.value)
    assert required.value.challenge is not None


# --- re-encryption under a new key -------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_re_encryption_writes_nothing_unless_the_new_key_opens_its_own_seal(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    await enrolled(service, clock)
    before = copy.deepcopy(store.tables)
    with pytest.raises(MfaStateConflict, match="cannot open what it encrypts"):
        await service.reseal_mfa_secrets(OpensNothing((OTHER_KEY,)))
    assert store.tables == before  # not a secret, not an audit row


@pytest.mark.usefixtures("alice")
async def test_re_encryption_never_overwrites_a_secret_that_changed_since_it_was_read(
    service: AuthService,
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    bus: RecordingBus,
) -> None:
    await enrolled(service, clock)
    again: list[str] = []

    async def set_up_again() -> None:  # after the read, before the write: a new secret
        await service.reset_mfa("alice")
        again.append((await enrol(service))[0])

    resealer = AuthService(
        BeforeFirstWrite(store, set_up_again),
        hasher,
        tokens,
        clock,
        SessionPolicy(),
        bus,
        mfa_box=box(),
    )
    report = await resealer.reseal_mfa_secrets(box(OTHER_KEY))
    assert report == (0, 0, 1)  # nothing re-sealed: that secret changed meanwhile
    (record,) = store.tables.mfa.values()
    assert box().open(record.user_id, record.sealed_secret) == again[0]  # the new one
    assert store.tables.audit[-1].detail.endswith("1 changed meanwhile")
    assert await resealer.reseal_mfa_secrets(box(OTHER_KEY)) == (1, 0, 0)  # run again
    (record,) = store.tables.mfa.values()
    assert box(OTHER_KEY).open(record.user_id, record.sealed_secret) == again[0]


# --- nothing secret is ever written down ---------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_no_code_secret_or_recovery_code_reaches_the_logs_or_the_audit_trail(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, codes = await enrolled(service, clock)
    used: list[str] = [code_at(secret, clock.now() - STEP)]
    cookie, challenge = await password_step(service)
    used.append(code_at(secret, clock.now()))
    await service.verify_second_factor(challenge, cookie, used[-1], CLIENT)
    cookie, challenge = await password_step(service)
    with pytest.raises(InvalidCode):
        await service.verify_second_factor(challenge, cookie, used[-1], CLIENT)  # replayed
    await service.verify_second_factor(challenge, cookie, codes[0], CLIENT)
    written = caplog.text + "\n".join(repr(e) for e in store.tables.audit)
    kinds = {e.kind for e in store.tables.audit}
    assert {AuditKind.MFA_CODE_OK, AuditKind.MFA_CODE_FAILED, AuditKind.MFA_RECOVERY_USED} <= kinds
    for value in [secret, *codes, *(c.replace("-", "") for c in codes), *used]:
        assert value not in written


@pytest.mark.usefixtures("alice")
async def test_a_setup_replaced_or_dropped_is_audited_as_abandoned_and_only_its_own(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await sign_in(service)
    first = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    second = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    abandoned = [e for e in store.tables.audit if e.kind is AuditKind.MFA_ENROL_ABANDONED]
    assert [e.detail for e in abandoned] == ["replaced by a new setup"]
    # Another tab dropping *its* (older) setup leaves the newer one alone.
    assert not await service.cancel_enrolment(session_id, CLIENT, started=first)
    assert store.tables.mfa
    assert await service.cancel_enrolment(session_id, CLIENT, started=second)
    assert store.tables.mfa == {}


async def test_wrong_codes_from_one_network_lock_it_out_for_every_account(
    service: AuthService, clock: FakeClock
) -> None:
    # 20 wrong codes from one address, 4 per account (never enough to lock an account).
    secrets_of: dict[str, str] = {}
    for name in ("u1", "u2", "u3", "u4", "u5", "u6"):
        await service.create_user(name, PASSWORD)
        secrets_of[name], _ = await enrol(service, name)
    clock.advance(STEP)
    for name in ("u1", "u2", "u3", "u4", "u5"):
        cookie, challenge = await password_step(service, name)
        right = code_at(secrets_of[name], clock.now())
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        for _ in range(4):
            with pytest.raises(InvalidCode):
                await service.verify_second_factor(challenge, cookie, wrong, CLIENT)
    cookie, challenge = await password_step(service, "u6")
    with pytest.raises(CodeThrottled):
        await service.verify_second_factor(
            challenge, cookie, code_at(secrets_of["u6"], clock.now()), CLIENT
        )
    elsewhere = ClientInfo("198.51.100.9", "pytest")
    cookie, challenge = await password_step(service, "u6")
    await service.verify_second_factor(
        challenge, cookie, code_at(secrets_of["u6"], clock.now()), elsewhere
    )


# --- what the audit trail says about a second step ---------------------------------------


def _who(event: AuditEvent) -> tuple[str, int | None, str, str]:
    return event.username, event.user_id, event.client_addr, event.user_agent


@pytest.mark.usefixtures("alice")
async def test_a_second_step_by_code_is_audited_with_who_and_from_where(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    secret, _ = await enrolled(service, clock)
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    alice_id = store.tables.audit[-1].user_id
    await sign_in_with_code(service, clock, secret)
    ok = [e for e in store.tables.audit if e.kind is AuditKind.MFA_CODE_OK]
    assert ok and _who(ok[-1]) == ("alice", alice_id, CLIENT.addr, CLIENT.user_agent)
    logins = [m for m in caplog.messages if m.startswith("login ok (second factor")]
    assert len(logins) == 1
    assert re.fullmatch(
        r"login ok \(second factor: code\) user=alice session=[0-9a-f]{8}", logins[0]
    )
    assert not [e for e in store.tables.audit if e.kind is AuditKind.MFA_RECOVERY_USED]


@pytest.mark.usefixtures("alice")
async def test_a_second_step_by_recovery_code_is_audited_with_how_many_are_left(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    _, codes = await enrolled(service, clock)
    alice_id = store.tables.audit[-1].user_id
    ok_before = len([e for e in store.tables.audit if e.kind is AuditKind.MFA_CODE_OK])
    cookie_hash, challenge = await password_step(service)
    with pytest.raises(InvalidCode):  # well-formed, not one of hers
        await service.verify_second_factor(challenge, cookie_hash, "0000-0000-0000", CLIENT)
    assert store.tables.audit[-1].detail == "wrong recovery code"
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    await service.verify_second_factor(challenge, cookie_hash, codes[0], CLIENT)
    assert any(
        m.startswith("login ok (second factor: recovery code) user=alice ") for m in caplog.messages
    )
    used = [e for e in store.tables.audit if e.kind is AuditKind.MFA_RECOVERY_USED]
    assert [(_who(e), e.detail) for e in used] == [
        (("alice", alice_id, CLIENT.addr, CLIENT.user_agent), f"{len(codes) - 1} left")
    ]
    assert len([e for e in store.tables.audit if e.kind is AuditKind.MFA_CODE_OK]) == ok_before


@pytest.mark.usefixtures("alice")
async def test_refused_codes_are_audited_and_logged_with_who_and_the_lock(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    await enrolled(service, clock)
    alice_id = store.tables.audit[-1].user_id
    threshold = SecondFactorPolicy().account_threshold
    lock = int(SecondFactorPolicy().lock.total_seconds())
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    for _ in range(threshold):
        cookie_hash, challenge = await password_step(service)
        with contextlib.suppress(InvalidCode, CodeThrottled):
            await service.verify_second_factor(challenge, cookie_hash, "000000", CLIENT)
    failed = [e for e in store.tables.audit if e.kind is AuditKind.MFA_CODE_FAILED]
    assert len(failed) == threshold
    assert {_who(e) for e in failed} == {("alice", alice_id, CLIENT.addr, CLIENT.user_agent)}
    assert failed[-1].detail == f"wrong code; locked for {lock} s"
    assert failed[0].detail == "wrong code"
    cookie_hash, challenge = await password_step(service)  # while locked: not even checked
    with pytest.raises(CodeThrottled):
        await service.verify_second_factor(challenge, cookie_hash, "000000", CLIENT)
    assert store.tables.audit[-1].detail.startswith("locked; locked for ")
    refused = [m for m in caplog.messages if m.startswith("code refused (")]
    assert len(refused) == threshold + 1
    assert refused[threshold - 1] == (
        f"code refused (wrong code; locked for {lock} s) user=alice client={CLIENT.addr}"
    )


@pytest.mark.usefixtures("alice")
async def test_an_expired_second_step_is_dropped_not_left_behind(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie_hash, challenge = await password_step(service)
    clock.advance(SecondFactorPolicy().challenge_ttl)
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(
            challenge, cookie_hash, code_at(secret, clock.now()), CLIENT
        )
    assert store.tables.challenges == {}


@pytest.mark.usefixtures("alice")
async def test_an_abandoned_second_step_cannot_be_completed(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, _ = await enrolled(service, clock)
    cookie_hash, challenge = await password_step(service)
    await service.abandon_second_factor(challenge)
    assert store.tables.challenges == {}
    with pytest.raises(SecondStepExpired):
        await service.verify_second_factor(
            challenge, cookie_hash, code_at(secret, clock.now()), CLIENT
        )


async def test_the_code_lock_follows_the_second_factor_policy(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    bus: RecordingBus,
) -> None:
    policy = SecondFactorPolicy(account_threshold=2, lock=timedelta(minutes=7))
    service = AuthService(
        store, hasher, tokens, clock, SessionPolicy(), bus, mfa_box=box(), second_factor=policy
    )
    await service.create_user("alice", PASSWORD)
    await enrolled(service, clock)
    refused = []
    for _ in range(2):
        cookie_hash, challenge = await password_step(service)
        with pytest.raises((InvalidCode, CodeThrottled)) as error:
            await service.verify_second_factor(challenge, cookie_hash, "000000", CLIENT)
        refused.append(type(error.value))
    assert refused == [InvalidCode, CodeThrottled]  # the second wrong code locks
    assert store.tables.audit[-1].detail == "wrong code; locked for 420 s"


@pytest.mark.usefixtures("alice")
async def test_every_two_factor_setting_change_is_audited_with_who_where_and_why(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    token, session_id = await sign_in(service)
    await service.start_enrolment(session_id, PASSWORD, CLIENT)
    await service.cancel_enrolment(session_id, CLIENT)
    await service.start_enrolment(session_id, PASSWORD, CLIENT)
    await service.start_enrolment(session_id, PASSWORD, CLIENT)  # replaces the waiting one
    clock.advance(SecondFactorPolicy().enrol_ttl)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)  # the last expired
    code = code_at(started.secret, clock.now())
    await service.confirm_enrolment(session_id, code, hash_token(token), CLIENT)
    with pytest.raises(MfaStateConflict, match=r"^Two-factor sign-in is already on\.$"):
        await service.start_enrolment(session_id, PASSWORD, CLIENT)
    clock.advance(STEP)
    code = code_at(started.secret, clock.now())
    await service.disable_mfa(session_id, PASSWORD, code, hash_token(token), CLIENT)
    where = (CLIENT.addr, CLIENT.user_agent)
    mfa = [
        (e.kind, e.username, (e.client_addr, e.user_agent), e.detail)
        for e in store.tables.audit
        if e.kind.name.startswith("MFA_")
    ]
    assert mfa == [
        (AuditKind.MFA_ENROL_STARTED, "alice", where, ""),
        (AuditKind.MFA_ENROL_ABANDONED, "alice", where, ""),
        (AuditKind.MFA_ENROL_STARTED, "alice", where, ""),
        (AuditKind.MFA_ENROL_ABANDONED, "alice", where, "replaced by a new setup"),
        (AuditKind.MFA_ENROL_STARTED, "alice", where, ""),
        (AuditKind.MFA_ENROL_ABANDONED, "alice", where, "expired"),
        (AuditKind.MFA_ENROL_STARTED, "alice", where, ""),
        (AuditKind.MFA_ENROL_CONFIRMED, "alice", where, "0 other session(s)"),
        (AuditKind.MFA_DISABLED, "alice", where, "with a code; 0 other session(s)"),
    ]
    assert caplog.messages.count("two-factor setup started user=alice") == 4
