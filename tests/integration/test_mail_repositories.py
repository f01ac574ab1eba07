"""Addresses, mailed codes, rate limits and the mail outbox on a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.mail import CodePurpose, EmailTaken, OutgoingMail

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
MAIL = OutgoingMail("ann@example.org", "Your code", "12345678\n", "<p>12345678</p>", "signup")


async def add_user(uow: SqlUnitOfWorkFactory, name: str) -> int:
    async with uow(write=True) as tx:
        user = await tx.users.add(name, name.casefold(), "hash", NOW)
        await tx.commit()
    return user.id


async def test_an_address_belongs_to_one_account_by_its_key(sql_uow: SqlUnitOfWorkFactory) -> None:
    ann, bob = await add_user(sql_uow, "ann"), await add_user(sql_uow, "bob")
    async with sql_uow(write=True) as tx:
        await tx.emails.set_email(ann, "Ann@example.org", "ann@example.org", NOW)
        with pytest.raises(EmailTaken):
            await tx.emails.set_email(bob, "ANN@example.org", "ann@example.org", NOW)
        # The refusal left the transaction usable, and the first address in place.
        found = await tx.emails.find_user("ann@example.org")
        await tx.commit()
    assert found is not None and found.id == ann
    assert found.email == "Ann@example.org" and found.email_verified_at == NOW


async def test_an_unverified_signup_is_verified_once_and_purged_when_it_is_not(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    kept, dropped = await add_user(sql_uow, "kept"), await add_user(sql_uow, "dropped")
    async with sql_uow(write=True) as tx:
        for user_id, name in ((kept, "kept"), (dropped, "dropped")):
            await tx.emails.set_email(
                user_id, f"{name}@x.org", f"{name}@x.org", None, signup_expires_at=NOW + MIN
            )
        assert await tx.emails.mark_verified(kept, NOW)
        assert not await tx.emails.mark_verified(kept, NOW)  # once
        assert await tx.emails.purge_unverified(NOW, 10) == 0  # not yet expired
        assert await tx.emails.purge_unverified(NOW + MIN, 10) == 1
        await tx.commit()
    async with sql_uow() as tx:
        assert await tx.users.get(dropped) is None
        user = await tx.users.get(kept)
    assert user is not None and not user.awaiting_verification and user.email_verified_at == NOW


async def test_a_new_code_replaces_the_old_one(sql_uow: SqlUnitOfWorkFactory) -> None:
    ann = await add_user(sql_uow, "ann")
    async with sql_uow(write=True) as tx:
        await tx.emails.put_code(
            ann, CodePurpose.RESET, "a@x.org", "a@x.org", "1" * 64, NOW, NOW + MIN
        )
        first = await tx.emails.get_code(ann, CodePurpose.RESET)
        await tx.emails.put_code(
            ann, CodePurpose.RESET, "a@x.org", "a@x.org", "2" * 64, NOW, NOW + MIN
        )
        second = await tx.emails.get_code(ann, CodePurpose.RESET)
        other = await tx.emails.get_code(ann, CodePurpose.VERIFY)
        await tx.commit()
    assert first is not None and second is not None and other is None
    assert second.code_digest == "2" * 64 and second.tries == 0
    async with sql_uow(write=True) as tx:
        assert not await tx.emails.spend_code(second.id, "1" * 64, NOW, 5)  # the old one is void


async def test_a_code_is_spent_once_and_not_after_its_tries_or_expiry(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    ann = await add_user(sql_uow, "ann")

    async def put() -> int:
        async with sql_uow(write=True) as tx:
            await tx.emails.put_code(
                ann, CodePurpose.VERIFY, "a@x.org", "a@x.org", "d" * 64, NOW, NOW + MIN
            )
            code = await tx.emails.get_code(ann, CodePurpose.VERIFY)
            await tx.commit()
        assert code is not None
        return code.id

    code_id = await put()
    async with sql_uow(write=True) as tx:
        assert not await tx.emails.spend_code(code_id, "d" * 64, NOW + MIN, 5)  # expired
        assert await tx.emails.spend_code(code_id, "d" * 64, NOW, 5)
        assert not await tx.emails.spend_code(code_id, "d" * 64, NOW, 5)  # once
        await tx.commit()
    code_id = await put()
    async with sql_uow(write=True) as tx:
        counts = [await tx.emails.count_wrong(code_id, 5) for _ in range(6)]
        assert not await tx.emails.spend_code(code_id, "d" * 64, NOW, 5)  # void after 5
        await tx.commit()
    assert counts == [1, 2, 3, 4, 5, None]


async def test_two_redemptions_of_one_code_at_once_have_one_winner(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    ann = await add_user(sql_uow, "ann")
    async with sql_uow(write=True) as tx:
        await tx.emails.put_code(
            ann, CodePurpose.VERIFY, "a@x.org", "a@x.org", "d" * 64, NOW, NOW + MIN
        )
        code = await tx.emails.get_code(ann, CodePurpose.VERIFY)
        await tx.commit()
    assert code is not None

    async def redeem() -> bool:
        async with sql_uow(write=True) as tx:
            won = await tx.emails.spend_code(code.id, "d" * 64, NOW, 5)
            await asyncio.sleep(0.05)  # both are inside their transactions now
            await tx.commit()
        return won

    assert sorted(await asyncio.gather(*(redeem() for _ in range(8)))) == [False] * 7 + [True]


async def test_a_limit_counts_in_fixed_windows(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        hits = [await tx.limits.hit("mail:a", NOW + i * MIN, 10 * MIN) for i in range(3)]
        again = await tx.limits.hit("mail:a", NOW + 10 * MIN, 10 * MIN)  # the window ended
        other = await tx.limits.hit("mail:b", NOW, 10 * MIN)
        assert await tx.limits.purge(NOW + 20 * MIN, 10) == 2
        await tx.commit()
    assert hits == [(1, NOW + 10 * MIN), (2, NOW + 10 * MIN), (3, NOW + 10 * MIN)]
    assert again == (1, NOW + 20 * MIN) and other == (1, NOW + 10 * MIN)


async def test_concurrent_hits_are_all_counted(sql_uow: SqlUnitOfWorkFactory) -> None:
    async def hit() -> int:
        async with sql_uow(write=True) as tx:
            count, _ = await tx.limits.hit("net:x", NOW, 10 * MIN)
            await tx.commit()
        return count

    assert sorted(await asyncio.gather(*(hit() for _ in range(40)))) == list(range(1, 41))


async def test_a_claimed_mail_is_not_claimed_again_until_its_lease_ends(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    async with sql_uow(write=True) as tx:
        await tx.outbox.add(MAIL, NOW)
        await tx.commit()
    async with sql_uow(write=True) as tx:
        first = await tx.outbox.claim_due(NOW, MIN, "one", 10)
        mail_id = first[0].id
        second = await tx.outbox.claim_due(NOW + MIN / 2, MIN, "two", 10)
        assert await tx.outbox.next_due() == NOW + MIN
        later = await tx.outbox.claim_due(NOW + MIN, MIN, "three", 10)  # the lease ran out
        assert not await tx.outbox.mark_sent(mail_id, "one", NOW)  # not its claim any more
        assert await tx.outbox.mark_sent(mail_id, "three", NOW + MIN)
        assert not await tx.outbox.mark_sent(mail_id, "three", NOW + MIN)
        assert await tx.outbox.claim_due(NOW + 9 * MIN, MIN, "four", 10) == []
        assert await tx.outbox.pending() == 0 and await tx.outbox.next_due() is None
        await tx.commit()
    assert [q.id for q in first] == [mail_id] and second == []
    assert [q.mail for q in later] == [MAIL]


async def test_a_failed_mail_waits_for_its_next_attempt(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        await tx.outbox.add(MAIL, NOW)
        (queued,) = await tx.outbox.claim_due(NOW, MIN, "one", 10)
        mail_id = queued.id
        assert await tx.outbox.mark_failed(mail_id, "one", "connection refused", NOW + 2 * MIN)
        assert await tx.outbox.claim_due(NOW + MIN, MIN, "two", 10) == []
        assert await tx.outbox.next_due() == NOW + 2 * MIN
        (again,) = await tx.outbox.claim_due(NOW + 2 * MIN, MIN, "two", 10)
        assert again.attempts == 1 and queued.attempts == 0
        assert await tx.outbox.purge(NOW + MIN, 10) == 1
        await tx.commit()
