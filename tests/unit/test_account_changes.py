"""Changes that end a user's access (operator and self-service), on fakes: who is told
why, what the audit trail and the logs keep, and the order their locks are taken in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditKind,
    AuthSession,
    ClientInfo,
    InvalidCredentials,
    NotSignedIn,
    SessionPolicy,
    SignedIn,
    UnknownUser,
    User,
    UserCredentials,
)
from authdemo.events import EventKind, SessionEvent
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from authdemo.ui.connection.state import SIGNED_OUT_REASONS
from tests.support.fakes import (
    FakeClock,
    FakeHasher,
    FakeSessions,
    FakeStore,
    FakeUsers,
    RecordingBus,
)
from tests.support.mfa import (
    PASSWORD,
    enrol,
    mfa_box,  # noqa: F401 (a fixture: the service has a key)
    sign_in,
)

CLIENT = ClientInfo("203.0.113.7", "pytest")
NEW_PASSWORD = "brand new pw"


@pytest.fixture
async def alice(service: AuthService) -> int:
    return (await service.create_user("alice", PASSWORD)).id


def ended(bus: RecordingBus, kind: EventKind = EventKind.REVOKED) -> list[SessionEvent]:
    return [e for e in bus.published if e.kind is kind]


def outbox(store: FakeStore, kind: EventKind = EventKind.REVOKED) -> list[SessionEvent]:
    return [e for _, e, _ in store.tables.broadcasts if e.kind is kind]


# --- what a signed-out view is told -------------------------------------------------------

Change = Callable[[AuthService, int, str], Awaitable[object]]


async def _operator_password(service: AuthService, _session_id: int, _token: str) -> object:
    return await service.set_password("alice", NEW_PASSWORD)


async def _disable(service: AuthService, _session_id: int, _token: str) -> object:
    return await service.set_active("alice", False)


async def _end_all(service: AuthService, _session_id: int, _token: str) -> object:
    return await service.revoke_user_sessions("alice")


async def _own_password(service: AuthService, session_id: int, token: str) -> object:
    return await service.change_password(
        session_id, PASSWORD, NEW_PASSWORD, hash_token(token), CLIENT, origin="tab-1"
    )


async def _sign_out_others(service: AuthService, session_id: int, token: str) -> object:
    return await service.revoke_other_sessions(
        session_id, CLIENT, hash_token(token), origin="tab-1"
    )


OPERATOR_CHANGES = {
    "password_changed": _operator_password,
    "user_disabled": _disable,
    "revoked": _end_all,
}
SELF_SERVICE_CHANGES = {
    "password_changed": _own_password,
    "signed_out_elsewhere": _sign_out_others,
}


@pytest.mark.parametrize(("reason", "change"), OPERATOR_CHANGES.items())
async def test_views_an_operator_signs_out_are_told_why_and_their_lists_follow(
    service: AuthService,
    store: FakeStore,
    bus: RecordingBus,
    alice: int,
    reason: str,
    change: Change,
) -> None:
    """The reason picks the sentence the signed-out view shows; the user id makes the
    user's open session lists drop the ended sessions."""
    first_token, first = await sign_in(service)
    _, second = await sign_in(service)
    bus.published.clear()

    assert await change(service, first, first_token) == 2

    # This process's views hear at once; other processes read the same event from the table.
    (event,) = ended(bus)
    assert (event.session_ids, event.reason, event.user_id) == ((first, second), reason, alice)
    assert outbox(store)[-1] == event
    assert reason in SIGNED_OUT_REASONS


@pytest.mark.parametrize(("reason", "change"), SELF_SERVICE_CHANGES.items())
async def test_views_a_self_service_change_signs_out_are_told_why_and_their_lists_follow(
    service: AuthService,
    store: FakeStore,
    bus: RecordingBus,
    alice: int,
    reason: str,
    change: Change,
) -> None:
    """Other sessions end (REVOKED); other views of the acting session end too (REKEYED,
    every view but the acting one): both say why, and whose sessions they were."""
    token, acting = await sign_in(service)
    _, other = await sign_in(service)
    bus.published.clear()

    await change(service, acting, token)

    (revoked,) = ended(bus)
    assert (revoked.session_ids, revoked.reason, revoked.user_id) == ((other,), reason, alice)
    (rekeyed,) = ended(bus, EventKind.REKEYED)
    assert (rekeyed.session_ids, rekeyed.reason, rekeyed.user_id) == ((acting,), reason, alice)
    assert rekeyed.origin == "tab-1"  # the one view that goes on
    assert outbox(store)[-1] == revoked and outbox(store, EventKind.REKEYED) == [rekeyed]
    assert reason in SIGNED_OUT_REASONS


@pytest.mark.usefixtures("alice")
async def test_enabling_an_account_that_is_enabled_ends_none_of_its_sessions(
    service: AuthService, bus: RecordingBus
) -> None:
    token, _ = await sign_in(service)
    bus.published.clear()
    assert await service.set_active("alice", True) == 0
    assert (await service.resolve(token)).signed_in is not None
    assert ended(bus) == []


@pytest.mark.usefixtures("alice")
async def test_signing_out_other_sessions_when_there_are_none_says_none_ended(
    service: AuthService, store: FakeStore
) -> None:
    token, acting = await sign_in(service)
    result = await service.revoke_other_sessions(acting, CLIENT, hash_token(token))
    assert result.ended == 0
    assert store.tables.audit[-1].detail == "0 other session(s)"


# --- the audit trail and the logs ---------------------------------------------------------


async def test_operator_changes_are_audited_as_the_command_line_naming_the_user(
    service: AuthService, store: FakeStore
) -> None:
    alice = (await service.create_user("alice", PASSWORD)).id
    await sign_in(service)
    await sign_in(service)
    await service.set_password("alice", NEW_PASSWORD)
    await service.set_active("alice", False)
    await service.set_active("alice", True)
    await service.login(hash_token(service.new_token()), "alice", NEW_PASSWORD, CLIENT)
    await service.revoke_user_sessions("alice")

    operator_kinds = {
        AuditKind.USER_CREATED,
        AuditKind.PASSWORD_CHANGED,
        AuditKind.USER_DISABLED,
        AuditKind.USER_ENABLED,
        AuditKind.REVOKED,
    }
    rows = [
        (e.kind, e.username, e.user_id, e.client_addr, e.user_agent, e.detail)
        for e in store.tables.audit
        if e.kind in operator_kinds
    ]
    # An operator's change is no session's doing: the row names none.
    assert {e.session for e in store.tables.audit if e.kind in operator_kinds} == {""}
    cli = ("cli", "authdemo command line")
    assert rows == [
        (AuditKind.USER_CREATED, "alice", alice, *cli, ""),
        (AuditKind.PASSWORD_CHANGED, "alice", alice, *cli, "by operator"),
        (AuditKind.USER_DISABLED, "alice", alice, *cli, "by operator"),
        (AuditKind.USER_ENABLED, "alice", alice, *cli, "by operator"),
        (AuditKind.REVOKED, "alice", alice, *cli, "1 session(s) by operator"),
    ]


async def test_operator_changes_are_logged_with_what_happened_to_whom(
    service: AuthService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    await service.create_user("alice", PASSWORD)
    await service.set_password("alice", NEW_PASSWORD)
    await service.set_active("alice", False)
    await service.set_active("alice", True)
    assert [r.getMessage() for r in caplog.records if r.name == "authdemo.auth"] == [
        "user created user=alice",
        "password set user=alice",
        "user_disabled user=alice",
        "user_enabled user=alice",
    ]


async def test_self_service_changes_are_audited_with_the_acting_session_and_where_from(
    service: AuthService, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    alice = (await service.create_user("alice", PASSWORD)).id
    token, acting = await sign_in(service)
    await sign_in(service)
    await sign_in(service)
    short_id = store.tables.sessions[acting].short_id
    caplog.set_level(logging.INFO, logger="authdemo.auth")

    changed = await service.change_password(
        acting, PASSWORD, NEW_PASSWORD, hash_token(token), CLIENT
    )
    token = (await service.redeem_ticket(changed.ticket, token)).token
    password_row = store.tables.audit[-2]  # the redemption's ROTATED row follows it
    await sign_in_as(service, NEW_PASSWORD)
    new_short_id = store.tables.sessions[acting].short_id
    await service.revoke_other_sessions(acting, CLIENT, hash_token(token))
    revoked_row = store.tables.audit[-1]

    assert (password_row.kind, password_row.username, password_row.user_id) == (
        AuditKind.PASSWORD_CHANGED,
        "alice",
        alice,
    )
    assert (password_row.session, password_row.client_addr, password_row.user_agent) == (
        short_id,
        "203.0.113.7",
        "pytest",
    )
    assert password_row.detail == "2 other session(s)"
    assert (revoked_row.kind, revoked_row.username, revoked_row.user_id) == (
        AuditKind.REVOKED,
        "alice",
        alice,
    )
    assert (revoked_row.session, revoked_row.client_addr, revoked_row.detail) == (
        new_short_id,
        "203.0.113.7",
        "1 other session(s)",
    )
    assert "password changed user=alice" in [r.getMessage() for r in caplog.records]


async def sign_in_as(service: AuthService, password: str) -> tuple[str, int]:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", password, CLIENT)
    return (
        await service.redeem_ticket(result.ticket, anonymous)
    ).token, result.signed_in.session.id


async def test_a_failed_sign_in_to_a_real_account_is_audited_and_logged_under_its_name(
    service: AuthService, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Only names that are no user's are kept as a digest: a wrong password for a real
    account shows whose account it was (that is what an operator looks for)."""
    alice = (await service.create_user("Alice", PASSWORD)).id
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    with pytest.raises(InvalidCredentials):
        await service.login(hash_token(service.new_token()), "ALICE", "wrong pw!", CLIENT)
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.detail) == (
        AuditKind.LOGIN_FAILED,
        "Alice",
        alice,
        "wrong password",
    )
    assert "login failed (wrong password) user=Alice client=203.0.113.7" in [
        r.getMessage() for r in caplog.records
    ]


async def test_an_operation_on_an_unknown_user_names_the_user_asked_for(
    service: AuthService,
) -> None:
    for operation in (
        service.set_password("bob", NEW_PASSWORD),
        service.set_active("bob", False),
        service.revoke_user_sessions("bob"),
        service.live_sessions("bob"),
    ):
        with pytest.raises(UnknownUser) as unknown:
            await operation
        assert str(unknown.value) == "There is no user named 'bob'."


# --- the operator's lists -----------------------------------------------------------------


async def test_the_user_list_counts_each_users_live_sessions_and_shows_two_factor(
    service: AuthService, clock: FakeClock
) -> None:
    await service.create_user("alice", PASSWORD)
    await service.create_user("bob", PASSWORD)
    await service.create_user("carol", PASSWORD)
    await enrol(service, "alice")  # signs alice in once
    await sign_in(service, "bob")
    await sign_in(service, "bob")
    _, ended_one = await sign_in(service, "bob")
    await service.logout(ended_one)
    clock.advance(timedelta(minutes=5))
    await service.set_password("carol", NEW_PASSWORD)

    summary = {
        s.user.username: (s.live_sessions, s.mfa, s.user.password_changed_at)
        for s in await service.list_users()
    }
    created = clock.now() - timedelta(minutes=5)
    assert summary == {
        "alice": (1, True, created),
        "bob": (2, False, created),
        "carol": (0, False, clock.now()),
    }


async def test_a_users_own_password_change_is_dated_when_it_happened(
    service: AuthService, clock: FakeClock
) -> None:
    await service.create_user("alice", PASSWORD)
    token, acting = await sign_in(service)
    clock.advance(timedelta(minutes=10))
    await service.change_password(acting, PASSWORD, NEW_PASSWORD, hash_token(token), CLIENT)
    (summary,) = await service.list_users()
    assert summary.user.password_changed_at == clock.now()


async def test_live_sessions_lists_everyones_or_one_users(service: AuthService) -> None:
    await service.create_user("alice", PASSWORD)
    await service.create_user("bob", PASSWORD)
    _, alices = await sign_in(service, "alice")
    _, bobs = await sign_in(service, "bob")
    everyone = {(s.id, u.username) for s, u in await service.live_sessions(None)}
    assert everyone == {(alices, "alice"), (bobs, "bob")}
    assert [(s.id, u.username) for s, u in await service.live_sessions("bob")] == [(bobs, "bob")]


# --- races --------------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_a_view_re_keyed_away_while_it_changes_the_password_changes_nothing(
    service: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thief's view of the session starts a password change; right after its "signed
    in?" check, the owner's view signs out other sessions (the session moves to a new
    epoch). The thief's change must fail and the password stay as it was."""
    token, session_id = await sign_in(service)
    signed_in = await service.current(session_id)
    assert signed_in is not None
    view_epoch = signed_in.session.user_epoch
    check = service.current

    async def owner_moves_in_between(checked_id: int) -> SignedIn | None:
        found = await check(checked_id)
        monkeypatch.setattr(service, "current", check)
        await service.revoke_other_sessions(session_id, CLIENT, hash_token(token), origin="owner")
        return found

    monkeypatch.setattr(service, "current", owner_moves_in_between)
    with pytest.raises(NotSignedIn):
        await service.change_password(
            session_id,
            PASSWORD,
            NEW_PASSWORD,
            hash_token(token),
            CLIENT,
            origin="thief",
            epoch=view_epoch,
        )
    await sign_in_as(service, PASSWORD)  # unchanged


# --- lock order -----------------------------------------------------------------------------


@pytest.mark.parametrize("change", [_own_password, _sign_out_others])
async def test_a_self_service_change_locks_the_user_before_the_session(
    service: AuthService, monkeypatch: pytest.MonkeyPatch, change: Change
) -> None:
    """Ending access (operator) locks the user row, then revokes sessions; a change a
    session makes on its own behalf must take the same order, or the two can deadlock
    each other (on PostgreSQL; tests/integration/test_revocation_races.py)."""
    await service.create_user("alice", PASSWORD)
    token, session_id = await sign_in(service)
    locks: list[str] = []
    lock_user = FakeUsers.lock
    get_with_user = FakeSessions.get_with_user

    async def record_user_lock(self: FakeUsers, user_id: int) -> UserCredentials | None:
        locks.append("user")
        return await lock_user(self, user_id)

    async def record_session_lock(
        self: FakeSessions, session_id: int, *, lock: bool = False
    ) -> tuple[AuthSession, User | None] | None:
        if lock:
            locks.append("session")
        return await get_with_user(self, session_id, lock=lock)

    monkeypatch.setattr(FakeUsers, "lock", record_user_lock)
    monkeypatch.setattr(FakeSessions, "get_with_user", record_session_lock)
    await change(service, session_id, token)
    assert "session" in locks
    assert locks.index("user") < locks.index("session")


# --- confirming the password again ("recent sign-in") ---------------------------------------


async def test_confirming_the_password_again_answers_when_and_forgets_the_failures(
    service: AuthService, store: FakeStore, clock: FakeClock, alice: int
) -> None:
    _, session_id = await sign_in(service)
    with pytest.raises(InvalidCredentials):
        await service.confirm_password(session_id, "not it", CLIENT)
    clock.advance(timedelta(seconds=5))
    assert await service.confirm_password(session_id, PASSWORD, CLIENT) == clock.now()
    account = service.account_key("alice")
    assert account not in store.tables.throttle or store.tables.throttle[account].failures == 0


async def test_confirming_the_password_needs_a_session_that_may_act_on_its_epoch(
    service: AuthService, alice: int
) -> None:
    _, session_id = await sign_in(service)
    epoch = (await service.current(session_id)).session.user_epoch  # type: ignore[union-attr]
    with pytest.raises(NotSignedIn):
        await service.confirm_password(session_id, PASSWORD, CLIENT, epoch=epoch + 1)
    assert await service.confirm_password(session_id, PASSWORD, CLIENT, epoch=epoch)
    await service.logout(session_id)
    with pytest.raises(NotSignedIn):
        await service.confirm_password(session_id, PASSWORD, CLIENT)


async def test_a_password_changed_while_it_was_confirmed_confirms_nothing(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
) -> None:
    from tests.support.gates import Gate, GatedHasher

    gate = Gate()
    service = AuthService(store, GatedHasher(hasher, gate), tokens, clock, policy, bus)  # type: ignore[arg-type]
    await service.create_user("alice", PASSWORD)
    _, session_id = await sign_in(service)
    gate.arm()
    confirming = asyncio.create_task(service.confirm_password(session_id, PASSWORD, CLIENT))
    await gate.arrived.wait()
    await service.set_password("alice", NEW_PASSWORD)  # verify -> [here] -> settle
    gate.release()
    with pytest.raises(NotSignedIn):
        await confirming


async def test_the_user_list_shows_each_users_roles(service: AuthService, alice: int) -> None:
    await service.create_user("bob", PASSWORD)
    await service.grant_role("bob", "admin")
    roles = {s.user.username: s.roles for s in await service.list_users()}
    assert roles == {"alice": (), "bob": ("admin",)}


async def test_a_password_change_over_an_outdated_hash_succeeds_and_the_new_password_works(
    service: AuthService, store: FakeStore
) -> None:
    """The current password checks out against an outdated hash, which the change's
    write upgrades on its way (``_settle``) before it stores the new password's hash."""
    alice = (await service.create_user("alice", PASSWORD)).id
    token, acting = await sign_in(service)
    user, key, _ = store.tables.users[alice]
    store.tables.users[alice] = (user, key, f"old${PASSWORD}")
    await service.change_password(acting, PASSWORD, NEW_PASSWORD, hash_token(token), CLIENT)
    assert store.tables.users[alice][2] == f"fake${NEW_PASSWORD}"
    with pytest.raises(InvalidCredentials):
        await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
