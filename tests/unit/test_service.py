from __future__ import annotations

from datetime import timedelta

import pytest

from authdemo.domain import (
    AuditKind,
    ClientInfo,
    CookieRequired,
    InvalidCredentials,
    InvalidPassword,
    InvalidUsername,
    SessionPolicy,
    TicketRejected,
    UnknownUser,
    UsernameTaken,
)
from authdemo.events import EventKind
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService, LoginResult, ensure_token_key
from tests.support.fakes import BROWSER, FakeClock, FakeHasher, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def signed_in(service: AuthService, username: str = "alice") -> tuple[str, LoginResult]:
    """Create a user, log in from an anonymous cookie and redeem the ticket: the new cookie."""
    await service.create_user(username, "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), username, "correct horse", CLIENT)
    redemption = await service.redeem_ticket(result.ticket, anonymous)
    return redemption.token, result


# --- users --------------------------------------------------------------------------------


async def test_create_user_stores_a_hash_never_the_password(
    service: AuthService, store: FakeStore
) -> None:
    user = await service.create_user("Alice", "correct horse")
    assert user.username == "Alice"
    ((_stored_user, key, stored_hash),) = store.tables.users.values()
    assert key == "alice" and stored_hash == "fake$correct horse"


async def test_usernames_are_unique_case_insensitively(service: AuthService) -> None:
    await service.create_user("Alice", "correct horse")
    with pytest.raises(UsernameTaken):
        await service.create_user("ALICE", "another password")


async def test_create_user_refuses_bad_input_before_hashing(
    service: AuthService, hasher: FakeHasher
) -> None:
    with pytest.raises(InvalidUsername):
        await service.create_user("no spaces", "correct horse")
    with pytest.raises(InvalidPassword):
        await service.create_user("alice", "short")
    assert hasher.hash_calls == 0


# --- login --------------------------------------------------------------------------------


async def test_login_opens_a_session_whose_cookie_does_not_exist_yet(
    service: AuthService, store: FakeStore
) -> None:
    await service.create_user("alice", "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    assert result.signed_in.user.username == "alice"
    # The pre-login token does not resolve to the new session...
    assert (await service.resolve(anonymous)).signed_in is None
    # ...and the session row is keyed by a hash nobody holds the token for.
    assert result.signed_in.session.token_hash != hash_token(anonymous)
    assert result.signed_in.session.client_addr == "203.0.113.7"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password"), ("nobody", "correct horse"), ("bad name", "correct horse")],
)
async def test_every_login_failure_raises_the_same_generic_error(
    service: AuthService, username: str, password: str
) -> None:
    await service.create_user("alice", "correct horse")
    with pytest.raises(InvalidCredentials) as failure:
        await service.login(BROWSER, username, password, CLIENT)
    assert str(failure.value) == "Incorrect username or password."


async def test_unknown_usernames_cost_a_dummy_verify(
    service: AuthService, hasher: FakeHasher
) -> None:
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "nobody", "correct horse", CLIENT)
    assert hasher.dummy_calls == 1


async def test_a_huge_password_is_refused_before_any_hashing(
    service: AuthService, hasher: FakeHasher
) -> None:
    await service.create_user("alice", "correct horse")
    calls = (hasher.verify_calls, hasher.dummy_calls)
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "alice", "x" * 1_000_000, CLIENT)
    assert (hasher.verify_calls, hasher.dummy_calls) == calls


async def test_disabled_users_cannot_log_in(service: AuthService, store: FakeStore) -> None:
    user = await service.create_user("alice", "correct horse")
    async with store(write=True) as tx:
        await tx.users.set_active(user.id, False)
        await tx.commit()
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "alice", "correct horse", CLIENT)


async def test_outdated_hashes_are_upgraded_after_a_successful_login(
    service: AuthService, store: FakeStore
) -> None:
    user = await service.create_user("alice", "correct horse")
    async with store(write=True) as tx:
        await tx.users.set_password_hash(user.id, "old$correct horse", None)
        await tx.commit()
    await service.login(BROWSER, "alice", "correct horse", CLIENT)
    assert store.tables.users[user.id][2] == "fake$correct horse"


# --- tickets ------------------------------------------------------------------------------


async def test_redeeming_the_ticket_gives_a_new_token_that_resolves_signed_in(
    service: AuthService,
) -> None:
    token, result = await signed_in(service)
    resolved = await service.resolve(token)
    assert resolved.signed_in is not None
    assert resolved.signed_in.session.id == result.signed_in.session.id


async def test_the_pre_login_token_is_dead_after_redemption(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    anonymous = service.new_token()
    assert not (await service.resolve(anonymous)).needs_new_token
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    await service.redeem_ticket(result.ticket, anonymous)
    assert (await service.resolve(anonymous)).needs_new_token


async def test_a_ticket_is_single_use(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    await service.redeem_ticket(result.ticket, anonymous)
    with pytest.raises(TicketRejected, match="already used"):
        await service.redeem_ticket(result.ticket, anonymous)


async def test_a_ticket_expires(service: AuthService, clock: FakeClock) -> None:
    await service.create_user("alice", "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    clock.advance(timedelta(seconds=30))
    with pytest.raises(TicketRejected, match="expired"):
        await service.redeem_ticket(result.ticket, anonymous)


async def test_a_ticket_only_works_with_the_cookie_it_was_bound_to(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    victim = service.new_token()
    attacker = service.new_token()
    result = await service.login(hash_token(victim), "alice", "correct horse", CLIENT)
    with pytest.raises(TicketRejected, match="another cookie"):
        await service.redeem_ticket(result.ticket, attacker)
    with pytest.raises(TicketRejected):
        await service.redeem_ticket(result.ticket, None)


async def test_a_rejected_attempt_uses_the_ticket_up(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    victim = service.new_token()
    result = await service.login(hash_token(victim), "alice", "correct horse", CLIENT)
    with pytest.raises(TicketRejected):
        await service.redeem_ticket(result.ticket, service.new_token())
    with pytest.raises(TicketRejected, match="already used"):
        await service.redeem_ticket(result.ticket, victim)


async def test_whoever_knows_the_pre_login_token_never_gets_signed_in(
    service: AuthService,
) -> None:
    await service.create_user("alice", "correct horse")
    planted = service.new_token()  # the attacker set this cookie, and keeps a copy
    result = await service.login(hash_token(planted), "alice", "correct horse", CLIENT)
    # Inside the ticket window the planted token is still anonymous...
    assert (await service.resolve(planted)).signed_in is None
    new_token = (await service.redeem_ticket(result.ticket, planted)).token
    # ...and afterwards it is dead, while the victim holds a token the attacker never saw.
    assert (await service.resolve(planted)).needs_new_token
    assert new_token != planted


async def test_an_unknown_ticket_is_rejected(service: AuthService) -> None:
    with pytest.raises(TicketRejected, match="unknown"):
        await service.redeem_ticket("made-up", None)


async def test_a_browser_that_sent_no_cookie_cannot_sign_in_and_is_told_to_reload(
    service: AuthService, hasher: FakeHasher, store: FakeStore
) -> None:
    # Issue 11, defect 7: a ticket bound to no cookie could be redeemed by any browser
    # (a stranger would be signed in as this user). Nothing only that browser holds can
    # bind it, so the sign-in is refused before any hashing or writing.
    await service.create_user("alice", "correct horse")
    commits = store.commits
    with pytest.raises(CookieRequired, match="Reload the page"):
        await service.login(None, "alice", "correct horse", CLIENT)
    assert hasher.verify_calls == 0
    assert store.commits == commits
    with pytest.raises(CookieRequired):
        await service.open_anonymous_session(None, None, CLIENT)


async def test_a_ticket_bound_to_no_cookie_is_never_redeemed(
    service: AuthService, store: FakeStore
) -> None:
    # Rows written before tickets had to be bound: refused with any cookie, or none.
    await service.create_user("alice", "correct horse")
    result = await service.login(BROWSER, "alice", "correct horse", CLIENT)
    store.tables.tickets[hash_token(result.ticket)]["bound"] = None
    with pytest.raises(TicketRejected, match="bound to no cookie"):
        await service.redeem_ticket(result.ticket, service.new_token())


async def test_redemption_announces_the_new_cookie_to_open_connections(
    service: AuthService, bus: RecordingBus
) -> None:
    token, result = await signed_in(service)
    attached = [e for e in bus.published if e.kind is EventKind.COOKIE_ATTACHED]
    assert attached and attached[0].token_hash == hash_token(token)
    assert attached[0].session_ids == (result.signed_in.session.id,)


# --- resolve and renew --------------------------------------------------------------------


async def test_no_or_forged_tokens_need_a_new_one(service: AuthService) -> None:
    assert (await service.resolve(None)).needs_new_token
    forged = TokenCodec(b"x" * 32).mint(service.now())
    assert (await service.resolve(forged)).needs_new_token


async def test_a_fresh_anonymous_token_is_kept_without_any_write(
    service: AuthService, store: FakeStore
) -> None:
    token = service.new_token()
    resolved = await service.resolve(token)
    assert not resolved.needs_new_token and resolved.signed_in is None
    assert store.commits == 0


async def test_sessions_end_after_the_idle_timeout(service: AuthService, clock: FakeClock) -> None:
    token, _ = await signed_in(service)
    clock.advance(timedelta(minutes=30))
    assert (await service.resolve(token)).needs_new_token


async def test_sessions_end_after_the_absolute_timeout_despite_activity(
    service: AuthService, clock: FakeClock
) -> None:
    token, _ = await signed_in(service)
    for _ in range(12 * 4):
        clock.advance(timedelta(minutes=15))
        await service.visit(token)
    assert (await service.resolve(token)).needs_new_token


async def test_renewal_writes_only_when_past_half_the_idle_window(
    service: AuthService, clock: FakeClock, store: FakeStore
) -> None:
    token, _ = await signed_in(service)
    before = store.commits
    for _ in range(10):
        clock.advance(timedelta(minutes=1))
        await service.visit(token)
    assert store.commits == before  # 10 minutes in: more than half the window left
    clock.advance(timedelta(minutes=6))
    visited = await service.visit(token)
    assert store.commits == before + 1
    assert visited.signed_in is not None
    assert visited.signed_in.session.idle_expires_at == clock.now() + timedelta(minutes=30)
    await service.visit(token)
    assert store.commits == before + 1


async def test_a_disabled_users_sessions_do_not_resolve(
    service: AuthService, store: FakeStore
) -> None:
    token, result = await signed_in(service)
    async with store(write=True) as tx:
        await tx.users.set_active(result.signed_in.user.id, False)
        await tx.commit()
    assert (await service.resolve(token)).needs_new_token


# --- logout and password reset ------------------------------------------------------------


async def test_logout_revokes_the_session_and_tells_open_connections(
    service: AuthService, bus: RecordingBus
) -> None:
    token, result = await signed_in(service)
    await service.logout(result.signed_in.session.id)
    assert (await service.resolve(token)).needs_new_token
    revoked = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert revoked[-1].session_ids == (result.signed_in.session.id,)


async def test_a_logout_is_audited_under_its_user_and_says_what_the_session_was(
    service: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    token, result = await signed_in(service)
    session_id, user_id = result.signed_in.session.id, result.signed_in.user.id
    stored = await service.logout(session_id, CLIENT, epoch=1)  # another epoch's view
    assert stored is not None and stored.token_hash == hash_token(token)
    assert (await service.resolve(token)).signed_in is not None  # it only leaves
    ended = await service.logout(session_id, CLIENT)
    assert ended is not None and ended.token_hash == hash_token(token)
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id) == (AuditKind.LOGOUT, "alice", user_id)
    events = len(bus.published)
    again = await service.logout(session_id, CLIENT)  # ended already: nothing to do
    assert again is not None and again.token_hash == hash_token(token)
    assert (len(bus.published), store.tables.audit[-1]) == (events, row)
    assert await service.logout(987_654, CLIENT) is None


async def test_set_password_revokes_every_session_of_the_user(service: AuthService) -> None:
    first, _ = await signed_in(service)
    other = service.new_token()
    second = await service.login(hash_token(other), "alice", "correct horse", CLIENT)
    second_token = (await service.redeem_ticket(second.ticket, other)).token
    await service.set_password("alice", "a new password")
    assert (await service.resolve(first)).needs_new_token
    assert (await service.resolve(second_token)).needs_new_token
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "alice", "correct horse", CLIENT)
    await service.login(BROWSER, "alice", "a new password", CLIENT)


async def test_set_password_for_an_unknown_user_is_refused(service: AuthService) -> None:
    with pytest.raises(UnknownUser):
        await service.set_password("nobody", "a new password")


async def test_a_failed_login_opens_no_session_and_issues_no_ticket(
    service: AuthService, store: FakeStore
) -> None:
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "nobody", "x" * 20, CLIENT)
    assert store.tables.sessions == {} and store.tables.tickets == {}


# --- the token key ------------------------------------------------------------------------


async def test_the_token_key_is_generated_once_and_then_reused(store: FakeStore) -> None:
    first = await ensure_token_key(store, None)
    second = await ensure_token_key(store, None)
    assert first == second and len(first) == 32


async def test_a_configured_token_key_wins(store: FakeStore) -> None:
    assert await ensure_token_key(store, b"c" * 40) == b"c" * 40
    assert store.commits == 0


def test_policy_defaults_match_the_documented_ones() -> None:
    policy = SessionPolicy()
    assert policy.idle_timeout == timedelta(minutes=30)
    assert policy.ticket_ttl <= timedelta(seconds=30)


# --- logging ------------------------------------------------------------------------------


async def test_auth_events_are_logged_with_a_short_id_never_a_secret(
    service: AuthService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="authdemo.auth")
    await service.create_user("alice", "correct horse")
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, "alice", "n0t-the-Pa55word", CLIENT)
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    await service.logout(result.signed_in.session.id)

    text = caplog.text
    for secret in (
        "correct horse",
        "n0t-the-Pa55word",
        anonymous,
        token,
        result.ticket,
        hash_token(token),
        hash_token(result.ticket),
    ):
        assert secret not in text
    assert "login failed" in text and "login ok" in text and "logout" in text
    assert f"session={hash_token(token)[:8]}" in text


async def test_a_failed_sign_in_logs_no_typed_name_and_no_control_character(
    service: AuthService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="authdemo.auth")
    forged = "x\x1b[2K\r2026-01-01 login ok user=alice"
    with pytest.raises(InvalidCredentials):
        await service.login(BROWSER, forged, "whatever pw", CLIENT)
    (line,) = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert "alice" not in line and "\x1b" not in line and "\r" not in line
    assert "user=unknown:" in line


async def test_a_service_given_no_permissions_or_email_policy_has_the_defaults(
    service: AuthService,
) -> None:
    from authdemo.mail import EmailPolicy
    from authdemo.permissions import ADMIN

    assert [p.name for p in service.permissions] == [ADMIN.name]
    assert service.email == EmailPolicy()
    user = await service.create_user("alice", "correct horse")
    assert await service.user_has_permission(user.id, ADMIN.name) is False
