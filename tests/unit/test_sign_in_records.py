"""Sign-in and the cookie ticket, on fakes: a ticket hands out nothing for a session that
ended, a dead pre-login token stays dead, and what the audit trail, the logs and the open
views are told of failures, refusals and redemptions."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditKind,
    ClientInfo,
    InvalidCredentials,
    SecondFactorRequired,
    SessionPolicy,
    Throttled,
    TicketRejected,
)
from authdemo.events import EventKind
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus
from tests.support.gates import Gate, GatedHasher
from tests.support.mfa import PASSWORD as MFA_PASSWORD
from tests.support.mfa import box, enrol
from tests.unit.test_session_data_service import anonymous_row

CLIENT = ClientInfo("203.0.113.7", "pytest")
PASSWORD = "correct horse"


@pytest.fixture
async def alice(service: AuthService) -> int:
    return (await service.create_user("alice", PASSWORD)).id


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("ending", ["logout", "disable", "password"])
async def test_a_ticket_whose_session_ended_before_redemption_hands_out_nothing(
    service: AuthService, store: FakeStore, ending: str
) -> None:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    if ending == "logout":
        await service.logout(result.signed_in.session.id)
    elif ending == "disable":
        await service.set_active("alice", False)
    else:
        await service.set_password("alice", "brand new pw")
    token_hash = store.tables.sessions[result.signed_in.session.id].token_hash
    with pytest.raises(TicketRejected) as refused:
        await service.redeem_ticket(result.ticket, anonymous)
    assert str(refused.value) == "session ended"
    assert store.tables.sessions[result.signed_in.session.id].token_hash == token_hash
    assert not (await service.resolve(anonymous)).needs_new_token  # still the visitor's


@pytest.mark.usefixtures("alice")
async def test_a_refused_ticket_says_why_in_the_operators_log(
    service: AuthService, clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authdemo.auth")
    reasons = []

    async def refused(ticket: str, presented: str | None) -> None:
        with pytest.raises(TicketRejected) as rejected:
            await service.redeem_ticket(ticket, presented)
        reasons.append(str(rejected.value))

    anonymous = service.new_token()
    first = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    await refused(first.ticket, service.new_token())
    await refused(first.ticket, anonymous)
    second = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    clock.advance(timedelta(seconds=30))
    await refused(second.ticket, anonymous)
    third = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    store.tables.tickets[hash_token(third.ticket)]["bound"] = None
    await refused(third.ticket, anonymous)
    await refused("made-up", anonymous)
    assert reasons == [
        "presented with another cookie",
        "already used",
        "expired",
        "bound to no cookie",
        "unknown ticket",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"ticket rejected: {reason}" for reason in reasons[:-1]
    ]


@pytest.mark.usefixtures("alice")
async def test_a_redemption_is_audited_linking_the_new_cookie_to_the_sign_in(
    service: AuthService,
    store: FakeStore,
    bus: RecordingBus,
    caplog: pytest.LogCaptureFixture,
    alice: int,
) -> None:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    was = result.signed_in.session.short_id
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    redeemed = await service.redeem_ticket(result.ticket, anonymous, CLIENT)
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.session) == (
        AuditKind.ROTATED,
        "alice",
        alice,
        hash_token(redeemed.token)[:8],
    )
    assert (row.client_addr, row.user_agent, row.detail) == ("203.0.113.7", "pytest", f"was {was}")
    assert redeemed.session.token_hash == hash_token(redeemed.token)
    assert f"session rotated session={hash_token(redeemed.token)[:8]}" in [
        r.getMessage() for r in caplog.records
    ]
    # Views holding the pre-login cookie hear that it is dead.
    (retired,) = [e for e in bus.published if e.kind is EventKind.TOKEN_RETIRED]
    assert retired.token_hash == hash_token(anonymous)
    # Redeemed without a client (the ticket route always has one): no address recorded.
    again = await service.login(hash_token(redeemed.token), "alice", PASSWORD, CLIENT)
    await service.redeem_ticket(again.ticket, redeemed.token)
    assert (store.tables.audit[-1].client_addr, store.tables.audit[-1].user_agent) == ("", "")


async def test_a_sign_in_whose_cookie_another_took_first_ends_unused_audited_and_logged(
    service: AuthService,
    store: FakeStore,
    bus: RecordingBus,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    alice: int,
) -> None:
    # Two tabs signed in at once with one cookie; the first redemption won. The second
    # session ends unused: revoked (committed, announced to the user's views), its
    # ending audited against the tab's request and told to the operator.
    before = service.new_token()
    first = await service.login(hash_token(before), "alice", PASSWORD, CLIENT)
    second = await service.login(hash_token(before), "alice", PASSWORD, CLIENT)
    await service.redeem_ticket(first.ticket, before, CLIENT)
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    published = len(bus.published)
    clock.advance(timedelta(milliseconds=20))
    with pytest.raises(TicketRejected) as refused:
        await service.redeem_ticket(second.ticket, before, CLIENT)
    assert str(refused.value) == "cookie replaced by another sign-in"
    lost = second.signed_in.session
    ended = store.tables.sessions[lost.id]
    assert ended.revoked_at == clock.now()
    assert ended.token_hash == lost.token_hash  # no cookie of it was handed out
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.session, row.detail) == (
        AuditKind.LOGOUT,
        "alice",
        alice,
        lost.short_id,
        "unused: another sign-in of this browser took its cookie first",
    )
    assert (row.client_addr, row.user_agent) == ("203.0.113.7", "pytest")
    assert [(e.kind, e.session_ids, e.reason, e.user_id) for e in bus.published[published:]] == [
        (EventKind.REVOKED, (lost.id,), "logout", alice)
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "ticket rejected: its cookie was replaced by another sign-in"
    ]
    # Redeemed without a client (the ticket route always has one): no address recorded.
    third = await service.login(hash_token(before), "alice", PASSWORD, CLIENT)
    with pytest.raises(TicketRejected, match="another sign-in"):
        await service.redeem_ticket(third.ticket, before)
    assert (store.tables.audit[-1].client_addr, store.tables.audit[-1].user_agent) == ("", "")


@pytest.mark.usefixtures("alice")
async def test_a_pre_login_token_stays_dead_after_a_purge(
    service: AuthService, clock: FakeClock
) -> None:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    await service.redeem_ticket(result.ticket, anonymous)
    clock.advance(timedelta(hours=1))
    await service.purge_expired()
    assert (await service.resolve(anonymous)).needs_new_token


async def test_failed_sign_ins_and_the_block_they_start_are_audited_with_who_and_where(
    service: AuthService, store: FakeStore, alice: int
) -> None:
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await service.login(hash_token(service.new_token()), "alice", "wrong pw!", CLIENT)
    with pytest.raises(Throttled):
        await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    rows = [
        (e.kind, e.username, e.user_id, e.client_addr, e.user_agent, e.detail)
        for e in store.tables.audit
        if e.kind in (AuditKind.LOGIN_FAILED, AuditKind.THROTTLED)
    ]
    where = ("203.0.113.7", "pytest")
    assert rows == [
        *[(AuditKind.LOGIN_FAILED, "alice", alice, *where, "wrong password")] * 5,
        (AuditKind.THROTTLED, "alice", alice, *where, "blocked for 1 s"),
    ]


async def test_a_failed_sign_in_to_no_account_is_audited_under_a_digest_with_where_from(
    service: AuthService, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    with pytest.raises(InvalidCredentials):
        await service.login(hash_token(service.new_token()), "nobody", "whatever pw", CLIENT)
    row = store.tables.audit[-1]
    assert (row.kind, row.user_id, row.client_addr, row.user_agent, row.detail) == (
        AuditKind.LOGIN_FAILED,
        None,
        "203.0.113.7",
        "pytest",
        "no such user",
    )
    assert row.username.startswith("unknown:")
    assert f"login failed (no such user) user={row.username} client=203.0.113.7" in [
        r.getMessage() for r in caplog.records
    ]


@pytest.mark.usefixtures("alice")
async def test_only_a_cookie_a_ticket_just_handed_out_is_held_and_only_once(
    service: AuthService, store: FakeStore, clock: FakeClock, bus: RecordingBus
) -> None:
    def held() -> list[tuple[tuple[int, ...], str | None]]:
        return [
            (e.session_ids, e.token_hash) for e in bus.published if e.kind is EventKind.COOKIE_HELD
        ]

    assert await service.cookie_held(None) is False
    assert await service.cookie_held("not-a-token") is False
    assert await service.cookie_held(service.new_token()) is False  # genuine, but no session's
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    redeemed = await service.redeem_ticket(result.ticket, anonymous)
    clock.advance(service.policy.ticket_ttl)  # exactly the ticket's lifetime: still in time
    assert await service.cookie_held(redeemed.token) is True
    assert await service.cookie_held(redeemed.token) is False  # a replay costs nothing
    assert held() == [((result.signed_in.session.id,), hash_token(redeemed.token))]
    (_, queued, at) = store.tables.broadcasts[-1]  # in the outbox, at this moment
    assert (queued.kind, at) == (EventKind.COOKIE_HELD, clock.now())
    again = await service.login(hash_token(redeemed.token), "alice", PASSWORD, CLIENT)
    late = await service.redeem_ticket(again.ticket, redeemed.token)
    clock.advance(service.policy.ticket_ttl + timedelta(seconds=1))
    assert await service.cookie_held(late.token) is False  # minted too long ago to count
    assert len(held()) == 1


@pytest.mark.usefixtures("alice")
async def test_the_cookies_held_are_remembered_up_to_ten_thousand_oldest_forgotten_first(
    service: AuthService,
) -> None:
    async def fresh_cookie() -> str:
        anonymous = service.new_token()
        result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
        return (await service.redeem_ticket(result.ticket, anonymous)).token

    remembered = service._held
    remembered.update((f"earlier-{n}", None) for n in range(9_999))
    first = await fresh_cookie()
    assert await service.cookie_held(first) is True
    assert len(remembered) == 10_000 and "earlier-0" in remembered  # the limit, kept whole
    second = await fresh_cookie()
    assert await service.cookie_held(second) is True
    assert len(remembered) == 10_000 and "earlier-0" not in remembered  # the oldest went
    assert await service.cookie_held(second) is False  # the newest stays remembered
    assert await service.cookie_held(first) is False


async def test_a_block_started_on_a_name_that_is_no_account_is_audited_under_its_digest(
    service: AuthService, store: FakeStore
) -> None:
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await service.login(hash_token(service.new_token()), "mallory", "wrong pw!", CLIENT)
    rows = [
        (e.kind, e.username, e.user_id)
        for e in store.tables.audit
        if e.kind in (AuditKind.LOGIN_FAILED, AuditKind.THROTTLED)
    ]
    shown = rows[0][1]
    assert shown and "mallory" not in shown
    assert rows == [
        *[(AuditKind.LOGIN_FAILED, shown, None)] * 5,
        (AuditKind.THROTTLED, shown, None),
    ]


@pytest.mark.usefixtures("alice")
async def test_a_rekey_ticket_bound_to_the_cookie_its_own_sign_in_replaced_is_redeemed(
    service: AuthService,
) -> None:
    # The browser never kept the signed-in cookie (it still presents the pre-sign-in
    # one) and signs the other sessions out from this tab: the new ticket is bound to
    # the cookie this very session's sign-in replaced. That is no other sign-in.
    before = service.new_token()
    result = await service.login(hash_token(before), "alice", PASSWORD, CLIENT)
    await service.redeem_ticket(result.ticket, before)
    session_id = result.signed_in.session.id
    rekeyed = await service.revoke_other_sessions(session_id, CLIENT, hash_token(before))
    redeemed = await service.redeem_ticket(rekeyed.ticket, before)
    assert redeemed.session.id == session_id
    assert (await service.resolve(redeemed.token)).signed_in is not None


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def gated_service(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
    gate: Gate,
) -> AuthService:
    """Every password check waits at ``gate`` (once armed) after hashing."""
    return AuthService(store, GatedHasher(hasher, gate), tokens, clock, policy, bus)  # type: ignore[arg-type]


async def held_at_the_gate(service: AuthService, gate: Gate) -> asyncio.Task[object]:
    gate.arm()
    login = asyncio.create_task(
        service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    )
    await gate.arrived.wait()
    return login


async def test_a_password_changed_while_it_was_checked_opens_nothing_audited_and_logged(
    gated_service: AuthService, gate: Gate, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    service = gated_service
    alice = (await service.create_user("alice", PASSWORD)).id
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    login = await held_at_the_gate(service, gate)
    await service.set_password("alice", "brand new pw")  # verify -> [here] -> open
    gate.release()
    with pytest.raises(InvalidCredentials):
        await login
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.client_addr, row.user_agent, row.detail) == (
        AuditKind.LOGIN_FAILED,
        "alice",
        alice,
        "203.0.113.7",
        "pytest",
        "credentials changed during sign-in",
    )
    assert "login refused: credentials changed user=alice" in [
        r.getMessage() for r in caplog.records
    ]
    assert [s for s in store.tables.sessions.values() if s.user_id is not None] == []


async def test_a_user_gone_while_their_password_was_checked_gets_no_session(
    gated_service: AuthService, gate: Gate, store: FakeStore
) -> None:
    service = gated_service
    alice = (await service.create_user("alice", PASSWORD)).id
    login = await held_at_the_gate(service, gate)
    del store.tables.users[alice]  # an unverified sign-up purged, say
    gate.release()
    with pytest.raises(InvalidCredentials):
        await login
    assert [s for s in store.tables.sessions.values() if s.user_id is not None] == []


async def test_an_outdated_hash_is_upgraded_on_sign_in_and_logged(
    service: AuthService, store: FakeStore, caplog: pytest.LogCaptureFixture, alice: int
) -> None:
    user, key, _ = store.tables.users[alice]
    store.tables.users[alice] = (user, key, f"old${PASSWORD}")
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert store.tables.users[alice][2] == f"fake${PASSWORD}"
    assert "password hash upgraded user=alice" in [r.getMessage() for r in caplog.records]


@pytest.mark.usefixtures("alice")
async def test_a_success_forgets_the_accounts_failures_and_gives_the_address_its_attempt_back(
    service: AuthService, store: FakeStore
) -> None:
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await service.login(hash_token(service.new_token()), "alice", "wrong pw!", CLIENT)
    await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    account = service.account_key("alice")
    address = [k for k in store.tables.throttle if k != account]
    assert account not in store.tables.throttle or store.tables.throttle[account].failures == 0
    assert [store.tables.throttle[k].failures for k in address] == [2]


async def test_a_password_that_needs_a_code_is_audited_and_logged_and_opens_nothing(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = AuthService(store, hasher, tokens, clock, policy, bus, mfa_box=box())
    carol = (await service.create_user("carol", MFA_PASSWORD)).id
    await enrol(service, "carol")
    token, anonymous_id = await anonymous_row(service)
    await service.change_session_data(anonymous_id, {"cart": ["apple"]})
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    sessions = len(store.tables.sessions)
    with pytest.raises(SecondFactorRequired) as required:
        await service.login(
            hash_token(token), "carol", MFA_PASSWORD, CLIENT, carry_from=anonymous_id
        )
    assert len(store.tables.sessions) == sessions
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.client_addr, row.user_agent) == (
        AuditKind.MFA_REQUIRED,
        "carol",
        carol,
        "203.0.113.7",
        "pytest",
    )
    assert "password ok, code required user=carol" in [r.getMessage() for r in caplog.records]
    assert required.value.expires_at == clock.now() + service.second_factor.challenge_ttl
    assert required.value.challenge is not None
    challenge = store.tables.challenges[hash_token(required.value.challenge)]
    assert (challenge.user_id, challenge.bound_token_hash, challenge.carry_from) == (
        carol,
        hash_token(token),
        anonymous_id,
    )


@pytest.mark.usefixtures("alice")
async def test_a_sign_in_carries_only_a_live_anonymous_sessions_data(
    service: AuthService, store: FakeStore, bus: RecordingBus, alice: int
) -> None:
    async def signed_in(carry_from: int | None) -> int:
        result = await service.login(
            hash_token(service.new_token()), "alice", PASSWORD, CLIENT, carry_from=carry_from
        )
        return result.signed_in.session.id

    plain = await signed_in(None)
    assert store.tables.sessions[plain].data is None  # nothing to carry: no data at all
    await service.change_session_data(plain, {"secret": "of a signed-in session"})
    from_signed_in = await signed_in(plain)
    assert store.tables.sessions[from_signed_in].data is None
    from_nothing = await signed_in(987_654)  # no such session
    assert store.tables.sessions[from_nothing].data is None


@pytest.mark.usefixtures("alice")
async def test_a_password_refused_unhashed_or_a_disabled_account_is_audited_with_its_reason(
    service: AuthService, store: FakeStore, alice: int
) -> None:
    def failed() -> tuple[str, int | None, str]:
        row = store.tables.audit[-1]
        assert row.kind == AuditKind.LOGIN_FAILED
        return row.username, row.user_id, row.detail

    with pytest.raises(InvalidCredentials):
        await service.login(hash_token(service.new_token()), "alice", "", CLIENT)
    # Nothing is looked up for a password that is not even hashed: the name is shown as
    # for any attempt that names no account it read.
    shown, user_id, detail = failed()
    assert (user_id, detail) == (None, "password refused unhashed")
    assert shown != "alice" and "alice" not in shown
    await service.set_active("alice", False)
    with pytest.raises(InvalidCredentials):
        await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert failed() == ("alice", alice, "account disabled")


class RecordingHasher(FakeHasher):
    """Keeps the passwords the dummy verify was given."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy_passwords: list[str] = []

    async def dummy_verify(self, password: str) -> None:
        self.dummy_passwords.append(password)
        await super().dummy_verify(password)


async def test_a_sign_in_to_no_account_verifies_the_typed_password_against_a_dummy(
    store: FakeStore, tokens: TokenCodec, clock: FakeClock, policy: SessionPolicy, bus: RecordingBus
) -> None:
    # Argon2 refuses anything but text before hashing (and the refusal is caught): a
    # dummy verify of anything else would answer at once, telling the name is no one's.
    hasher = RecordingHasher()
    service = AuthService(store, hasher, tokens, clock, policy, bus)
    with pytest.raises(InvalidCredentials):
        await service.login(hash_token(service.new_token()), "nobody", "a password", CLIENT)
    assert hasher.dummy_passwords == ["a password"]


@pytest.mark.usefixtures("alice")
async def test_a_sign_in_is_logged_with_the_session_and_address_and_a_blocked_one_at_debug(
    service: AuthService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="authdemo.auth")
    result = await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    short = result.signed_in.session.short_id
    assert f"login ok user=alice session={short} client=203.0.113.7" in [
        r.getMessage() for r in caplog.records
    ]
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            await service.login(hash_token(service.new_token()), "alice", "wrong pw!", CLIENT)
    caplog.clear()
    with pytest.raises(Throttled):
        await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "login refused (throttled)")
    ]


@pytest.mark.usefixtures("alice")
async def test_a_sign_in_is_announced_when_a_browser_gets_its_cookie(
    service: AuthService, store: FakeStore, bus: RecordingBus, alice: int
) -> None:
    """Open session lists add a session when its ticket is redeemed, in the redemption's
    one broadcast statement; a session whose cookie no browser ever got is announced to
    nobody (lists still show it the next time they read)."""
    cookie = service.new_token()
    result = await service.login(hash_token(cookie), "alice", PASSWORD, CLIENT)
    unredeemed = await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
    assert [e for e in bus.published if e.kind is EventKind.SIGNED_IN] == []
    redeemed = await service.redeem_ticket(result.ticket, cookie)
    kinds = [e.kind for e in bus.published]
    assert kinds[-3:] == [EventKind.COOKIE_ATTACHED, EventKind.TOKEN_RETIRED, EventKind.SIGNED_IN]
    opened = bus.published[-1]
    assert (opened.session_ids, opened.user_id) == ((redeemed.session.id,), alice)
    rows = store.tables.broadcasts[-3:]
    assert [e.kind for _, e, _ in rows] == kinds[-3:]  # queued for the other processes too
    assert unredeemed.signed_in.session.id not in {i for e in bus.published for i in e.session_ids}
