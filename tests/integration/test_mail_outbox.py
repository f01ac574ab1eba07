"""The mail outbox against a real SMTP server (aiosmtpd, STARTTLS required, a self-signed
certificate, authentication), on SQLite and PostgreSQL: delivery, retries through an
outage and a restart of authdemo in between (exactly once), two senders (workers or
hosts) delivering each mail once, and permanent refusals."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from authdemo.bootstrap import Runtime, describe_mail, mail_sender, runtime
from authdemo.config import ConfigError, Settings
from authdemo.domain import ClientInfo, StorageUnavailable
from authdemo.service.outbox import DeliveryFailed, MailSender
from authdemo.smtp import ConsoleTransport, SmtpTransport, parse_smtp_url
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.smtp import SmtpServer

CLIENT = ClientInfo("203.0.113.7", "pytest")
PASSWORD = "correct horse 1"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def mail_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return replace(settings, smtp_url=smtp.url, mail_from="Accounts <noreply@example.org>")


@pytest.fixture
async def rt(settings: Settings, smtp: SmtpServer, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with runtime(
        mail_settings(settings, smtp), clock=clock, hasher_factory=cheap_hasher
    ) as started:
        started.service.email = replace(started.service.email, answer_floor=timedelta(0))
        yield started


def sender_of(rt: Runtime, settings: Settings, smtp: SmtpServer, clock: FakeClock) -> MailSender:
    sender = mail_sender(mail_settings(settings, smtp), rt, clock=clock)
    assert sender is not None
    return sender


async def ann(rt: Runtime) -> None:
    await rt.service.create_user_with_email("ann", PASSWORD, "ann@example.org")


async def wait_for(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_mail_goes_out_over_starttls_with_text_and_html_and_the_code_alone_on_a_line(
    rt: Runtime, settings: Settings, smtp: SmtpServer, clock: FakeClock
) -> None:
    await ann(rt)
    sender = sender_of(rt, settings, smtp, clock)
    task = asyncio.create_task(sender.run())
    try:
        submitted = time.monotonic()
        await rt.service.request_password_reset("ann@example.org", CLIENT)
        await wait_for(lambda: smtp.inbox)
    finally:
        task.cancel()
    (got,) = smtp.inbox
    took = got.at - submitted
    assert got.tls and got.authenticated
    assert got.recipients == ["ann@example.org"] and got.envelope_from == "noreply@example.org"
    message = got.message
    assert message["From"] == "Accounts <noreply@example.org>"
    assert message["Subject"] == "Your authdemo password reset code"
    assert message["Message-ID"].startswith("<authdemo.") and message["Message-ID"].endswith(
        "@example.org>"
    )
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    lines = text.get_content().splitlines()  # CRLF, as it travelled
    (code,) = [line for line in lines if re.fullmatch(r"\d{8}", line)]
    assert code in html.get_content()
    assert took < 2.0, f"{took:.3f} s from submit to received"
    print(f"submit to received: {took * 1000:.0f} ms")  # the closing figure


async def test_a_server_whose_certificate_is_not_trusted_gets_no_mail(
    rt: Runtime, settings: Settings, smtp: SmtpServer, clock: FakeClock
) -> None:
    await ann(rt)
    untrusted = replace(settings, smtp_url=smtp.url.replace(f"cafile={smtp.cert}&", ""))
    sender = mail_sender(untrusted, rt, clock=clock)
    assert sender is not None
    await rt.service.request_password_reset("ann@example.org", CLIENT)
    assert await sender.deliver_one()  # tried, and failed
    assert smtp.inbox == []
    async with rt.uow() as tx:
        assert await tx.outbox.pending() == 1
        assert await tx.outbox.next_due() == clock.now() + timedelta(seconds=2)


async def test_an_outage_and_a_restart_in_between_deliver_the_mail_exactly_once(
    settings: Settings, smtp: SmtpServer, clock: FakeClock
) -> None:
    config = mail_settings(settings, smtp)
    smtp.stop()  # the mail server is down
    async with runtime(config, clock=clock, hasher_factory=cheap_hasher) as first:
        first.service.email = replace(first.service.email, answer_floor=timedelta(0))
        await ann(first)
        await first.service.request_password_reset("ann@example.org", CLIENT)
        sender = sender_of(first, settings, smtp, clock)
        for _ in range(3):  # three attempts, each after its back-off
            assert await sender.deliver_one()
            assert not await sender.deliver_one()  # not due again yet
            clock.advance(timedelta(minutes=1))
    # authdemo restarts; the mail server comes back.
    smtp.start()
    async with runtime(config, clock=clock, hasher_factory=cheap_hasher) as second:
        senders = [sender_of(second, settings, smtp, clock) for _ in range(2)]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            await wait_for(lambda: smtp.inbox)
            await asyncio.sleep(1.5)  # both senders poll on: nothing more goes out
        finally:
            for task in tasks:
                task.cancel()
        async with second.uow() as tx:
            assert await tx.outbox.pending() == 0
    assert [r.recipients for r in smtp.inbox] == [["ann@example.org"]]


async def test_a_sender_that_stopped_mid_delivery_leaves_the_mail_to_another(
    rt: Runtime, settings: Settings, smtp: SmtpServer, clock: FakeClock
) -> None:
    await ann(rt)
    await rt.service.request_password_reset("ann@example.org", CLIENT)
    async with rt.uow(write=True) as tx:  # a sender claimed it, then its process died
        (_dead,) = await tx.outbox.claim_due(clock.now(), timedelta(minutes=2), "dead", 1)
        await tx.commit()
    other = sender_of(rt, settings, smtp, clock)
    assert not await other.deliver_one()  # the lease holds
    clock.advance(timedelta(minutes=2))
    assert await other.deliver_one()
    assert not await other.deliver_one()
    assert len(smtp.inbox) == 1


class AnswersCancelAsFailure:
    """A transport that, cancelled mid-send, says the delivery failed (as a library may
    turn a cancellation into its own error) instead of letting the cancellation go on."""

    description = "a transport that swallows cancellation"

    def __init__(self) -> None:
        self.sending = asyncio.Event()

    async def send(self, message: object) -> None:
        self.sending.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise DeliveryFailed("connection closed") from None


async def test_a_sender_stopped_mid_delivery_stops_even_if_its_transport_swallows_that(
    rt: Runtime, clock: FakeClock
) -> None:
    await ann(rt)
    await rt.service.request_password_reset("ann@example.org", CLIENT)
    transport = AnswersCancelAsFailure()
    sender = MailSender(rt.uow, transport, "noreply@example.org", clock, poll=0.05)
    task = asyncio.create_task(sender.run())
    await asyncio.wait_for(transport.sending.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done == {task} and task.cancelled()  # stopped, not looping on
    async with rt.uow() as tx:  # not counted as a failed attempt: left to its lease
        (claimed,) = await tx.outbox.claim_due(
            clock.now() + timedelta(minutes=3), timedelta(minutes=2), "next", 1
        )
    assert claimed.attempts == 0


async def test_a_sender_stopped_while_its_database_read_answers_that_as_an_outage_stops(
    rt: Runtime, clock: FakeClock
) -> None:
    reading = asyncio.Event()

    class SlowToRead:
        """A unit of work whose read, cancelled, reports the database as unavailable."""

        async def __aenter__(self) -> object:
            reading.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                raise StorageUnavailable() from None
            raise AssertionError("unreachable")

        async def __aexit__(self, *exc: object) -> None:
            return None

    sender = MailSender(
        lambda **_: SlowToRead(),  # type: ignore[arg-type, return-value]
        AnswersCancelAsFailure(),
        "noreply@example.org",
        clock,
        poll=0.05,
    )
    task = asyncio.create_task(sender.run())
    await asyncio.wait_for(reading.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done == {task} and task.cancelled()


async def test_two_workers_deliver_every_mail_once(
    rt: Runtime, settings: Settings, smtp: SmtpServer, clock: FakeClock
) -> None:
    for i in range(12):
        await rt.service.create_user_with_email(f"user{i}", PASSWORD, f"user{i}@example.org")
    clients = [ClientInfo(f"198.51.100.{i}", "pytest") for i in range(12)]
    async with runtime(
        mail_settings(settings, smtp), clock=clock, hasher_factory=cheap_hasher
    ) as two:
        senders = [sender_of(rt, settings, smtp, clock), sender_of(two, settings, smtp, clock)]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            for i, client in enumerate(clients):
                await rt.service.request_password_reset(f"user{i}@example.org", client)
            await wait_for(lambda: len(smtp.inbox) >= 12)
            await asyncio.sleep(1.0)
        finally:
            for task in tasks:
                task.cancel()
    ids = [r.message["Message-ID"] for r in smtp.inbox]
    assert len(ids) == 12 and len(set(ids)) == 12


async def test_a_permanent_refusal_is_not_retried(
    rt: Runtime, settings: Settings, smtp: SmtpServer, clock: FakeClock
) -> None:
    await ann(rt)
    smtp.handler.refuse = "550 5.1.1 no such mailbox"
    await rt.service.request_password_reset("ann@example.org", CLIENT)
    sender = sender_of(rt, settings, smtp, clock)
    assert await sender.deliver_one()
    clock.advance(timedelta(days=1))
    assert not await sender.deliver_one()


async def test_console_mail_is_labelled_as_the_demos() -> None:
    import io

    from authdemo.mail import OutgoingMail, compose

    out = io.StringIO()
    mail = OutgoingMail("a@example.org", "Your code", "Code:\n\n12345678\n", "<p>x</p>", "signup")
    await ConsoleTransport(out).send(compose(mail, "authdemo@localhost", "<x@localhost>"))
    printed = out.getvalue()
    assert "DEMO MAIL (not sent: no AUTHDEMO_SMTP_URL)" in printed
    assert "To: a@example.org" in printed and "\n12345678\n" in printed


def test_the_start_line_says_where_mail_goes_without_the_password() -> None:
    with_smtp = Settings(smtp_url="smtp://bob:hunter2@mail.example.org")
    assert describe_mail(with_smtp) == (
        "mail: sending through smtp://bob@mail.example.org:587 as authdemo@mail.example.org"
    )
    assert "printed here (demo only)" in describe_mail(Settings(mail_console=True))
    assert describe_mail(Settings()) == (
        "mail: AUTHDEMO_SMTP_URL is not set, so sign-up and password reset by e-mail "
        "are unavailable"
    )


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://host", "must start with smtp:// (STARTTLS) or smtps:// (implicit TLS)"),
        ("smtp://", "names no host"),
        ("smtps://h?starttls=off", "starttls is for smtp://"),
        ("smtp://h?timeout=0", "timeout must be more than 0"),
        ("smtp://h?tls=1", "unknown option 'tls'"),
    ],
)
def test_a_bad_smtp_url_is_refused_naming_the_variable(url: str, error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"AUTHDEMO_SMTP_URL": url})
    assert "AUTHDEMO_SMTP_URL" in str(refused.value) and error in str(refused.value)


def test_an_smtp_url_is_read_with_its_options() -> None:
    target = parse_smtp_url("X", "smtps://a%40b:p%3Aw@mail.example.org?timeout=7&cafile=/ca")
    assert (target.host, target.port, target.implicit_tls, target.starttls) == (
        "mail.example.org",
        465,
        True,
        False,
    )
    assert (target.username, target.password, target.timeout, target.cafile) == (
        "a@b",
        "p:w",
        7.0,
        "/ca",
    )
    assert "p:w" not in repr(target) and "p:w" not in target.shown
    assert SmtpTransport(target).description == "smtps://a@b@mail.example.org:465"
