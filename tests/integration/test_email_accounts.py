"""Accounts by e-mail on real databases (SQLite and PostgreSQL): sign-up and verification,
reset by mail, change of address, codes that work once, limits shared by two workers
(two runtimes, two engines), and answers that do not tell known addresses from unknown."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from authdemo.bootstrap import Runtime, runtime
from authdemo.config import Settings
from authdemo.domain import (
    AuditKind,
    ClientInfo,
    InvalidCode,
    InvalidCredentials,
    SecondFactorRequired,
)
from authdemo.events import EventKind, SessionEvent
from authdemo.mail import (
    CodePurpose,
    EmailCodeLocked,
    EmailNotVerified,
    MailThrottled,
    MailUnavailable,
    OutgoingMail,
    SignupClosed,
    WrongEmailCode,
)
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.mfa import MFA_KEY, PASSWORD, code_at, enrol

CLIENT = ClientInfo("203.0.113.7", "pytest")
NEW_PASSWORD = "battery staple 2"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def mail_settings(settings: Settings) -> Settings:
    return replace(settings, signup=True, mail_console=True, mfa_keys=(MFA_KEY,))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def rt(mail_settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with runtime(mail_settings, clock=clock, hasher_factory=cheap_hasher) as started:
        quick(started.service)
        yield started


def quick(service: AuthService) -> None:
    """No answer floor: the tests that are not about timing need not wait for it."""
    service.email = replace(service.email, answer_floor=timedelta(0))


async def new_mails(rt: Runtime) -> list[OutgoingMail]:
    """The mails written since the last call (read as a sender would claim them)."""
    async with rt.uow(write=True) as tx:
        claimed = await tx.outbox.claim_due(FAR, timedelta(seconds=1), "test", 1000)
        await tx.commit()
    return [queued.mail for queued in claimed]


def code_in(mail: OutgoingMail) -> str:
    (code,) = re.findall(r"^(\d{8})$", mail.text, re.MULTILINE)
    assert code in mail.html
    return code


async def signed_in(service: AuthService, ticket: str, cookie: str) -> str:
    """Redeem a sign-in's ticket with the cookie it was bound to; the new cookie's user."""
    token = (await service.redeem_ticket(ticket, cookie)).token
    resolved = await service.resolve(token)
    assert resolved.signed_in is not None
    return resolved.signed_in.user.username


async def sign_up(rt: Runtime, email: str = "Ann@Example.ORG", name: str = "ann") -> str:
    await rt.service.sign_up(email, name, PASSWORD, CLIENT)
    (mail,) = await new_mails(rt)
    assert mail.kind == "signup"
    return code_in(mail)


async def verified_ann(rt: Runtime) -> None:
    code = await sign_up(rt)
    cookie = rt.service.new_token()
    await rt.service.verify_email("ann@example.org", code, hash_token(cookie), CLIENT)


# --- sign-up ---------------------------------------------------------------------------------


async def test_a_sign_up_mails_a_code_that_verifies_the_address_and_signs_in(rt: Runtime) -> None:
    address = await rt.service.sign_up(" Ann@Example.ORG ", "Ann", PASSWORD, CLIENT)
    assert address == "Ann@example.org"
    (mail,) = await new_mails(rt)
    assert mail.recipient == "Ann@example.org" and mail.kind == "signup"
    code = code_in(mail)
    cookie = rt.service.new_token()
    result = await rt.service.verify_email("ann@EXAMPLE.org", code, hash_token(cookie), CLIENT)
    assert await signed_in(rt.service, result.ticket, cookie) == "Ann"
    user = await rt.service.get_user("ann")
    assert user.email == "Ann@example.org" and user.email_verified_at is not None
    assert not user.awaiting_verification
    kinds = [e.kind for e in await rt.service.audit_events("ann", 10)]
    assert AuditKind.SIGNUP in kinds and AuditKind.EMAIL_VERIFIED in kinds


async def test_an_unverified_account_cannot_sign_in_until_verified(rt: Runtime) -> None:
    code = await sign_up(rt)
    cookie = rt.service.new_token()
    with pytest.raises(EmailNotVerified) as refused:
        await rt.service.login(hash_token(cookie), "ann", PASSWORD, CLIENT)
    assert refused.value.email == "Ann@example.org"
    with pytest.raises(InvalidCredentials):  # a wrong password says nothing about it
        await rt.service.login(hash_token(cookie), "ann", "wrong password", CLIENT)
    await rt.service.resend_verification("ann@example.org", CLIENT)  # "send a new code"
    (mail,) = await new_mails(rt)
    with pytest.raises(WrongEmailCode):  # the new code voided the first one
        await rt.service.verify_email("ann@example.org", code, hash_token(cookie), CLIENT)
    await rt.service.verify_email("ann@example.org", code_in(mail), hash_token(cookie), CLIENT)
    result = await rt.service.login(hash_token(cookie), "ann", PASSWORD, CLIENT)
    assert result.signed_in.user.username == "ann"


async def test_a_taken_address_or_name_gets_the_same_answer_and_a_mail_that_says_so(
    rt: Runtime,
) -> None:
    await verified_ann(rt)
    answers = [
        await rt.service.sign_up("ann@example.org", "someone", PASSWORD, CLIENT),
        await rt.service.sign_up("bob@example.org", "ANN", PASSWORD, CLIENT),
        await rt.service.sign_up("cat@example.org", "cat", PASSWORD, CLIENT),
    ]
    assert answers == ["ann@example.org", "bob@example.org", "cat@example.org"]
    mails = await new_mails(rt)
    assert [(m.recipient, m.kind) for m in mails] == [
        ("ann@example.org", "signup-taken"),
        ("bob@example.org", "signup-name-taken"),
        ("cat@example.org", "signup"),
    ]
    assert not re.search(r"^\d{8}$", mails[0].text + mails[1].text, re.MULTILINE)
    assert [s.user.username for s in await rt.service.list_users()] == ["ann", "cat"]


async def test_a_new_sign_up_with_an_unverified_address_replaces_the_old_one(
    rt: Runtime,
) -> None:
    first = await sign_up(rt, "ann@example.org", "squatter")
    second = await sign_up(rt, "ann@example.org", "ann")
    cookie = hash_token(rt.service.new_token())
    with pytest.raises(WrongEmailCode):  # the first sign-up is gone with its code
        await rt.service.verify_email("ann@example.org", first, cookie, CLIENT)
    await rt.service.verify_email("ann@example.org", second, cookie, CLIENT)
    assert [s.user.username for s in await rt.service.list_users()] == ["ann"]


async def test_sign_up_is_closed_by_default_and_needs_mail(
    settings: Settings, clock: FakeClock
) -> None:
    async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as closed:
        with pytest.raises(SignupClosed):
            await closed.service.sign_up("a@example.org", "ann", PASSWORD, CLIENT)
        with pytest.raises(MailUnavailable):
            await closed.service.request_password_reset("a@example.org", CLIENT)
    opened = replace(settings, signup=True)  # open, but no way to send mail
    async with runtime(opened, clock=clock, hasher_factory=cheap_hasher) as no_mail:
        with pytest.raises(MailUnavailable):
            await no_mail.service.sign_up("a@example.org", "ann", PASSWORD, CLIENT)


async def test_unverified_sign_ups_are_purged_after_a_day(rt: Runtime, clock: FakeClock) -> None:
    await sign_up(rt)
    clock.advance(timedelta(hours=23))
    early = await rt.service.purge_expired()
    assert early.unverified_accounts == 0 and early.email_codes == 1 and early.rate_limits == 3
    clock.advance(timedelta(hours=1, seconds=1))
    report = await rt.service.purge_expired()
    assert report.unverified_accounts == 1 and report.mails == 1
    assert await rt.service.list_users() == []
    await sign_up(rt)  # the address and the name are free again


# --- codes -----------------------------------------------------------------------------------


async def test_a_code_expires_after_15_minutes(rt: Runtime, clock: FakeClock) -> None:
    code = await sign_up(rt)
    clock.advance(timedelta(minutes=15))
    with pytest.raises(WrongEmailCode):
        await rt.service.verify_email("ann@example.org", code, hash_token("c" * 43), CLIENT)


async def test_a_code_works_once(rt: Runtime) -> None:
    code = await sign_up(rt)
    cookie = hash_token(rt.service.new_token())
    await rt.service.verify_email("ann@example.org", code, cookie, CLIENT)
    with pytest.raises(WrongEmailCode):
        await rt.service.verify_email("ann@example.org", code, cookie, CLIENT)


async def test_five_wrong_codes_void_the_code(rt: Runtime) -> None:
    code = await sign_up(rt)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    cookie = hash_token(rt.service.new_token())
    for _ in range(4):
        with pytest.raises(WrongEmailCode) as refused:
            await rt.service.verify_email("ann@example.org", wrong, cookie, CLIENT)
        assert not isinstance(refused.value, EmailCodeLocked)
    with pytest.raises(EmailCodeLocked):
        await rt.service.verify_email("ann@example.org", wrong, cookie, CLIENT)
    with pytest.raises(WrongEmailCode):  # the right one no longer works either
        await rt.service.verify_email("ann@example.org", code, cookie, CLIENT)
    events = await rt.service.audit_events("ann", 20)
    assert sum(e.kind == AuditKind.EMAIL_CODE_FAILED for e in events) == 6


async def test_one_code_redeemed_through_two_workers_at_once_signs_in_once(
    rt: Runtime, mail_settings: Settings, clock: FakeClock
) -> None:
    code = await sign_up(rt)
    async with runtime(mail_settings, clock=clock, hasher_factory=cheap_hasher) as two:
        cookies = [rt.service.new_token(), two.service.new_token()]
        results = await asyncio.gather(
            *(
                worker.service.verify_email("ann@example.org", code, hash_token(c), CLIENT)
                for worker, c in zip((rt, two), cookies, strict=True)
            ),
            return_exceptions=True,
        )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert all(isinstance(r, WrongEmailCode) for r in results if r not in wins)
    assert len(await rt.service.live_sessions("ann")) == 1
    async with rt.uow() as tx:
        user = await tx.emails.find_user("ann@example.org")
        assert user is not None
        assert await tx.emails.get_code(user.id, CodePurpose.VERIFY) is None


# --- password reset --------------------------------------------------------------------------


async def test_a_reset_ends_every_session_and_signs_this_browser_in(rt: Runtime) -> None:
    await verified_ann(rt)
    await new_mails(rt)
    other = rt.service.new_token()
    old = await rt.service.login(hash_token(other), "ann", PASSWORD, CLIENT)
    old_cookie = (await rt.service.redeem_ticket(old.ticket, other)).token
    heard: list[SessionEvent] = []

    def listener(event: SessionEvent) -> None:
        heard.append(event)

    rt.events.subscribe(old.signed_in.session.id, listener)  # an open view of that session
    await rt.service.request_password_reset("ANN@example.org", CLIENT)
    (mail,) = await new_mails(rt)
    assert mail.kind == "reset" and mail.recipient == "Ann@example.org"
    cookie = rt.service.new_token()
    result = await rt.service.reset_password(
        "ann@example.org", code_in(mail), NEW_PASSWORD, hash_token(cookie), CLIENT
    )
    assert await signed_in(rt.service, result.ticket, cookie) == "ann"
    assert (await rt.service.resolve(old_cookie)).signed_in is None
    assert [(e.kind, e.reason) for e in heard] == [(EventKind.REVOKED, "password_changed")]
    with pytest.raises(InvalidCredentials):
        await rt.service.login(hash_token(other), "ann", PASSWORD, CLIENT)
    await rt.service.login(hash_token(other), "ann", NEW_PASSWORD, CLIENT)
    (notice,) = await new_mails(rt)
    assert notice.kind == "reset-done"
    assert AuditKind.PASSWORD_RESET in [e.kind for e in await rt.service.audit_events("ann", 20)]


async def test_an_unknown_address_gets_the_same_answer_and_no_code(rt: Runtime) -> None:
    await verified_ann(rt)
    await new_mails(rt)
    known = await rt.service.request_password_reset("ann@example.org", CLIENT)
    unknown = await rt.service.request_password_reset("nobody@example.org", CLIENT)
    assert known is None and unknown is None
    first, second = await new_mails(rt)
    assert (first.kind, second.kind) == ("reset", "reset-unknown")
    assert second.recipient == "nobody@example.org"
    assert not re.search(r"^\d{8}$", second.text, re.MULTILINE)
    with pytest.raises(WrongEmailCode):
        await rt.service.reset_password(
            "nobody@example.org", code_in(first), NEW_PASSWORD, hash_token("c" * 43), CLIENT
        )


async def test_a_reset_of_a_two_factor_user_needs_a_code_too(rt: Runtime, clock: FakeClock) -> None:
    await verified_ann(rt)
    secret, _ = await enrol(rt.service, "ann")
    clock.advance(timedelta(seconds=30))
    await rt.service.request_password_reset("ann@example.org", CLIENT)
    code = code_in((await new_mails(rt))[-1])
    cookie = hash_token(rt.service.new_token())
    with pytest.raises(SecondFactorRequired):
        await rt.service.reset_password("ann@example.org", code, NEW_PASSWORD, cookie, CLIENT)
    with pytest.raises(InvalidCode):
        await rt.service.reset_password(
            "ann@example.org", code, NEW_PASSWORD, cookie, CLIENT, second_factor="000000"
        )
    result = await rt.service.reset_password(
        "ann@example.org",
        code,
        NEW_PASSWORD,
        cookie,
        CLIENT,
        second_factor=code_at(secret, clock.now()),
    )
    assert result.signed_in.user.username == "ann"


# --- change of address -----------------------------------------------------------------------


async def test_a_new_address_is_confirmed_by_its_code_and_the_old_one_told(rt: Runtime) -> None:
    await verified_ann(rt)
    await new_mails(rt)
    cookie = rt.service.new_token()
    login = await rt.service.login(hash_token(cookie), "ann", PASSWORD, CLIENT)
    session_id = login.signed_in.session.id
    assert await rt.service.request_email_change(session_id, "Ann@New.org", CLIENT) == (
        "Ann@new.org"
    )
    (mail,) = await new_mails(rt)
    assert (mail.recipient, mail.kind) == ("Ann@new.org", "change")
    assert (await rt.service.get_user("ann")).email == "Ann@example.org"  # not before the code
    user = await rt.service.confirm_email_change(session_id, code_in(mail), CLIENT)
    assert user.email == "Ann@new.org"
    (notice,) = await new_mails(rt)
    assert (notice.recipient, notice.kind) == ("Ann@example.org", "changed")
    assert await rt.service.find_user_by_email("ann@new.org") is not None
    assert await rt.service.find_user_by_email("ann@example.org") is None


async def test_asking_for_an_address_another_account_has_changes_nothing(rt: Runtime) -> None:
    await verified_ann(rt)
    await rt.service.create_user_with_email("bob", PASSWORD, "bob@example.org")
    await new_mails(rt)
    cookie = rt.service.new_token()
    login = await rt.service.login(hash_token(cookie), "bob", PASSWORD, CLIENT)
    assert await rt.service.request_email_change(
        login.signed_in.session.id, "ann@example.org", CLIENT
    ) == ("ann@example.org")
    (mail,) = await new_mails(rt)
    assert (mail.recipient, mail.kind) == ("ann@example.org", "change-taken")
    with pytest.raises(WrongEmailCode):
        await rt.service.confirm_email_change(login.signed_in.session.id, "12345678", CLIENT)


# --- limits and enumeration ------------------------------------------------------------------


async def test_limits_hold_under_40_concurrent_requests_on_two_workers(
    rt: Runtime, mail_settings: Settings, clock: FakeClock
) -> None:
    async with runtime(mail_settings, clock=clock, hasher_factory=cheap_hasher) as two:
        quick(two.service)
        results = await asyncio.gather(
            *(
                (rt, two)[i % 2].service.request_password_reset(f"u{i}@example.org", CLIENT)
                for i in range(40)
            ),
            return_exceptions=True,
        )
    refused = [r for r in results if isinstance(r, MailThrottled)]
    assert len(refused) == 40 - rt.service.email.mails_per_network, results
    assert all(r is None for r in results if r not in refused)
    assert len(await new_mails(rt)) == rt.service.email.mails_per_network
    assert "Too many requests from here. Try again in" in str(refused[0])
    events = await rt.service.audit_events(None, 100)
    assert sum(e.kind == AuditKind.MAIL_THROTTLED for e in events) == len(refused)


async def test_one_address_gets_at_most_five_mails_an_hour(rt: Runtime, clock: FakeClock) -> None:
    await verified_ann(rt)
    others = [ClientInfo(f"198.51.100.{i}", "pytest") for i in range(10)]
    results = []
    for client in others:
        try:
            await rt.service.request_password_reset("ann@example.org", client)
            results.append("sent")
        except MailThrottled:
            results.append("refused")
    assert results == ["sent"] * 4 + ["refused"] * 6  # the sign-up's code was the first
    clock.advance(timedelta(hours=1))
    await rt.service.request_password_reset("ann@example.org", others[0])


async def test_known_and_unknown_addresses_take_the_same_time(rt: Runtime) -> None:
    await verified_ann(rt)
    rt.service.email = replace(rt.service.email, answer_floor=timedelta(milliseconds=200))
    clients = iter(ClientInfo(f"198.51.100.{i}", "pytest") for i in range(100))

    async def timed(address: str) -> float:
        started = time.perf_counter()
        await rt.service.request_password_reset(address, next(clients))
        return time.perf_counter() - started

    known, unknown = [], []
    for i in range(4):  # the address's own limit allows 4 more mails
        known.append(await timed("ann@example.org"))
        unknown.append(await timed(f"nobody{i}@example.org"))
    difference = statistics.median(known) - statistics.median(unknown)
    print(  # the closing figure (run with -s)
        f"median answer: known {statistics.median(known) * 1000:.1f} ms, unknown "
        f"{statistics.median(unknown) * 1000:.1f} ms, difference {difference * 1000:+.1f} ms"
    )
    assert min(known + unknown) >= 0.2
    assert abs(difference) < 0.05, (known, unknown)


async def test_a_wrong_sign_up_code_answers_as_slowly_for_an_unknown_address(rt: Runtime) -> None:
    """The code step does not tell whether a sign-up waits for an address: a wrong code
    for it and a code for an address nobody signed up with get the same refusal, no
    sooner than the answer floor."""
    await sign_up(rt)  # ann@example.org waits for her code
    rt.service.email = replace(rt.service.email, answer_floor=timedelta(milliseconds=200))
    cookie = hash_token(rt.service.new_token())

    async def timed(address: str) -> tuple[float, str]:
        started = time.perf_counter()
        with pytest.raises(WrongEmailCode) as refused:
            await rt.service.verify_email(address, "00000000", cookie, CLIENT)
        return time.perf_counter() - started, str(refused.value)

    pending = [await timed("ann@example.org") for _ in range(2)]
    unknown = [await timed(f"nobody{i}@example.org") for i in range(2)]
    assert min(t for t, _ in pending + unknown) >= 0.2
    assert {words for _, words in pending} == {words for _, words in unknown}
