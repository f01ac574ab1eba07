"""Two-factor sign-in on real databases (SQLite and PostgreSQL): the conditional writes
hold when requests race through two workers or hosts (two runtimes, two engines)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import AuditKind, CodeThrottled, InvalidCode, NotSignedIn, SecondStepExpired
from authdemo.events import EventKind
from authdemo.mfa import SecretBox, SecretUnreadable
from authdemo.ports import AccountRows
from authdemo.security import hash_token
from authdemo.service import AccountSnapshot, AuthService
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.gates import BeforeFirstWrite
from tests.support.mfa import (
    CLIENT,
    MFA_KEY,
    OTHER_KEY,
    PASSWORD,
    code_at,
    enrol,
    password_step,
    sign_in,
    sign_in_with_code,
)

STEP = timedelta(seconds=30)


@pytest.fixture
def mfa_settings(settings: Settings) -> Settings:
    return replace(settings, mfa_keys=(MFA_KEY,))


async def outcomes(*attempts: asyncio.Future[object] | object) -> list[object]:
    return await asyncio.gather(*attempts, return_exceptions=True)  # type: ignore[arg-type]


async def setup_alice(service: AuthService, clock: FakeClock) -> tuple[str, list[str]]:
    await service.create_user("alice", PASSWORD)
    secret, done = await enrol(service)
    clock.advance(STEP)
    return secret, done.recovery_codes


async def test_one_code_sent_through_two_workers_at_once_is_accepted_once(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with (
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one,
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as two,
    ):
        secret, _ = await setup_alice(one.service, clock)
        code = code_at(secret, clock.now())
        first = await password_step(one.service)
        second = await password_step(two.service)
        results = await outcomes(
            one.service.verify_second_factor(first[1], first[0], code, CLIENT),
            two.service.verify_second_factor(second[1], second[0], code, CLIENT),
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1, results
        assert isinstance(refused[0], InvalidCode)


async def test_a_recovery_code_spent_through_two_workers_at_once_works_once(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with (
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one,
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as two,
    ):
        _, codes = await setup_alice(one.service, clock)
        first = await password_step(one.service)
        second = await password_step(two.service)
        results = await outcomes(
            one.service.verify_second_factor(first[1], first[0], codes[3], CLIENT),
            two.service.verify_second_factor(second[1], second[0], codes[3], CLIENT),
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1, results
        assert isinstance(refused[0], InvalidCode)


async def test_one_challenge_sent_twice_at_once_signs_in_once_and_counts_no_failure(
    mfa_settings: Settings,
) -> None:
    # A double submit of the same form, the two requests on two workers.
    clock = FakeClock()
    async with (
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one,
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as two,
    ):
        secret, _ = await setup_alice(one.service, clock)
        cookie, challenge = await password_step(one.service)
        code = code_at(secret, clock.now())
        results = await outcomes(
            one.service.verify_second_factor(challenge, cookie, code, CLIENT),
            two.service.verify_second_factor(challenge, cookie, code, CLIENT),
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1, results
        assert isinstance(refused[0], SecondStepExpired)
        user = await one.service.get_user("alice")
        async with one.uow() as tx:
            counted = await tx.throttle.get([f"mfa:user:{user.id}"])
        assert all(state.failures == 0 for state in counted.values())


@pytest.mark.parametrize("what", ["step", "recovery code"])
async def test_the_conditional_write_refuses_the_second_of_two_overlapping_transactions(
    mfa_settings: Settings, what: str
) -> None:
    # Forced: the first transaction has written (not committed) when the second starts
    # on another engine; the second must see the first's commit and change nothing.
    clock = FakeClock()
    async with (
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one,
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as two,
    ):
        _, codes = await setup_alice(one.service, clock)
        user = await one.service.get_user("alice")
        digest = one.service._tokens.recovery_digest(user.id, codes[0].replace("-", ""))
        step = one.service.second_factor.current_step(clock.now()) + 1

        async def spend(tx: object) -> bool:
            repo = tx.mfa  # type: ignore[attr-defined]
            if what == "step":
                return bool(await repo.accept_step(user.id, step))
            return bool(await repo.spend_recovery_code(user.id, digest, clock.now()))

        async def second_worker() -> bool:
            async with two.uow(write=True) as tx:
                done = await spend(tx)
                await tx.commit()
                return done

        async with one.uow(write=True) as tx:
            assert await spend(tx)
            racer = asyncio.create_task(second_worker())
            await asyncio.sleep(0.2)  # let it reach the lock (the outcome never depends on it)
            await tx.commit()
        assert await racer is False


async def test_wrong_codes_on_one_worker_lock_the_second_step_on_the_other(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with (
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one,
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as two,
    ):
        secret, _ = await setup_alice(one.service, clock)
        right = code_at(secret, clock.now())
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        cookie, challenge = await password_step(one.service)
        for _ in range(4):
            with pytest.raises(InvalidCode):
                await one.service.verify_second_factor(challenge, cookie, wrong, CLIENT)
        with pytest.raises(CodeThrottled):
            await one.service.verify_second_factor(challenge, cookie, wrong, CLIENT)
        cookie, challenge = await password_step(two.service)
        with pytest.raises(CodeThrottled):
            await two.service.verify_second_factor(challenge, cookie, right, CLIENT)
        with pytest.raises(SecondStepExpired):  # the lock dropped this pending sign-in too
            await two.service.verify_second_factor(challenge, cookie, right, CLIENT)
        clock.advance(timedelta(minutes=15))
        cookie, challenge = await password_step(two.service)
        await two.service.verify_second_factor(
            challenge, cookie, code_at(secret, clock.now()), CLIENT
        )


async def test_a_replayed_code_is_refused_after_a_restart(mfa_settings: Settings) -> None:
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one:
        secret, _ = await setup_alice(one.service, clock)
        code = code_at(secret, clock.now())
        cookie, challenge = await password_step(one.service)
        await one.service.verify_second_factor(challenge, cookie, code, CLIENT)
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as again:
        cookie, challenge = await password_step(again.service)
        with pytest.raises(InvalidCode):
            await again.service.verify_second_factor(challenge, cookie, code, CLIENT)


async def test_the_database_holds_no_secret_code_or_recovery_code(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        secret, codes = await setup_alice(rt.service, clock)
        used = code_at(secret, clock.now())
        cookie, challenge = await password_step(rt.service)
        with pytest.raises(InvalidCode):
            await rt.service.verify_second_factor(challenge, cookie, "ZZZZ-ZZZZ-ZZZ0", CLIENT)
        await rt.service.verify_second_factor(challenge, cookie, used, CLIENT)
        cookie, challenge = await password_step(rt.service)
        await rt.service.verify_second_factor(challenge, cookie, codes[0], CLIENT)
        async with rt.engine.connect() as conn:
            user_id, sealed = (
                await conn.execute(text("SELECT user_id, sealed_secret FROM authdemo_user_mfa"))
            ).one()
            rows: list[str] = []
            for table in (
                "authdemo_user_mfa",
                "authdemo_mfa_recovery_codes",
                "authdemo_mfa_challenges",
                "authdemo_auth_events",
            ):
                result = await conn.execute(text(f"SELECT * FROM {table}"))
                rows.extend(repr(tuple(row)) for row in result)
    dump = "\n".join(rows)
    for value in [secret, *codes, *(c.replace("-", "") for c in codes), used]:
        assert value not in dump
    with pytest.raises(SecretUnreadable):
        SecretBox((OTHER_KEY,)).open(user_id, sealed)
    assert SecretBox((MFA_KEY,)).open(user_id, sealed) == secret


async def test_re_encrypting_under_a_new_key_keeps_codes_working(mfa_settings: Settings) -> None:
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        secret, _ = await setup_alice(rt.service, clock)
        assert await rt.service.reseal_mfa_secrets(SecretBox((OTHER_KEY,))) == (1, 0, 0)
        assert await rt.service.reseal_mfa_secrets(SecretBox((OTHER_KEY,))) == (0, 0, 0)
    rotated = replace(mfa_settings, mfa_keys=(OTHER_KEY,))
    async with runtime(rotated, clock=clock, hasher_factory=cheap_hasher) as rt:
        cookie, challenge = await password_step(rt.service)
        await rt.service.verify_second_factor(
            challenge, cookie, code_at(secret, clock.now()), CLIENT
        )
        async with rt.engine.connect() as conn:
            user_id, sealed = (
                await conn.execute(text("SELECT user_id, sealed_secret FROM authdemo_user_mfa"))
            ).one()
    with pytest.raises(SecretUnreadable):
        SecretBox((MFA_KEY,)).open(user_id, sealed)


async def test_new_recovery_codes_are_stored_dated_and_replace_the_old_ones(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        secret, old = await setup_alice(rt.service, clock)
        _, session_id = await sign_in_with_code(rt.service, clock, secret)
        clock.advance(STEP)
        new = await rt.service.regenerate_recovery_codes(
            session_id, PASSWORD, code_at(secret, clock.now()), CLIENT
        )
        async with rt.engine.connect() as conn:
            dated = (
                await conn.execute(text("SELECT created_at FROM authdemo_mfa_recovery_codes"))
            ).all()
        assert len(dated) == len(new) == 10 and all(row[0] is not None for row in dated)
        cookie, challenge = await password_step(rt.service)
        with pytest.raises(InvalidCode):
            await rt.service.verify_second_factor(challenge, cookie, old[0], CLIENT)
        cookie, challenge = await password_step(rt.service)
        await rt.service.verify_second_factor(challenge, cookie, new[0], CLIENT)


async def test_turning_2fa_off_on_one_worker_ends_the_users_sessions_on_the_other(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with (
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as one,
        runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as two,
    ):
        secret, _ = await setup_alice(one.service, clock)
        other_token, other = await sign_in_with_code(two.service, clock, secret)
        token, session_id = await sign_in_with_code(one.service, clock, secret)
        old_epoch = (await one.service.get_user("alice")).credential_epoch
        async with two.uow() as tx:
            cursor = await tx.broadcasts.position()
        clock.advance(STEP)
        done = await one.service.disable_mfa(
            session_id, PASSWORD, code_at(secret, clock.now()), hash_token(token), CLIENT
        )
        assert done.ended == 2  # the other worker's session, and the one that enrolled
        assert await two.service.current(other) is None  # in the database, at once
        assert (await one.service.resolve(token)).signed_in is None  # re-keyed
        # The other worker reads the revocation and the re-key from the outbox (its
        # follower's work: here by hand) ...
        async with two.uow() as tx:
            _, rows = await tx.broadcasts.changes(cursor)
        heard = {(e.kind, e.reason) for _, e in rows}
        assert (EventKind.REVOKED, "mfa_disabled") in heard
        assert (EventKind.REKEYED, "mfa_disabled") in heard
        assert any(other in e.session_ids for _, e in rows if e.kind is EventKind.REVOKED)
        # ... and once they are delivered there, that worker's cookie is signed out too
        # (its redemption had cached the row).
        for _, each in rows:
            two.events.deliver(each)
        assert (await two.service.resolve(other_token)).signed_in is None
        # A view still on the old epoch cannot act; the redeemed new cookie can.
        with pytest.raises(NotSignedIn):
            await two.service.revoke_other_sessions(
                session_id, CLIENT, hash_token(token), epoch=old_epoch
            )
        redeemed = await two.service.redeem_ticket(done.ticket, token)
        assert not (await two.service.mfa_status(redeemed.session.id)).enabled
        events = await one.service.audit_events("alice", 5)
        disabled = [e.detail for e in events if e.kind is AuditKind.MFA_DISABLED]
        assert disabled == ["with a code; 2 other session(s)"]


async def test_re_encrypting_never_overwrites_a_secret_set_up_again_since_it_was_read(
    mfa_settings: Settings,
) -> None:
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        await setup_alice(rt.service, clock)
        user = await rt.service.get_user("alice")
        again: list[str] = []

        async def set_up_again() -> None:  # between the read and the write, committed
            await rt.service.reset_mfa("alice")
            again.append((await enrol(rt.service))[0])

        rt.service._uow = BeforeFirstWrite(rt.uow, set_up_again)
        assert await rt.service.reseal_mfa_secrets(SecretBox((OTHER_KEY,))) == (0, 0, 1)
        async with rt.uow() as tx:
            record = await tx.mfa.get(user.id)
        assert record is not None
        assert SecretBox((MFA_KEY,)).open(user.id, record.sealed_secret) == again[0]
        assert await rt.service.reseal_mfa_secrets(SecretBox((OTHER_KEY,))) == (1, 0, 0)
    clock.advance(STEP)
    rotated = replace(mfa_settings, mfa_keys=(OTHER_KEY,))
    async with runtime(rotated, clock=clock, hasher_factory=cheap_hasher) as rt:
        cookie, challenge = await password_step(rt.service)
        await rt.service.verify_second_factor(
            challenge, cookie, code_at(again[0], clock.now()), CLIENT
        )


async def test_an_account_view_reads_its_sessions_and_two_factor_status_in_one_statement(
    mfa_settings: Settings,
) -> None:
    """``accounts_of`` on a real database: the session, its user, the user's live sessions
    only (another user's and ended ones not), two-factor off (no secret, or one still
    pending) or on with the unused recovery codes counted (another user's not); None for
    no session. The service refuses a session that may not act."""
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("bob", PASSWORD)
        _, bobs = await sign_in(service, "bob")
        async with rt.uow() as tx:
            found = (await tx.sessions.accounts_of([bobs], service.now())).get(bobs)
        assert found is not None and found.session.id == bobs and found.user.username == "bob"
        assert [s.id for s in found.sessions] == [bobs]
        assert (found.mfa_enabled, found.recovery_codes_left) == (False, 0)
        await service.start_enrolment(bobs, PASSWORD, CLIENT)  # pending: still off
        assert (await service.mfa_status(bobs)).enabled is False

        secret, codes = await setup_alice(service, clock)
        await enrol(service, "bob")  # bob's codes and sessions do not count for alice
        _, first_id = await sign_in_with_code(service, clock, secret)
        cookie, challenge = await password_step(service)
        second = await service.verify_second_factor(challenge, cookie, codes[0], CLIENT)
        second_id = second.signed_in.session.id
        snapshot = await service.account_snapshot(first_id)
        assert (snapshot.mfa.enabled, snapshot.mfa.recovery_codes_left) == (True, len(codes) - 1)
        alices = {s.id for s in snapshot.sessions}
        assert {first_id, second_id} <= alices and bobs not in alices
        assert all(s.user_id == snapshot.sessions[0].user_id for s in snapshot.sessions)
        await service.logout(second_id)
        assert second_id not in {s.id for s in (await service.account_snapshot(first_id)).sessions}
        async with rt.uow() as tx:
            ended = (await tx.sessions.accounts_of([second_id], service.now())).get(second_id)
            assert await tx.sessions.accounts_of([10_000], service.now()) == {}
        assert ended is not None and ended.session.id == second_id
        assert second_id not in {s.id for s in ended.sessions}
        with pytest.raises(NotSignedIn):
            await service.account_snapshot(second_id)
        async with rt.uow() as tx:  # read as of a time when every session has expired
            later = (
                await tx.sessions.accounts_of([first_id], service.now() + timedelta(days=400))
            ).get(first_id)
        assert later is not None and later.session.id == first_id and later.sessions == []


async def test_accounts_asked_together_are_read_in_one_statement_as_each_alone(
    mfa_settings: Settings,
) -> None:
    """``accounts_of`` for several sessions at once answers each as a read of it alone
    would (two users, an ended session asked beside live ones of its user, an id with no
    session), and the service reads the accounts of sessions asked at once in one
    statement after the first, which starts at once; an ended one is refused alone."""
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("bob", PASSWORD)
        bobs = [(await sign_in(service, "bob"))[1] for _ in range(3)]
        await service.logout(bobs[2])
        secret, codes = await setup_alice(service, clock)
        _, alices = await sign_in_with_code(service, clock, secret)
        asked = [*bobs, alices, 10_000]
        now = service.now()
        async with rt.uow() as tx:
            together = await tx.sessions.accounts_of(asked, now)
        alone: dict[int, AccountRows] = {}
        for session_id in asked:
            async with rt.uow() as tx:
                alone.update(await tx.sessions.accounts_of([session_id], now))
        assert together == alone
        assert set(together) == {*bobs, alices}
        assert [s.id for s in together[bobs[0]].sessions] == [bobs[1], bobs[0]]  # newest first
        assert together[bobs[2]].sessions == together[bobs[0]].sessions  # the ended one not
        assert together[alices].mfa_enabled and not together[bobs[0]].mfa_enabled
        assert together[alices].recovery_codes_left == len(codes)

        statements: list[str] = []

        def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: Any) -> None:
            if "authdemo_user_mfa" in sql:
                statements.append(sql)

        event.listen(rt.engine.sync_engine, "before_cursor_execute", record)
        try:
            answers = await asyncio.gather(
                *(service.account_snapshot(s) for s in [bobs[0], bobs[1], alices, bobs[2]]),
                return_exceptions=True,
            )
        finally:
            event.remove(rt.engine.sync_engine, "before_cursor_execute", record)
        assert len(statements) == 2
        first, second, alice, ended = answers
        assert isinstance(first, AccountSnapshot) and isinstance(second, AccountSnapshot)
        assert first.sessions == second.sessions == together[bobs[0]].sessions
        assert isinstance(alice, AccountSnapshot) and alice.mfa.enabled
        assert isinstance(ended, NotSignedIn)


async def test_a_sign_in_locks_its_user_and_reads_two_factor_in_one_statement(
    mfa_settings: Settings,
) -> None:
    """``lock_signing_in`` on a real database: the user's credentials and whether
    two-factor sign-in is on (off without a secret or with one still pending, on once
    confirmed; another user's secret does not count); None for no such user. On
    PostgreSQL the user's row is locked: a second lock waits for the first to end."""
    clock = FakeClock()
    async with runtime(mfa_settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        bob = await service.create_user("bob", PASSWORD)

        async def signing_in(user_id: int) -> tuple[str, bool] | None:
            async with rt.uow(write=True) as tx:
                found = await tx.users.lock_signing_in(user_id)
            return (found[0].user.username, found[1]) if found else None

        assert await signing_in(bob.id) == ("bob", False)
        _, bobs = await sign_in(service, "bob")
        await service.start_enrolment(bobs, PASSWORD, CLIENT)  # pending: still off
        assert await signing_in(bob.id) == ("bob", False)
        await setup_alice(service, clock)  # alice's secret is not bob's
        assert await signing_in(bob.id) == ("bob", False)
        alice = await service.get_user("alice")
        assert alice is not None and await signing_in(alice.id) == ("alice", True)
        assert await signing_in(10_000) is None

        if rt.engine.dialect.name != "postgresql":
            return
        async with rt.uow(write=True) as first:
            assert await first.users.lock_signing_in(bob.id) is not None
            second = asyncio.ensure_future(signing_in(bob.id))
            await asyncio.sleep(0.3)
            assert not second.done()  # waiting for the first's lock
        assert await asyncio.wait_for(second, 5) == ("bob", False)
