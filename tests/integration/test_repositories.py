from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from authdemo.db.engine import create_engine
from authdemo.db.models import UserRow
from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.domain import ClientInfo, ThrottleState, UsernameTaken

NOW = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


async def add_user(uow: SqlUnitOfWorkFactory, name: str = "alice") -> int:
    async with uow(write=True) as tx:
        user = await tx.users.add(name, name.casefold(), "hash", NOW)
        await tx.commit()
    return user.id


async def add_session(uow: SqlUnitOfWorkFactory, user_id: int | None, token_hash: str) -> int:
    async with uow(write=True) as tx:
        s = await tx.sessions.add(token_hash, user_id, NOW, NOW + H, NOW + 12 * H, ClientInfo())
        await tx.commit()
    return s.id


async def test_usernames_are_unique_on_their_folded_key(sql_uow: SqlUnitOfWorkFactory) -> None:
    await add_user(sql_uow, "alice")
    with pytest.raises(UsernameTaken):
        async with sql_uow(write=True) as tx:
            await tx.users.add("ALICE", "alice", "hash", NOW)


async def test_a_session_is_found_by_its_token_hash_with_its_user(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    user_id = await add_user(sql_uow)
    session_id = await add_session(sql_uow, user_id, "a" * 64)
    async with sql_uow() as tx:
        found = await tx.sessions.find_by_token_hash("a" * 64)
        missing = await tx.sessions.find_by_token_hash("b" * 64)
    assert found is not None and missing is None
    session, user = found
    assert session.id == session_id and user is not None and user.username == "alice"
    assert session.created_at == NOW and session.created_at.tzinfo is not None


async def test_anonymous_rows_come_back_without_a_user(sql_uow: SqlUnitOfWorkFactory) -> None:
    await add_session(sql_uow, None, "c" * 64)
    async with sql_uow() as tx:
        found = await tx.sessions.find_by_token_hash("c" * 64)
    assert found is not None and found[1] is None


async def test_revoke_touches_only_live_sessions(sql_uow: SqlUnitOfWorkFactory) -> None:
    user_id = await add_user(sql_uow)
    a = await add_session(sql_uow, user_id, "a" * 64)
    b = await add_session(sql_uow, user_id, "b" * 64)
    async with sql_uow(write=True) as tx:
        assert await tx.sessions.revoke([a], NOW) == [a]
        assert await tx.sessions.revoke([a, b], NOW) == [b]
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.sessions.live_ids_for_user(user_id, NOW) == []


async def test_deleting_a_user_deletes_their_sessions(sql_uow: SqlUnitOfWorkFactory) -> None:
    from sqlalchemy import delete

    from authdemo.db.models import UserRow

    user_id = await add_user(sql_uow)
    session_id = await add_session(sql_uow, user_id, "a" * 64)
    async with sql_uow(write=True) as tx:
        await tx.sessions._s.execute(delete(UserRow).where(UserRow.id == user_id))  # type: ignore[attr-defined]
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.sessions.get(session_id) is None


async def test_touch_moves_the_idle_expiry(sql_uow: SqlUnitOfWorkFactory) -> None:
    session_id = await add_session(sql_uow, await add_user(sql_uow), "a" * 64)
    async with sql_uow(write=True) as tx:
        assert not await tx.sessions.touch(session_id, NOW + H, NOW + 2 * H, NOW, 7)  # stale copy
        assert await tx.sessions.touch(session_id, NOW + H, NOW + 2 * H, NOW, 0)
        await tx.commit()
    async with sql_uow() as tx:
        session = await tx.sessions.get(session_id)
    assert session is not None and session.idle_expires_at == NOW + 2 * H


async def test_touch_moves_nothing_for_a_user_disabled_on_the_same_epoch(
    sql_uow: SqlUnitOfWorkFactory, db_url: str
) -> None:
    """``set_active(False)`` moves the epoch on too; an operator's own ``UPDATE`` of
    ``is_active`` does not, and the renewal must still refuse the session."""
    user_id = await add_user(sql_uow)
    session_id = await add_session(sql_uow, user_id, "a" * 64)
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            users = UserRow.__table__
            await conn.execute(update(users).where(users.c.id == user_id).values(is_active=False))
    finally:
        await engine.dispose()
    async with sql_uow(write=True) as tx:
        assert not await tx.sessions.touch(session_id, NOW + H, NOW + 2 * H, NOW, 0)


async def test_touch_moves_nothing_for_a_session_that_may_not_act(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    user_id = await add_user(sql_uow)
    revoked = await add_session(sql_uow, user_id, "a" * 64)
    stale = await add_session(sql_uow, user_id, "b" * 64)
    async with sql_uow(write=True) as tx:
        await tx.sessions.revoke([revoked], NOW)
        await tx.users.bump_epoch(user_id)  # `stale` predates it
        await tx.commit()
    async with sql_uow(write=True) as tx:
        for session_id in (revoked, stale):
            assert not await tx.sessions.touch(session_id, NOW + H, NOW + 2 * H, NOW, 0)
        await tx.commit()
    async with sql_uow() as tx:
        for session_id in (revoked, stale):
            session = await tx.sessions.get(session_id)
            assert session is not None and session.idle_expires_at != NOW + 2 * H


async def test_a_ticket_can_be_claimed_once(sql_uow: SqlUnitOfWorkFactory) -> None:
    session_id = await add_session(sql_uow, await add_user(sql_uow), "a" * 64)
    async with sql_uow(write=True) as tx:
        await tx.tickets.add("t" * 64, session_id, "b" * 64, NOW, NOW + timedelta(seconds=30))
        await tx.commit()
    async with sql_uow(write=True) as tx:
        first = await tx.tickets.claim("t" * 64, NOW)
        second = await tx.tickets.claim("t" * 64, NOW)
        unknown = await tx.tickets.claim("u" * 64, NOW)
        await tx.commit()
    assert first is not None and not first.already_redeemed
    assert first.session_id == session_id and first.bound_token_hash == "b" * 64
    assert second is not None and second.already_redeemed
    assert unknown is None


async def test_purge_removes_expired_rows_in_batches(sql_uow: SqlUnitOfWorkFactory) -> None:
    user_id = await add_user(sql_uow)
    for i in range(5):
        await add_session(sql_uow, user_id, f"{i}" * 64)
    async with sql_uow(write=True) as tx:
        assert await tx.sessions.purge_expired(NOW + 13 * H, limit=3) == 3
        assert await tx.sessions.purge_expired(NOW + 13 * H, limit=3) == 2
        assert await tx.sessions.purge_expired(NOW + 13 * H, limit=3) == 0
        await tx.commit()


async def test_revoked_rows_are_kept_until_their_absolute_expiry(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    # Until then a replayed cookie reads as "revoked" (replaced), not "unknown".
    session_id = await add_session(sql_uow, await add_user(sql_uow), "a" * 64)
    async with sql_uow(write=True) as tx:
        await tx.sessions.revoke([session_id], NOW)
        assert await tx.sessions.purge_expired(NOW + 2 * H, limit=10) == 0
        assert await tx.sessions.purge_expired(NOW + 12 * H, limit=10) == 1
        await tx.commit()


async def test_secrets_are_inserted_once(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        assert await tx.secrets.add("k", "first")
        assert not await tx.secrets.add("k", "second")
        assert await tx.secrets.get("k") == "first"
        await tx.commit()


@pytest.mark.parametrize(
    ("failures", "blocked", "left", "still_blocked"),
    [
        (1, False, None, False),  # the attempt was the only one: nothing left to remember
        (3, True, 2, True),  # still at the threshold (2): the block stays
        (2, True, 1, False),  # below it again: the block goes
        (5, False, 4, False),
    ],
)
async def test_a_refund_gives_back_exactly_one_attempt(
    sql_uow: SqlUnitOfWorkFactory,
    failures: int,
    blocked: bool,
    left: int | None,
    still_blocked: bool,
) -> None:
    """``ThrottleRepository.refund`` is ``ThrottlePolicy.refund`` in SQL."""
    until = NOW + H if blocked else None
    async with sql_uow(write=True) as tx:
        await tx.throttle.save("ip:1", failures, until, NOW)
        await tx.throttle.save("ip:2", 7, None, NOW)  # another key: untouched
        await tx.commit()
    async with sql_uow(write=True) as tx:
        await tx.throttle.refund("ip:1", threshold=2)
        await tx.throttle.refund("ip:3", threshold=2)  # no row: nothing happens
        await tx.commit()
    async with sql_uow() as tx:
        states = await tx.throttle.get(["ip:1", "ip:2", "ip:3"])
    assert states["ip:2"].failures == 7
    assert "ip:3" not in states
    if left is None:
        assert "ip:1" not in states
    else:
        assert states["ip:1"].failures == left
        assert states["ip:1"].updated_at == NOW
        assert states["ip:1"].blocked_until == (until if still_blocked else None)


@pytest.mark.parametrize(
    ("failures", "blocked", "left", "still_blocked"),
    [
        (1, False, 0, False),  # the attempt was the only one: a row of none, the purge's
        (3, True, 2, True),  # still at the threshold (2): the block stays
        (2, True, 1, False),  # below it again: the block goes
        (0, False, 0, False),  # nothing reserved: never below none
    ],
)
async def test_a_settled_success_forgets_the_account_and_refunds_the_address_in_one_go(
    sql_uow: SqlUnitOfWorkFactory,
    failures: int,
    blocked: bool,
    left: int,
    still_blocked: bool,
) -> None:
    """``ThrottleRepository.settle``: ``clear`` and ``ThrottlePolicy.refund`` in SQL, one
    statement; a row it leaves with no failures stays for the purge."""
    until = NOW + H if blocked else None
    async with sql_uow(write=True) as tx:
        await tx.throttle.save("account:a", 4, NOW + H, NOW)
        await tx.throttle.save("ip:1", failures, until, NOW)
        await tx.throttle.save("ip:2", 7, NOW + H, NOW)  # another key: untouched
        await tx.commit()
    async with sql_uow(write=True) as tx:
        await tx.throttle.settle("account:a", "ip:1", threshold=2)
        await tx.throttle.settle("account:b", "ip:3", threshold=2)  # no rows: nothing
        await tx.commit()
    async with sql_uow() as tx:
        states = await tx.throttle.get(["account:a", "account:b", "ip:1", "ip:2", "ip:3"])
    assert set(states) == {"account:a", "ip:1", "ip:2"}
    assert (states["account:a"].failures, states["account:a"].blocked_until) == (0, None)
    assert (states["ip:2"].failures, states["ip:2"].blocked_until) == (7, NOW + H)
    assert states["ip:1"].failures == left
    assert states["ip:1"].updated_at == NOW
    assert states["ip:1"].blocked_until == (until if still_blocked else None)


async def test_locked_rows_are_saved_together_each_with_its_own_state(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    """``lock`` creates missing rows and returns existing ones as they are; ``save_all``
    writes each key's own state (a block on one, none on the other) and no other row."""
    async with sql_uow(write=True) as tx:
        await tx.throttle.save("ip:1", 3, NOW + H, NOW)
        await tx.throttle.save("ip:9", 7, None, NOW)
        await tx.commit()
    later = NOW + 2 * H
    async with sql_uow(write=True) as tx:
        locked = await tx.throttle.lock(["ip:2", "ip:1", "ip:1"], later)
        assert locked == {
            "ip:1": ThrottleState(3, NOW + H, NOW),
            "ip:2": ThrottleState(0, None, later),
        }
        await tx.throttle.save_all(
            {"ip:1": ThrottleState(4, later + H, later), "ip:2": ThrottleState(1, None, later)}
        )
        await tx.commit()
    async with sql_uow() as tx:
        states = await tx.throttle.get(["ip:1", "ip:2", "ip:9"])
    assert states == {
        "ip:1": ThrottleState(4, later + H, later),
        "ip:2": ThrottleState(1, None, later),
        "ip:9": ThrottleState(7, None, NOW),
    }


async def test_retiring_a_token_revokes_its_row_or_records_it_revoked(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    live = await add_session(sql_uow, None, "d" * 64)
    async with sql_uow(write=True) as tx:
        await tx.sessions.retire_token("d" * 64, NOW + H, NOW + 2 * H)
        await tx.sessions.retire_token("e" * 64, NOW + H, NOW + 2 * H)  # no row yet
        await tx.sessions.retire_token("e" * 64, NOW + 2 * H, NOW + 3 * H)  # twice: no error
        await tx.commit()
    async with sql_uow() as tx:
        existing = await tx.sessions.find_by_token_hash("d" * 64)
        recorded = await tx.sessions.find_by_token_hash("e" * 64)
    assert existing is not None and existing[0].id == live
    assert existing[0].revoked_at == NOW + H
    assert recorded is not None and recorded[1] is None
    assert recorded[0].revoked_at == NOW + H  # the first retirement's time stays
    assert not recorded[0].is_live(NOW + H)


async def test_signing_out_checks_and_revokes_in_one_statement_and_names_the_user(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    user_id = await add_user(sql_uow)
    signed_in = await add_session(sql_uow, user_id, "a" * 64)
    anonymous = await add_session(sql_uow, None, "b" * 64)
    async with sql_uow(write=True) as tx:
        assert await tx.sessions.sign_out(signed_in, NOW, epoch=1) is None  # another epoch
        assert await tx.sessions.sign_out(signed_in, NOW + 2 * H, epoch=None) is None  # idle
        ended = await tx.sessions.sign_out(signed_in, NOW, epoch=0)
        again = await tx.sessions.sign_out(signed_in, NOW, epoch=None)
        anonymous_ended = await tx.sessions.sign_out(anonymous, NOW, epoch=None)
        await tx.commit()
    assert ended is not None and again is None
    session, name = ended
    assert (session.id, session.revoked_at, session.token_hash, name) == (
        signed_in,
        NOW,
        "a" * 64,
        "alice",
    )
    assert anonymous_ended is not None and anonymous_ended[1] == ""
    async with sql_uow() as tx:
        stored = await tx.sessions.get(signed_in)
    assert stored is not None and stored.revoked_at == NOW


async def test_a_cookie_handed_over_unless_taken_goes_to_the_first_session_only(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    user_id = await add_user(sql_uow)
    first = await add_session(sql_uow, user_id, "1" * 64)
    second = await add_session(sql_uow, user_id, "2" * 64)
    bound = "b" * 64
    async with sql_uow(write=True) as tx:
        assert await tx.sessions.set_token_hash(first, "f" * 64, replaced=bound, unless_taken=True)
        # Taken by the first: the second session is left exactly as it was.
        assert not await tx.sessions.set_token_hash(
            second, "s" * 64, replaced=bound, unless_taken=True
        )
        # The first rotates again from the same cookie: its own record does not count.
        assert await tx.sessions.set_token_hash(first, "g" * 64, replaced=bound, unless_taken=True)
        # Without ``unless_taken`` the cookie goes over regardless (a re-key, say).
        assert await tx.sessions.set_token_hash(second, "t" * 64, replaced=bound)
        await tx.commit()
    async with sql_uow() as tx:
        one = await tx.sessions.get(first)
        two = await tx.sessions.get(second)
    assert one is not None and (one.token_hash, one.signed_in_from) == ("g" * 64, bound)
    assert two is not None and (two.token_hash, two.signed_in_from) == ("t" * 64, bound)
