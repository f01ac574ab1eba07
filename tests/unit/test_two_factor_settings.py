"""Two-factor settings (turning it on and off, new recovery codes, the operator's reset and
re-encryption), on fakes: stale views refused, who is told what, what the audit trail
and the logs keep, and the lock order."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditKind,
    AuthSession,
    InvalidCode,
    InvalidCredentials,
    MfaStateConflict,
    NotSignedIn,
    SessionPolicy,
    SignedIn,
    User,
    UserCredentials,
)
from authdemo.events import EventKind
from authdemo.mfa import SecondFactorPolicy, otpauth_uri
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService, MfaStatus
from authdemo.ui.connection.state import SIGNED_OUT_REASONS
from tests.support.fakes import (
    FakeClock,
    FakeHasher,
    FakeSessions,
    FakeStore,
    FakeUsers,
    RecordingBus,
)
from tests.support.gates import BeforeFirstWrite
from tests.support.mfa import (
    CLIENT,
    MFA_KEY,
    OTHER_KEY,
    PASSWORD,
    STEP,
    box,
    code_at,
    enrol,
    enrolled,
    mfa_box,  # noqa: F401 (a fixture: the service has a key)
    password_step,
    sign_in,
    sign_in_with_code,
)

CLI = ("cli", "authdemo command line")


@pytest.fixture
async def alice(service: AuthService) -> int:
    return (await service.create_user("alice", PASSWORD)).id


async def re_keyed_elsewhere(service: AuthService, token: str, session_id: int) -> int:
    """Another view of the session signs out other sessions: the session moves on to a new
    epoch (and cookie). Returns the epoch the first view still holds."""
    signed_in = await service.current(session_id)
    assert signed_in is not None
    await service.revoke_other_sessions(session_id, CLIENT, hash_token(token), origin="other")
    return signed_in.session.user_epoch


# --- a view that a re-key ended --------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_a_view_re_keyed_away_cannot_start_or_cancel_a_setup(
    service: AuthService, store: FakeStore
) -> None:
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    stale = await re_keyed_elsewhere(service, token, session_id)
    with pytest.raises(NotSignedIn):
        await service.cancel_enrolment(session_id, CLIENT, epoch=stale, started=started)
    with pytest.raises(NotSignedIn):
        await service.start_enrolment(session_id, PASSWORD, CLIENT, epoch=stale)
    (record,) = store.tables.mfa.values()  # the first setup, untouched
    assert box().open(record.user_id, record.sealed_secret) == started.secret


@pytest.mark.usefixtures("alice")
async def test_a_view_re_keyed_away_cannot_confirm_a_setup(
    service: AuthService, store: FakeStore
) -> None:
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    stale = await re_keyed_elsewhere(service, token, session_id)
    with pytest.raises(NotSignedIn):
        await service.confirm_enrolment(
            session_id,
            code_at(started.secret, service.now()),
            hash_token(token),
            CLIENT,
            epoch=stale,
        )
    assert not (await service.mfa_status(session_id)).enabled


@pytest.mark.usefixtures("alice")
async def test_a_view_re_keyed_away_cannot_turn_2fa_off_or_renew_the_codes(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    stale = await re_keyed_elsewhere(service, token, session_id)
    clock.advance(STEP)
    with pytest.raises(NotSignedIn):
        await service.regenerate_recovery_codes(
            session_id, PASSWORD, code_at(secret, clock.now()), CLIENT, epoch=stale
        )
    with pytest.raises(NotSignedIn):
        await service.disable_mfa(
            session_id,
            PASSWORD,
            code_at(secret, clock.now()),
            hash_token(token),
            CLIENT,
            epoch=stale,
        )
    assert (await service.mfa_status(session_id)).enabled


Setting = Callable[[AuthService, FakeClock, str, int, str], Awaitable[object]]


async def _start(
    service: AuthService, _clock: FakeClock, _s: str, session_id: int, _t: str
) -> object:
    return await service.start_enrolment(session_id, PASSWORD, CLIENT)


async def _disable(
    service: AuthService, clock: FakeClock, secret: str, session_id: int, token: str
) -> object:
    code = code_at(secret, clock.now())
    return await service.disable_mfa(session_id, PASSWORD, code, hash_token(token), CLIENT)


async def _renew(
    service: AuthService, clock: FakeClock, secret: str, session_id: int, _t: str
) -> object:
    code = code_at(secret, clock.now())
    return await service.regenerate_recovery_codes(session_id, PASSWORD, code, CLIENT)


async def signed_in_for(
    setting: Setting, service: AuthService, clock: FakeClock
) -> tuple[str, str, int]:
    """(secret, cookie, session id): two-factor on for the settings that need it."""
    if setting is _start:
        token, session_id = await sign_in(service)
        return "", token, session_id
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(STEP)
    return secret, token, session_id


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("setting", [_start, _disable, _renew])
async def test_a_view_re_keyed_away_while_its_password_is_checked_changes_nothing(
    service: AuthService,
    clock: FakeClock,
    store: FakeStore,
    monkeypatch: pytest.MonkeyPatch,
    setting: Setting,
) -> None:
    """Right after the view's "signed in?" check, another view of the session re-keys it:
    the password checks out, but the view's epoch is gone, so nothing may change."""
    secret, token, session_id = await signed_in_for(setting, service, clock)
    check = service.current

    async def re_keyed_in_between(checked_id: int) -> SignedIn | None:
        found = await check(checked_id)
        monkeypatch.setattr(service, "current", check)
        await service.revoke_other_sessions(session_id, CLIENT, hash_token(token), origin="x")
        return found

    monkeypatch.setattr(service, "current", re_keyed_in_between)
    mfa_before, recovery_before = dict(store.tables.mfa), dict(store.tables.recovery)
    with pytest.raises(NotSignedIn):
        await setting(service, clock, secret, session_id, token)
    assert store.tables.mfa == mfa_before and store.tables.recovery == recovery_before


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("setting", [_start, _disable, _renew])
async def test_the_password_a_setting_re_asks_counts_like_a_sign_in(
    service: AuthService, clock: FakeClock, store: FakeStore, setting: Setting
) -> None:
    """Right, it clears the account's failures (as a sign-in does); so the four wrong
    ones before it and four after do not block the account."""
    secret, token, session_id = await signed_in_for(setting, service, clock)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            await service.login(hash_token(service.new_token()), "alice", "wrong pw!", CLIENT)
    await setting(service, clock, secret, session_id, token)
    cleared = store.tables.throttle.get(service.account_key("alice"))
    assert cleared is None or (cleared.failures, cleared.blocked_until) == (0, None)


# --- refusals say what is wrong ---------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_turning_2fa_off_or_renewing_codes_with_only_a_setup_pending_is_refused(
    service: AuthService, store: FakeStore
) -> None:
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    code = code_at(started.secret, service.now())
    with pytest.raises(MfaStateConflict) as off:
        await service.disable_mfa(session_id, PASSWORD, code, hash_token(token), CLIENT)
    assert str(off.value) == "Two-factor sign-in is not on."
    with pytest.raises(MfaStateConflict) as renew:
        await service.regenerate_recovery_codes(session_id, PASSWORD, code, CLIENT)
    assert str(renew.value) == "Two-factor sign-in is not on."
    assert store.tables.mfa[session_owner(store, session_id)].confirmed_at is None


def session_owner(store: FakeStore, session_id: int) -> int:
    user_id = store.tables.sessions[session_id].user_id
    assert user_id is not None
    return user_id


@pytest.mark.usefixtures("alice")
async def test_starting_a_setup_while_2fa_is_on_says_so(
    service: AuthService, clock: FakeClock
) -> None:
    secret, _ = await enrolled(service, clock)
    _, session_id = await sign_in_with_code(service, clock, secret)
    with pytest.raises(MfaStateConflict) as on:
        await service.start_enrolment(session_id, PASSWORD, CLIENT)
    assert str(on.value) == "Two-factor sign-in is already on."


@pytest.mark.usefixtures("alice")
async def test_confirming_an_expired_setup_says_to_start_again(
    service: AuthService, clock: FakeClock
) -> None:
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    clock.advance(timedelta(minutes=10))
    with pytest.raises(MfaStateConflict) as expired:
        await service.confirm_enrolment(
            session_id, code_at(started.secret, clock.now()), hash_token(token), CLIENT
        )
    assert str(expired.value) == "The setup expired. Start again."


async def test_resetting_a_user_without_2fa_says_so_by_name(service: AuthService) -> None:
    await service.create_user("Alice", PASSWORD)
    with pytest.raises(MfaStateConflict) as none:
        await service.reset_mfa("alice")
    assert str(none.value) == "Alice has no two-factor sign-in."


@pytest.mark.usefixtures("alice")
async def test_re_encryption_under_a_key_that_cannot_open_its_seal_says_nothing_changed(
    service: AuthService, clock: FakeClock
) -> None:
    from tests.support.mfa import OpensNothing

    await enrolled(service, clock)
    with pytest.raises(MfaStateConflict) as refused:
        await service.reseal_mfa_secrets(OpensNothing((OTHER_KEY,)))
    assert str(refused.value) == "The new key cannot open what it encrypts; nothing was changed."


# --- the setup page -----------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_a_setup_shows_the_secret_for_this_account_and_issuer_until_it_expires(
    service: AuthService, clock: FakeClock
) -> None:
    _, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    assert started.uri == otpauth_uri(started.secret, "alice", "authdemo", service.second_factor)
    assert "issuer=authdemo" in started.uri and "alice" in started.uri
    assert started.expires_at == clock.now() + timedelta(minutes=10)


@pytest.mark.usefixtures("alice")
async def test_the_status_says_on_off_available_and_how_many_recovery_codes_are_left(
    service: AuthService, clock: FakeClock, store: FakeStore, tokens: TokenCodec, bus: RecordingBus
) -> None:
    _, session_id = await sign_in(service)
    assert await service.mfa_status(session_id) == MfaStatus(False, 0, True)
    keyless = AuthService(store, FakeHasher(), tokens, clock, SessionPolicy(), bus)
    assert await keyless.mfa_status(session_id) == MfaStatus(False, 0, False)
    secret, codes = await enrolled(service, clock)
    _, session_id = await sign_in_with_code(service, clock, secret)
    assert await service.mfa_status(session_id) == MfaStatus(True, 10, True)
    cookie, challenge = await password_step(service)
    await service.verify_second_factor(challenge, cookie, codes[0], CLIENT)
    assert await service.mfa_status(session_id) == MfaStatus(True, 9, True)


@pytest.mark.usefixtures("alice")
async def test_an_anonymous_session_has_no_two_factor_status(
    service: AuthService, store: FakeStore
) -> None:
    anonymous, _ = await service.open_anonymous_session(
        hash_token(service.new_token()), service.now(), CLIENT
    )
    with pytest.raises(NotSignedIn):
        await service.mfa_status(anonymous.id)
    with pytest.raises(NotSignedIn):
        await service.mfa_status(10_000)


@pytest.mark.usefixtures("alice")
async def test_cancelling_when_no_setup_is_pending_drops_nothing(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    _, session_id = await sign_in(service)
    assert not await service.cancel_enrolment(session_id, CLIENT)  # none at all
    secret, _ = await enrolled(service, clock)
    _, session_id = await sign_in_with_code(service, clock, secret)
    audit = list(store.tables.audit)
    assert not await service.cancel_enrolment(session_id, CLIENT)  # two-factor is on
    assert (await service.mfa_status(session_id)).enabled
    assert store.tables.audit == audit


@pytest.mark.usefixtures("alice")
async def test_a_setup_this_server_cannot_open_is_not_taken_for_the_one_a_tab_began(
    service: AuthService,
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    bus: RecordingBus,
) -> None:
    """A tab's "cancel" drops only the setup it began; one sealed under a key this server
    does not hold cannot be shown to be it, so it stays."""
    _, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    other_key = AuthService(
        store, hasher, tokens, clock, SessionPolicy(), bus, mfa_box=box(OTHER_KEY)
    )
    assert not await other_key.cancel_enrolment(session_id, CLIENT, started=started)
    assert store.tables.mfa


# --- turning it off ------------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_a_signed_in_user_who_lost_the_phone_turns_2fa_off_with_a_recovery_code(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, codes = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    result = await service.disable_mfa(session_id, PASSWORD, codes[3], hash_token(token), CLIENT)
    assert result.signed_in.session.id == session_id
    assert store.tables.mfa == {}
    assert store.tables.audit[-1].detail.startswith("with a recovery code; ")


@pytest.mark.usefixtures("alice")
async def test_a_recovery_code_of_a_former_setup_cannot_confirm_a_new_one(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    secret, codes = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(STEP)
    off = await service.disable_mfa(
        session_id, PASSWORD, code_at(secret, clock.now()), hash_token(token), CLIENT
    )
    token = (await service.redeem_ticket(off.ticket, token)).token
    await service.start_enrolment(session_id, PASSWORD, CLIENT)
    with pytest.raises(InvalidCode):
        await service.confirm_enrolment(session_id, codes[0], hash_token(token), CLIENT)
    assert store.tables.audit[-1].kind is AuditKind.MFA_CODE_FAILED
    assert store.tables.audit[-1].detail == "wrong code"


async def test_wrong_codes_on_the_settings_page_lock_codes_but_leave_a_waiting_sign_in_be(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    """Five wrong codes while turning two-factor off lock codes for the account (here for
    30 s); a sign-in that another browser has waiting for its code is not cancelled: once
    the lock is over it completes (it ends by itself after its own 5 minutes)."""
    policy = SecondFactorPolicy(lock=timedelta(seconds=30))
    service = AuthService(
        store, hasher, tokens, clock, SessionPolicy(), bus, mfa_box=box(), second_factor=policy
    )
    await service.create_user("alice", PASSWORD)
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    cookie, challenge = await password_step(service)
    for _ in range(5):
        with pytest.raises(InvalidCode):
            await service.disable_mfa(session_id, PASSWORD, "000000", hash_token(token), CLIENT)
    clock.advance(timedelta(minutes=1))
    code = code_at(secret, clock.now())
    result = await service.verify_second_factor(challenge, cookie, code, CLIENT)
    assert result.signed_in.user.username == "alice"


# --- what a change tells, keeps and logs ------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_views_signed_out_by_turning_2fa_on_or_by_a_reset_are_told_why(
    service: AuthService, clock: FakeClock, bus: RecordingBus
) -> None:
    _, other = await sign_in(service)
    bus.published.clear()
    secret, _ = await enrolled(service, clock)  # from a session of its own
    (on,) = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert other in on.session_ids and on.reason == "mfa_enabled"
    _, signed_in = await sign_in_with_code(service, clock, secret)
    bus.published.clear()
    await service.reset_mfa("alice")
    (reset,) = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert signed_in in reset.session_ids and reset.reason == "mfa_reset"
    assert {on.reason, reset.reason} <= set(SIGNED_OUT_REASONS)


async def test_a_reset_is_audited_as_the_command_line_with_how_many_sessions_ended(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    alice = (await service.create_user("alice", PASSWORD)).id
    secret, _ = await enrolled(service, clock)
    await sign_in_with_code(service, clock, secret)
    await sign_in_with_code(service, clock, secret)
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    assert await service.reset_mfa("alice") == 3  # the enrolling session too
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.client_addr, row.user_agent, row.detail) == (
        AuditKind.MFA_RESET,
        "alice",
        alice,
        *CLI,
        "by operator; 3 session(s) ended",
    )
    assert [r.getMessage() for r in caplog.records] == ["two-factor sign-in reset user=alice"]
    # Nobody signed in: nothing ended, and it says so.
    secret, _ = await enrolled(service, clock)
    for session in list(store.tables.sessions.values()):
        await service.logout(session.id)
    assert await service.reset_mfa("alice") == 0
    assert store.tables.audit[-1].detail == "by operator; 0 session(s) ended"


@pytest.mark.usefixtures("alice")
async def test_turning_2fa_on_and_off_is_logged_naming_the_user(
    service: AuthService, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    secret, _ = await enrolled(service, clock)
    token, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(STEP)
    await service.disable_mfa(
        session_id, PASSWORD, code_at(secret, clock.now()), hash_token(token), CLIENT
    )
    messages = [r.getMessage() for r in caplog.records]
    assert "two-factor sign-in on user=alice" in messages
    assert messages[-1] == "two-factor sign-in off user=alice"


@pytest.mark.usefixtures("alice")
async def test_renewing_recovery_codes_is_audited_and_logged_with_who_where_and_how(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    secret, _ = await enrolled(service, clock)
    _, session_id = await sign_in_with_code(service, clock, secret)
    clock.advance(STEP)
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    await service.regenerate_recovery_codes(
        session_id, PASSWORD, code_at(secret, clock.now()), CLIENT
    )
    row = store.tables.audit[-1]
    alice = session_owner(store, session_id)
    assert (row.kind, row.username, row.user_id, row.session) == (
        AuditKind.MFA_RECOVERY_RENEWED,
        "alice",
        alice,
        store.tables.sessions[session_id].short_id,
    )
    assert (row.client_addr, row.user_agent, row.detail) == (
        "203.0.113.7",
        "pytest",
        "10 new; with a code",
    )
    assert [r.getMessage() for r in caplog.records] == ["recovery codes renewed user=alice"]


# --- re-encryption ------------------------------------------------------------------------------


async def enrol_users(service: AuthService, clock: FakeClock, *names: str) -> None:
    for name in names:
        await service.create_user(name, PASSWORD)
        await enrol(service, name)
    clock.advance(STEP)


async def test_re_encryption_goes_through_every_secret_skipping_and_counting_what_it_cannot_open(
    service: AuthService,
    clock: FakeClock,
    store: FakeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await enrol_users(service, clock, "ann", "bob", "cy", "dee", "eve")
    ids = sorted(store.tables.mfa)
    for user_id in ids[:2]:  # the first two were sealed under a key long gone
        record = store.tables.mfa[user_id]
        store.tables.mfa[user_id] = type(record)(
            **{**record.__dict__, "sealed_secret": box(bytes(32)).seal(user_id, "A" * 32)}
        )
    caplog.set_level(logging.WARNING, logger="authdemo.auth")
    report = await service.reseal_mfa_secrets(box(OTHER_KEY, MFA_KEY))
    assert report == (3, 2, 0)
    for user_id in ids[2:]:
        assert box(OTHER_KEY).sealed_by_current_key(store.tables.mfa[user_id].sealed_secret)
    assert [r.getMessage() for r in caplog.records] == [
        f"two-factor secret of user id {user_id} does not open; skipped" for user_id in ids[:2]
    ]
    row = store.tables.audit[-1]
    assert (row.username, row.user_id, row.session) == ("", None, "")  # nobody's in particular
    assert (row.kind, row.client_addr, row.user_agent, row.detail) == (
        AuditKind.MFA_REKEYED,
        *CLI,
        "3 secret(s) re-encrypted, 2 unreadable",
    )


async def test_re_encryption_skips_secrets_already_under_the_new_key_and_goes_on(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    await enrol_users(service, clock, "ann", "bob", "cy")
    first = min(store.tables.mfa)
    new = box(OTHER_KEY, MFA_KEY)
    record = store.tables.mfa[first]
    opened = box().open(first, record.sealed_secret)
    store.tables.mfa[first] = type(record)(
        **{**record.__dict__, "sealed_secret": new.seal(first, opened)}
    )
    assert await service.reseal_mfa_secrets(new) == (2, 0, 0)
    assert store.tables.audit[-1].detail == "2 secret(s) re-encrypted, 0 unreadable"


async def test_re_encryption_counts_each_secret_that_changed_meanwhile_but_not_one_removed(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    bus: RecordingBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = AuthService(store, hasher, tokens, clock, SessionPolicy(), bus, mfa_box=box())
    await enrol_users(service, clock, "ann", "bob", "cy")

    async def meanwhile() -> None:  # after the read: two set it up again, one turns it off
        for name in ("ann", "bob", "cy"):
            await service.reset_mfa(name)
        for name in ("ann", "bob"):
            await enrol(service, name)

    resealer = AuthService(
        BeforeFirstWrite(store, meanwhile),
        hasher,
        tokens,
        clock,
        SessionPolicy(),
        bus,
        mfa_box=box(),
    )
    caplog.set_level(logging.WARNING, logger="authdemo.auth")
    assert await resealer.reseal_mfa_secrets(box(OTHER_KEY)) == (0, 0, 2)
    assert store.tables.audit[-1].detail == (
        "0 secret(s) re-encrypted, 0 unreadable, 2 changed meanwhile"
    )
    changed = sorted(store.tables.mfa)
    assert [r.getMessage() for r in caplog.records] == [
        f"two-factor secret of user id {user_id} changed meanwhile; skipped" for user_id in changed
    ]


# --- lock order ---------------------------------------------------------------------------------


async def test_every_two_factor_change_locks_the_user_before_the_session(
    service: AuthService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending access locks the user row, then the sessions; every two-factor change takes
    the same order, and locks the row of the user it changes (or two can deadlock, or a
    tab's change slip between another's read and write)."""
    alice = (await service.create_user("alice", PASSWORD)).id
    locks: list[tuple[str, int]] = []
    lock_user = FakeUsers.lock
    get_with_user = FakeSessions.get_with_user

    async def record_user_lock(self: FakeUsers, user_id: int) -> UserCredentials | None:
        locks.append(("user", user_id))
        return await lock_user(self, user_id)

    async def record_session_lock(
        self: FakeSessions, session_id: int, *, lock: bool = False
    ) -> tuple[AuthSession, User | None] | None:
        if lock:
            locks.append(("session", session_id))
        return await get_with_user(self, session_id, lock=lock)

    monkeypatch.setattr(FakeUsers, "lock", record_user_lock)
    monkeypatch.setattr(FakeSessions, "get_with_user", record_session_lock)

    def user_first(session_id: int) -> None:
        assert ("session", session_id) in locks
        assert locks.index(("user", alice)) < locks.index(("session", session_id)), locks
        locks.clear()

    token, session_id = await sign_in(service)
    locks.clear()
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    user_first(session_id)
    assert await service.cancel_enrolment(session_id, CLIENT, started=started)
    assert locks == [("user", alice)]
    locks.clear()
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    locks.clear()
    done = await service.confirm_enrolment(
        session_id, code_at(started.secret, clock.now()), hash_token(token), CLIENT
    )
    user_first(session_id)
    token = (await service.redeem_ticket(done.rekeyed.ticket, token)).token
    clock.advance(STEP)
    locks.clear()
    await service.regenerate_recovery_codes(
        session_id, PASSWORD, code_at(started.secret, clock.now()), CLIENT
    )
    user_first(session_id)
    clock.advance(STEP)
    await service.disable_mfa(
        session_id, PASSWORD, code_at(started.secret, clock.now()), hash_token(token), CLIENT
    )
    user_first(session_id)
    await enrol(service)
    locks.clear()
    await service.reset_mfa("alice")
    assert locks[0] == ("user", alice)
