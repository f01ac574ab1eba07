"""What ending or seeing a session leaves behind: the audit row and the log line say which
session, whose and from where; ``logout`` answers the session as stored; ``visit``
answers a signed-in, an anonymous or an unknown cookie with what it knows of it."""

from __future__ import annotations

import logging

import pytest

from authdemo.domain import AuditKind, ClientInfo
from authdemo.events import EventKind
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from tests.support.fakes import FakeClock, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def _signed_in(service: AuthService) -> tuple[str, int]:
    await service.create_user("alice", "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    return token, result.signed_in.session.id


async def test_a_logout_is_audited_and_logged_with_the_session_its_user_and_the_client(
    service: AuthService, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    token, session_id = await _signed_in(service)
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    ended = await service.logout(session_id, CLIENT)
    assert ended is not None and ended.id == session_id
    assert ended.token_hash == hash_token(token)  # the row as stored: the cookie it had
    [audit] = [e for e in store.tables.audit if e.kind is AuditKind.LOGOUT]
    assert (audit.username, audit.session, audit.client_addr, audit.user_agent) == (
        "alice",
        ended.short_id,
        CLIENT.addr,
        CLIENT.user_agent,
    )
    assert f"logout session={ended.short_id}" in caplog.messages


async def test_logging_out_an_unknown_session_answers_none_and_records_nothing(
    service: AuthService, store: FakeStore
) -> None:
    assert await service.logout(12345, CLIENT) is None
    assert [e for e in store.tables.audit if e.kind is AuditKind.LOGOUT] == []


async def test_an_expiry_seen_by_a_view_is_audited_and_logged(
    service: AuthService, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    _, session_id = await _signed_in(service)
    signed_in = await service.current(session_id)
    assert signed_in is not None
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    await service.note_expired(signed_in.session, signed_in.user)
    [audit] = [e for e in store.tables.audit if e.kind is AuditKind.EXPIRED]
    assert (audit.username, audit.session) == ("alice", signed_in.session.short_id)
    assert caplog.messages[-1] == f"session expired session={signed_in.session.short_id}"


async def test_a_visit_resolves_a_signed_in_cookie_with_its_hash_and_mint_time(
    service: AuthService, tokens: TokenCodec
) -> None:
    token, session_id = await _signed_in(service)
    resolution = await service.visit(token)
    assert resolution.signed_in is not None
    assert resolution.signed_in.session.id == session_id
    assert resolution.token_hash == hash_token(token)
    assert resolution.issued_at == tokens.issued_at(token)


async def test_a_visit_resolves_a_fresh_anonymous_cookie_with_its_hash_and_mint_time(
    service: AuthService, tokens: TokenCodec
) -> None:
    token = service.new_token()
    resolution = await service.visit(token)
    assert resolution.signed_in is None and resolution.anonymous is None
    assert resolution.token_hash == hash_token(token)
    assert resolution.issued_at == tokens.issued_at(token)


async def test_an_anonymous_cookie_resolves_to_its_row_and_a_visit_slides_it(
    service: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    token = service.new_token()
    issued = (await service.resolve(token)).issued_at
    resolved = await service.resolve(token)
    session, _ = await service.open_anonymous_session(resolved.token_hash, issued, CLIENT)
    found = await service.resolve(token)
    assert (found.token_hash, found.issued_at) == (hash_token(token), issued)
    assert found.anonymous is not None and found.anonymous.id == session.id
    clock.advance(service.policy.idle_timeout - service.policy.renew_margin / 2)
    visited = await service.visit(token)
    assert (visited.token_hash, visited.issued_at) == (hash_token(token), issued)
    assert visited.anonymous is not None and visited.anonymous.id == session.id
    assert visited.anonymous.idle_expires_at == clock.now() + service.policy.idle_timeout
    assert store.tables.sessions[session.id].last_seen_at == clock.now()


async def test_a_renewal_refused_ends_the_session_for_every_view_and_says_so(
    service: AuthService, bus: RecordingBus, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    token, session_id = await _signed_in(service)
    resolved = await service.resolve(token)
    assert resolved.signed_in is not None
    stale = resolved.signed_in.session
    await service.set_active("alice", False)
    clock.advance(service.policy.idle_timeout - service.policy.renew_margin / 2)
    caplog.set_level(logging.INFO, logger="authdemo.auth")
    assert await service.renew(stale) is None
    refused = [e for e in bus.published if e.reason == "renewal refused"]
    assert [(e.kind, e.session_ids, e.user_id) for e in refused] == [
        (EventKind.REVOKED, (session_id,), stale.user_id)
    ]
    assert f"renewal refused: session={stale.short_id} may not act" in [
        r.getMessage() for r in caplog.records
    ]


async def test_a_logout_is_announced_as_one(service: AuthService, bus: RecordingBus) -> None:
    _, session_id = await _signed_in(service)
    await service.logout(session_id)
    ended = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert [(e.session_ids, e.reason) for e in ended] == [((session_id,), "logout")]
