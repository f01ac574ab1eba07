"""Session data in the service: one write per change, a size cap, lazy anonymous rows,
and Django-like semantics at sign-in, password change, sign-out and expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authdemo.domain import (
    ClientInfo,
    InvalidSessionData,
    NotSignedIn,
    SessionDataTooLarge,
    SessionPolicy,
    TicketRejected,
)
from authdemo.events import EventKind
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from tests.support.fakes import BROWSER, FakeClock, FakeHasher, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def anonymous_row(service: AuthService) -> tuple[str, int]:
    """A visitor with a valid anonymous cookie writes for the first time."""
    token = service.new_token()
    resolved = await service.resolve(token)
    session, ticket = await service.open_anonymous_session(
        resolved.token_hash, resolved.issued_at, CLIENT
    )
    assert ticket is None
    return token, session.id


async def test_a_change_is_one_write_and_reads_back(service: AuthService, store: FakeStore) -> None:
    token, session_id = await anonymous_row(service)
    before = store.commits
    updated = await service.change_session_data(session_id, {"count": 1, "name": "x"})
    assert store.commits == before + 1
    assert updated.data == {"count": 1, "name": "x"}
    resolved = await service.resolve(token)
    assert resolved.anonymous is not None and resolved.anonymous.data == {"count": 1, "name": "x"}


async def test_keys_can_be_deleted(service: AuthService) -> None:
    _, session_id = await anonymous_row(service)
    await service.change_session_data(session_id, {"a": 1, "b": 2})
    updated = await service.change_session_data(session_id, {}, ["a", "missing"])
    assert updated.data == {"b": 2}


async def test_anonymous_page_views_create_no_row(service: AuthService, store: FakeStore) -> None:
    token = service.new_token()
    for _ in range(5):
        await service.visit(token)
    assert store.commits == 0 and store.tables.sessions == {}


async def test_the_first_write_gives_the_anonymous_cookie_a_row(
    service: AuthService, store: FakeStore
) -> None:
    token, session_id = await anonymous_row(service)
    row = store.tables.sessions[session_id]
    assert row.token_hash == hash_token(token) and row.user_id is None


async def test_a_second_tab_racing_for_the_row_gets_the_same_one(service: AuthService) -> None:
    token = service.new_token()
    resolved = await service.resolve(token)
    first, _ = await service.open_anonymous_session(resolved.token_hash, resolved.issued_at, CLIENT)
    second, ticket = await service.open_anonymous_session(
        resolved.token_hash, resolved.issued_at, CLIENT
    )
    assert second.id == first.id and ticket is None


async def test_with_a_dead_cookie_the_row_comes_with_a_ticket_bound_to_it(
    service: AuthService,
) -> None:
    dead = "d" * 70  # the browser presents a cookie we cannot use (forged, expired, ...)
    _, ticket = await service.open_anonymous_session(hash_token(dead), None, CLIENT)
    assert ticket is not None
    with pytest.raises(TicketRejected, match="another cookie"):
        await service.redeem_ticket(ticket, service.new_token())
    _, ticket = await service.open_anonymous_session(hash_token(dead), None, CLIENT)
    assert ticket is not None
    token = (await service.redeem_ticket(ticket, dead)).token
    resolved = await service.resolve(token)
    assert resolved.anonymous is not None


async def test_an_anonymous_row_never_outlives_its_cookie(
    service: AuthService, clock: FakeClock
) -> None:
    token = service.new_token()
    clock.advance(timedelta(hours=10))
    resolved = await service.resolve(token)
    session, _ = await service.open_anonymous_session(
        resolved.token_hash, resolved.issued_at, CLIENT
    )
    assert session.absolute_expires_at == resolved.issued_at + timedelta(hours=12)  # type: ignore[operator]


async def test_the_size_cap_refuses_a_change_and_keeps_the_old_data(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    service = AuthService(store, hasher, tokens, clock, SessionPolicy(data_max_bytes=100), bus)
    _, session_id = await anonymous_row(service)
    await service.change_session_data(session_id, {"small": "x"})
    with pytest.raises(SessionDataTooLarge) as refused:
        await service.change_session_data(session_id, {"big": "y" * 200})
    assert str(refused.value) == (
        "Session data is limited to 100 bytes; this change would make it 222 bytes."
    )
    assert store.tables.sessions[session_id].data == {"small": "x"}


def test_the_size_cap_message_is_clear() -> None:
    assert str(SessionDataTooLarge(70_000, 65_536)) == (
        "Session data is limited to 64 KiB; this change would make it 69 KiB."
    )


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes"])
async def test_values_json_cannot_hold_are_refused(service: AuthService, value: object) -> None:
    _, session_id = await anonymous_row(service)
    with pytest.raises(InvalidSessionData):
        await service.change_session_data(session_id, {"k": value})


async def test_keys_must_be_strings(service: AuthService) -> None:
    _, session_id = await anonymous_row(service)
    with pytest.raises(InvalidSessionData):
        await service.change_session_data(session_id, {1: "x"})  # type: ignore[dict-item]


async def test_a_change_is_announced_with_its_origin(
    service: AuthService, bus: RecordingBus
) -> None:
    _, session_id = await anonymous_row(service)
    await service.change_session_data(session_id, {"a": 1}, origin="tab-1")
    (event,) = [e for e in bus.published if e.kind is EventKind.DATA_CHANGED]
    assert (event.session_ids, event.origin) == ((session_id,), "tab-1")


async def test_signing_in_keeps_the_data(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    token, anonymous_id = await anonymous_row(service)
    await service.change_session_data(anonymous_id, {"cart": ["apple"]})
    result = await service.login(
        hash_token(token), "alice", "correct horse", CLIENT, carry_from=anonymous_id
    )
    assert result.signed_in.session.data == {"cart": ["apple"]}
    new_token = (await service.redeem_ticket(result.ticket, token)).token
    resolved = await service.resolve(new_token)
    assert resolved.signed_in is not None
    assert resolved.signed_in.session.data == {"cart": ["apple"]}
    # The pre-login cookie (and with it the anonymous row) is dead.
    assert (await service.resolve(token)).needs_new_token


async def test_a_password_change_keeps_the_data(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    session_id = result.signed_in.session.id
    await service.change_session_data(session_id, {"theme": "dark"})
    changed = await service.change_password(
        session_id, "correct horse", "brand new pw", hash_token(anonymous), CLIENT
    )
    assert changed.signed_in.session.data == {"theme": "dark"}


async def test_signing_out_and_expiry_end_the_data(service: AuthService, clock: FakeClock) -> None:
    await service.create_user("alice", "correct horse")
    result = await service.login(BROWSER, "alice", "correct horse", CLIENT)
    session_id = result.signed_in.session.id
    await service.change_session_data(session_id, {"a": 1})
    await service.logout(session_id)
    with pytest.raises(NotSignedIn):
        await service.change_session_data(session_id, {"a": 2})

    _, anonymous_id = await anonymous_row(service)
    await service.change_session_data(anonymous_id, {"a": 1})
    clock.advance(timedelta(minutes=31))
    assert await service.live_session(anonymous_id) is None
    with pytest.raises(NotSignedIn):
        await service.change_session_data(anonymous_id, {"a": 2})


# --- update_session_value: read, compute and write in one transaction ------------------------


async def test_an_update_applies_the_function_to_the_stored_value(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await anonymous_row(service)
    before = store.commits
    session, value = await service.update_session_value(session_id, "count", lambda n: (n or 0) + 1)
    assert value == 1 and session.data == {"count": 1}
    _, value = await service.update_session_value(session_id, "count", lambda n: n + 10)
    assert value == 11
    assert store.commits == before + 2
    assert store.tables.sessions[session_id].data == {"count": 11}


async def test_an_update_returns_the_value_as_stored(service: AuthService) -> None:
    _, session_id = await anonymous_row(service)
    _, value = await service.update_session_value(session_id, "pair", lambda _: (1, 2))
    assert value == [1, 2]  # JSON has lists, not tuples: what every view reads back


async def test_an_update_whose_function_raises_writes_nothing(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await anonymous_row(service)
    await service.change_session_data(session_id, {"cart": ["apple"]})

    def add_then_fail(cart: list[str]) -> list[str]:
        cart.append("pear")  # mutates what it was given, then fails
        raise LookupError("out of pears")

    with pytest.raises(LookupError, match="out of pears"):
        await service.update_session_value(session_id, "cart", add_then_fail)
    assert store.tables.sessions[session_id].data == {"cart": ["apple"]}


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes"])
async def test_an_update_whose_result_json_cannot_hold_is_refused(
    service: AuthService, store: FakeStore, value: object
) -> None:
    _, session_id = await anonymous_row(service)
    await service.change_session_data(session_id, {"k": 1})
    with pytest.raises(InvalidSessionData):
        await service.update_session_value(session_id, "k", lambda _: value)
    assert store.tables.sessions[session_id].data == {"k": 1}


async def test_an_async_function_is_refused_with_a_clear_message(
    service: AuthService, store: FakeStore
) -> None:
    _, session_id = await anonymous_row(service)

    async def increment(n: int | None) -> int:
        return (n or 0) + 1

    with pytest.raises(InvalidSessionData, match="plain function"):
        await service.update_session_value(session_id, "count", increment)
    assert not store.tables.sessions[session_id].data


async def test_an_update_past_the_size_cap_is_refused(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    service = AuthService(store, hasher, tokens, clock, SessionPolicy(data_max_bytes=100), bus)
    _, session_id = await anonymous_row(service)
    await service.change_session_data(session_id, {"log": "x"})
    with pytest.raises(SessionDataTooLarge):
        await service.update_session_value(session_id, "log", lambda s: s + "y" * 200)
    assert store.tables.sessions[session_id].data == {"log": "x"}


async def test_an_update_needs_a_session_that_may_act_on_the_views_epoch(
    service: AuthService, store: FakeStore
) -> None:
    await service.create_user("alice", "correct horse")
    result = await service.login(BROWSER, "alice", "correct horse", CLIENT)
    session_id = result.signed_in.session.id
    epoch = result.signed_in.session.user_epoch
    await service.update_session_value(session_id, "n", lambda _: 1, epoch=epoch)
    with pytest.raises(NotSignedIn):  # a view of the session that a re-key ended
        await service.update_session_value(session_id, "n", lambda _: 2, epoch=epoch + 1)
    await service.logout(session_id)
    with pytest.raises(NotSignedIn):
        await service.update_session_value(session_id, "n", lambda _: 3)
    assert store.tables.sessions[session_id].data == {"n": 1}


async def test_an_update_is_announced_with_its_origin(
    service: AuthService, bus: RecordingBus
) -> None:
    _, session_id = await anonymous_row(service)
    await service.update_session_value(session_id, "a", lambda _: 1, origin="tab-2")
    (event,) = [e for e in bus.published if e.kind is EventKind.DATA_CHANGED]
    assert (event.session_ids, event.origin) == ((session_id,), "tab-2")


async def test_update_keys_must_be_strings(service: AuthService) -> None:
    _, session_id = await anonymous_row(service)
    with pytest.raises(InvalidSessionData):
        await service.update_session_value(session_id, 1, lambda _: 1)  # type: ignore[arg-type]
