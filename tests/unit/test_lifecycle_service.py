"""Throttling, audit trail, self-service and operator actions, on fakes with a fake clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditKind,
    ClientInfo,
    InvalidCredentials,
    InvalidPassword,
    NotSignedIn,
    SessionPolicy,
    Throttled,
    ThrottlePolicy,
    ThrottleState,
    address_key,
)
from authdemo.events import EventKind
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from tests.support.fakes import BROWSER, FakeClock, FakeHasher, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")
OTHER = ClientInfo("198.51.100.9", "pytest")
WRONG = "n0t-the-Pa55word"


async def signed_in(service: AuthService, client: ClientInfo = CLIENT) -> tuple[str, int]:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", client)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    return token, result.signed_in.session.id


@pytest.fixture
async def alice(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")


async def fail(service: AuthService, times: int, client: ClientInfo = CLIENT) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, "alice", WRONG, client)


def kinds(store: FakeStore) -> list[AuditKind]:
    return [e.kind for e in store.tables.audit]


# --- throttling maths ---------------------------------------------------------------------


def test_back_off_starts_at_the_threshold_and_doubles_up_to_the_cap() -> None:
    policy = ThrottlePolicy()
    assert policy.block_for(4, 5) is None
    assert [policy.block_for(n, 5) for n in (5, 6, 7)] == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=4),
    ]
    assert policy.block_for(15, 5) == timedelta(minutes=15)
    assert policy.block_for(10_000, 5) == timedelta(minutes=15)


# --- throttling behaviour -----------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_five_failures_block_the_account_before_any_hashing(
    service: AuthService, hasher: FakeHasher
) -> None:
    await fail(service, 5)
    verifies = hasher.verify_calls + hasher.dummy_calls
    with pytest.raises(Throttled) as blocked:
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert hasher.verify_calls + hasher.dummy_calls == verifies
    assert blocked.value.retry_after == timedelta(seconds=1)
    assert str(blocked.value) == (
        "Incorrect username or password. Too many attempts: try again in 1 second."
    )


@pytest.mark.usefixtures("alice")
async def test_the_block_ends_by_itself_and_grows_with_each_new_failure(
    service: AuthService, clock: FakeClock
) -> None:
    await fail(service, 5)
    clock.advance(timedelta(seconds=1))
    await fail(service, 1)  # the 6th failure
    with pytest.raises(Throttled) as blocked:
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert blocked.value.retry_after == timedelta(seconds=2)
    clock.advance(timedelta(seconds=2))
    await service.login(BROWSER, "alice", "correct horse", CLIENT)


@pytest.mark.usefixtures("alice")
async def test_blocked_attempts_do_not_count_as_failures(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    await fail(service, 5)
    for _ in range(50):
        with pytest.raises(Throttled):
            await service.login(BROWSER, "alice", WRONG, CLIENT)
    assert store.tables.throttle[service.account_key("alice")].failures == 5


@pytest.mark.usefixtures("alice")
async def test_a_blocked_flood_costs_no_query_once_the_process_has_seen_the_block(
    service: AuthService, hasher: FakeHasher, store: FakeStore
) -> None:
    await fail(service, 5)  # the fifth reservation set the block, and this process saw it
    units, verifies = len(store.units), hasher.verify_calls + hasher.dummy_calls
    for password in [WRONG, "correct horse"] * 25:
        with pytest.raises(Throttled):
            await service.login(BROWSER, "alice", password, CLIENT)
    assert (len(store.units), hasher.verify_calls + hasher.dummy_calls) == (units, verifies)


@pytest.mark.usefixtures("alice")
async def test_a_block_set_elsewhere_is_refused_under_the_lock_then_from_memory(
    service: AuthService, hasher: FakeHasher, store: FakeStore, clock: FakeClock
) -> None:
    # Another worker's attempts blocked the address: only the database knows.
    until = clock.now() + timedelta(seconds=30)
    store.tables.throttle[address_key(CLIENT.addr)] = ThrottleState(20, until, clock.now())
    units = len(store.units)
    with pytest.raises(Throttled) as blocked:
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert blocked.value.retry_after == timedelta(seconds=30)
    assert len(store.units) == units + 1  # the reservation, refused and rolled back
    assert store.tables.throttle[address_key(CLIENT.addr)].failures == 20
    with pytest.raises(Throttled):
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert len(store.units) == units + 1
    await service.login(BROWSER, "alice", "correct horse", OTHER)  # another address may
    clock.advance(timedelta(seconds=30))
    await service.login(BROWSER, "alice", "correct horse", CLIENT)  # and it ends
    assert hasher.verify_calls == 2


@pytest.fixture
def throttled_at(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> Callable[[int], AuthService]:
    """A service whose address throttle blocks at the given number of failures."""

    def service(address_threshold: int) -> AuthService:
        throttle = ThrottlePolicy(address_threshold=address_threshold)
        return AuthService(store, hasher, tokens, clock, SessionPolicy(), bus, throttle=throttle)

    return service


async def test_a_process_remembers_a_bounded_number_of_blocks_the_oldest_going_first(
    throttled_at: Callable[[int], AuthService],
    store: FakeStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("authdemo.service.signin._BLOCKS_KEPT", 2)
    service = throttled_at(1)  # one failure blocks an address
    clients = [ClientInfo(f"192.0.2.{n}", "pytest") for n in (1, 2, 3)]
    for client in clients:
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, "mallory", WRONG, client)

    async def queries(client: ClientInfo) -> int:
        units = len(store.units)
        with pytest.raises(Throttled):
            await service.login(BROWSER, "mallory", WRONG, client)
        return len(store.units) - units

    assert await queries(clients[2]) == 0  # remembered
    assert await queries(clients[1]) == 0
    assert await queries(clients[0]) == 1  # forgotten: refused under the lock, remembered
    assert await queries(clients[0]) == 0


async def test_a_success_reserved_before_a_block_began_lets_the_next_one_through(
    throttled_at: Callable[[int], AuthService],
    store: FakeStore,
    hasher: FakeHasher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One address, threshold 3: alice's sign-in is reserved (1), two failures for
    another name follow while her password is hashed (3: the address is blocked, and
    this process saw it), then her success gives its attempt back (2: no block). The
    next sign-in from that address goes to the database, which lets it through."""
    service = throttled_at(3)
    await service.create_user("alice", "correct horse")
    hashing, go_on = asyncio.Event(), asyncio.Event()
    real_verify = hasher.verify

    async def slow_verify(password: str, password_hash: str) -> tuple[bool, str | None]:
        if password == "correct horse" and not go_on.is_set():
            hashing.set()
            await go_on.wait()
        return await real_verify(password, password_hash)

    monkeypatch.setattr(hasher, "verify", slow_verify)
    alices = asyncio.ensure_future(service.login(BROWSER, "alice", "correct horse", CLIENT))
    await hashing.wait()
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, "mallory", WRONG, CLIENT)
    with pytest.raises(Throttled):  # blocked now, and known here
        await service.login(BROWSER, "mallory", WRONG, CLIENT)
    go_on.set()
    await alices
    assert store.tables.throttle[address_key(CLIENT.addr)].blocked_until is None
    await service.login(BROWSER, "alice", "correct horse", CLIENT)


@pytest.mark.usefixtures("alice")
async def test_a_success_clears_the_account_count(service: AuthService, store: FakeStore) -> None:
    await fail(service, 4)
    await service.login(BROWSER, "alice", "correct horse", CLIENT)
    cleared = store.tables.throttle.get(service.account_key("alice"))
    assert cleared is None or (cleared.failures, cleared.blocked_until) == (0, None)
    await fail(service, 4)  # four more do not block: the count started again


@pytest.mark.usefixtures("alice")
async def test_the_longest_block_is_fifteen_minutes(service: AuthService, clock: FakeClock) -> None:
    for _ in range(30):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, "alice", WRONG, CLIENT)
        clock.advance(timedelta(minutes=15))
    await fail(service, 1)
    with pytest.raises(Throttled) as blocked:
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert blocked.value.retry_after == timedelta(minutes=15)
    clock.advance(timedelta(minutes=15))
    await service.login(BROWSER, "alice", "correct horse", CLIENT)


@pytest.mark.usefixtures("alice")
async def test_old_failures_are_forgotten(service: AuthService, clock: FakeClock) -> None:
    await fail(service, 4)
    clock.advance(timedelta(hours=25))
    await fail(service, 4)
    await service.login(BROWSER, "alice", "correct horse", CLIENT)


async def test_unknown_usernames_are_throttled_like_real_ones(service: AuthService) -> None:
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, "nobody", "whatever pw", CLIENT)
    with pytest.raises(Throttled):
        await service.login(BROWSER, "NOBODY", "whatever pw", CLIENT)


async def test_one_address_guessing_many_accounts_is_blocked(service: AuthService) -> None:
    for i in range(20):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, f"user{i}", "whatever pw", CLIENT)
    with pytest.raises(Throttled):
        await service.login(BROWSER, "someone-else", "whatever pw", CLIENT)
    # ...while another address is not affected.
    with pytest.raises(InvalidCredentials) as other:
        await service.login(BROWSER, "someone-else", "whatever pw", OTHER)
    assert not isinstance(other.value, Throttled)


async def test_ipv6_clients_are_throttled_by_their_64_not_each_address(
    service: AuthService,
) -> None:
    """A host picks any of the 2^64 addresses of its network: one per attempt must not
    give it a fresh count each time."""
    for i in range(20):
        rotated = ClientInfo(f"2001:db8:1:2::{i + 1:x}", "pytest")
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, f"user{i}", "whatever pw", rotated)
    with pytest.raises(Throttled):
        await service.login(BROWSER, "someone", "whatever pw", ClientInfo("2001:db8:1:2::ff"))
    # The next /64 is somebody else.
    with pytest.raises(InvalidCredentials) as other:
        await service.login(BROWSER, "someone", "whatever pw", ClientInfo("2001:db8:1:3::1"))
    assert not isinstance(other.value, Throttled)


async def test_ipv4_neighbours_are_throttled_apart(service: AuthService) -> None:
    for i in range(20):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, f"user{i}", "whatever pw", ClientInfo(f"198.51.100.{i}"))
    with pytest.raises(InvalidCredentials) as next_door:
        await service.login(BROWSER, "someone", "whatever pw", ClientInfo("198.51.100.99"))
    assert not isinstance(next_door.value, Throttled)


@pytest.mark.usefixtures("alice")
async def test_throttling_survives_a_restart(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    first = AuthService(store, hasher, tokens, clock, SessionPolicy(), bus)
    await fail(first, 5)
    restarted = AuthService(store, hasher, tokens, clock, first.policy, bus)
    with pytest.raises(Throttled):
        await restarted.login(BROWSER, "alice", "correct horse", CLIENT)
    assert address_key(CLIENT.addr) in store.tables.throttle


# --- audit trail ----------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_the_audit_trail_records_the_lifecycle_without_secrets(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    await fail(service, 5)
    with pytest.raises(Throttled) as blocked:
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    clock.advance(blocked.value.retry_after)  # the block ends
    token, session_id = await signed_in(service)
    await service.logout(session_id, CLIENT)
    await service.set_active("alice", False)
    await service.set_active("alice", True)
    await service.set_password("alice", "brand new pw")
    assert kinds(store) == [
        AuditKind.USER_CREATED,
        *[AuditKind.LOGIN_FAILED] * 4,
        AuditKind.LOGIN_FAILED,
        AuditKind.THROTTLED,
        AuditKind.LOGIN_OK,
        AuditKind.ROTATED,
        AuditKind.LOGOUT,
        AuditKind.USER_DISABLED,
        AuditKind.USER_ENABLED,
        AuditKind.PASSWORD_CHANGED,
    ]
    login_ok = store.tables.audit[7]
    assert (login_ok.username, login_ok.client_addr, login_ok.user_agent) == (
        "alice",
        "203.0.113.7",
        "pytest",
    )
    assert login_ok.session and len(login_ok.session) == 8
    everything = repr(store.tables.audit)
    for secret in ("correct horse", WRONG, "brand new pw", token, hash_token(token)):
        assert secret not in everything


async def test_failed_logins_for_unknown_names_are_audited_as_a_digest_never_as_typed(
    service: AuthService, store: FakeStore
) -> None:
    """People type passwords into the username box: what is kept of a name that is no
    user's is a short keyed digest of it, the same for every spelling of that name."""
    for typed in ("mallory", "MALLORY", "Tr0ub4dor&3"):
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, typed, "whatever pw", CLIENT)
    first, second, third = store.tables.audit
    assert (first.kind, first.user_id, first.detail) == (
        AuditKind.LOGIN_FAILED,
        None,
        "no such user",
    )
    assert re.fullmatch(r"unknown:[0-9a-f]{12}", first.username)
    assert second.username == first.username  # repeated guesses group together
    assert third.username != first.username and "Tr0ub4dor" not in third.username
    assert "mallory" not in first.username.lower()


async def test_the_digest_of_an_unknown_name_depends_on_the_deployment_key(
    hasher: FakeHasher, clock: FakeClock, bus: RecordingBus
) -> None:
    """Without the key nobody can test guesses against a digest (a plain hash of a
    dictionary word would be looked up at once)."""
    names = []
    for key in (b"k" * 32, b"j" * 32):
        service = AuthService(FakeStore(), hasher, TokenCodec(key), clock, SessionPolicy(), bus)
        with pytest.raises(InvalidCredentials):
            await service.login(BROWSER, "mallory", "whatever pw", CLIENT)
        names.append((await service.audit_events(None, 1))[0].username)
    assert names[0] != names[1]


# --- self-service -------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_change_password_needs_the_current_one(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await signed_in(service)
    with pytest.raises(InvalidCredentials):
        await service.change_password(session_id, "not it", "brand new pw", BROWSER, CLIENT)
    await service.login(BROWSER, "alice", "correct horse", CLIENT)  # unchanged


@pytest.mark.usefixtures("alice")
async def test_change_password_refuses_a_weak_new_one_before_hashing(
    service: AuthService, hasher: FakeHasher
) -> None:
    _, session_id = await signed_in(service)
    hashes = hasher.hash_calls
    with pytest.raises(InvalidPassword):
        await service.change_password(session_id, "correct horse", "short", BROWSER, CLIENT)
    assert hasher.hash_calls == hashes


@pytest.mark.usefixtures("alice")
async def test_change_password_ends_other_sessions_and_rotates_this_one(
    service: AuthService, bus: RecordingBus
) -> None:
    this_token, this_id = await signed_in(service)
    other_token, other_id = await signed_in(service, OTHER)
    result = await service.change_password(
        this_id, "correct horse", "brand new pw", hash_token(this_token), CLIENT
    )
    assert (await service.resolve(other_token)).needs_new_token
    assert any(e.kind is EventKind.REVOKED and other_id in e.session_ids for e in bus.published)
    # This session goes on, under a token the browser gets through the ticket.
    assert result.signed_in.session.id == this_id
    assert (await service.resolve(this_token)).signed_in is None
    new_token = (await service.redeem_ticket(result.ticket, this_token)).token
    resolved = await service.resolve(new_token)
    assert resolved.signed_in is not None and resolved.signed_in.session.id == this_id
    await service.login(BROWSER, "alice", "brand new pw", CLIENT)


@pytest.mark.usefixtures("alice")
async def test_sign_out_other_sessions_keeps_this_one(service: AuthService) -> None:
    this_token, this_id = await signed_in(service)
    others = [await signed_in(service, OTHER) for _ in range(2)]
    result = await service.revoke_other_sessions(this_id, CLIENT, hash_token(this_token))
    assert result.ended == 2
    # This session goes on under a new cookie (a thief's copy of the old one is worthless).
    assert (await service.resolve(this_token)).signed_in is None
    new_token = (await service.redeem_ticket(result.ticket, this_token)).token
    assert (await service.resolve(new_token)).signed_in is not None
    for token, _ in others:
        assert (await service.resolve(token)).needs_new_token
    assert [s.id for s in await service.sessions_of((await service.get_user("alice")).id)] == [
        this_id
    ]


async def test_self_service_needs_a_live_session(service: AuthService) -> None:
    with pytest.raises(NotSignedIn):
        await service.revoke_other_sessions(12345, CLIENT, BROWSER)
    with pytest.raises(NotSignedIn):
        await service.change_password(12345, "a", "brand new pw", BROWSER, CLIENT)


# --- operators ----------------------------------------------------------------------------


@pytest.mark.usefixtures("alice")
async def test_disabling_a_user_ends_their_sessions_and_refuses_sign_in(
    service: AuthService, bus: RecordingBus
) -> None:
    token, session_id = await signed_in(service)
    assert await service.set_active("alice", False) == 1
    assert (await service.resolve(token)).needs_new_token
    assert bus.published[-1].session_ids == (session_id,)
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    await service.set_active("alice", True)
    await service.login(BROWSER, "alice", "correct horse", CLIENT)


@pytest.mark.usefixtures("alice")
async def test_revocations_are_written_for_other_processes_in_the_same_commit(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await signed_in(service)
    await service.revoke_user_sessions("alice")
    revoked = [e for _, e, _ in store.tables.broadcasts if e.kind is EventKind.REVOKED]
    assert revoked[-1].session_ids == (session_id,)


@pytest.mark.usefixtures("alice")
async def test_purge_deletes_only_what_can_never_be_used_again(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    await signed_in(service)
    await signed_in(service)  # 2 sessions, 2 tickets, 2 revoked pre-login tokens
    await fail(service, 1)  # throttle rows for the account and the address
    clock.advance(timedelta(hours=13))
    live_token, _ = await signed_in(service)
    report = await service.purge_expired(batch=1)  # several batches of one
    # The one throttle row purged: the account's, left with no failures by the sign-in.
    assert (report.sessions, report.tickets, report.throttle_rows) == (4, 2, 1)
    assert (await service.resolve(live_token)).signed_in is not None
    # The address's failure is kept for a day (the account's was cleared by the sign-in).
    assert list(store.tables.throttle) == [address_key(CLIENT.addr)]
    clock.advance(timedelta(hours=25))
    report = await service.purge_expired()
    assert report.throttle_rows == 1
    again = await service.purge_expired()
    assert (again.sessions, again.tickets, again.throttle_rows, again.broadcasts) == (0, 0, 0, 0)
