"""The mail outbox's sender: one per worker, delivering rows that the service wrote.

Invariants:
- A row is delivered by the one sender holding its claim: claims are leases taken by
  one conditional statement (``claim_due``; PostgreSQL skips rows another sender is
  claiming), so any number of workers and hosts deliver each mail once. A sender that
  stops mid-delivery (a crash, a restart) leaves its lease to run out; then another
  takes the row over. Only the claim's holder marks a row sent or failed.
- A failure (the server away, refused, timed out) is retried with back-off
  (``mail.backoff``): nothing is lost to an outage or a restart. A refusal the server
  calls permanent (a 5xx reply) is not retried.
- Neither a mail's content nor the SMTP password reaches a log line: the log names the
  row, its kind and the server's reply.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta
from email.message import EmailMessage
from typing import Protocol

from ..domain import Clock, StorageRefused, StorageUnavailable
from ..mail import QueuedMail, backoff, compose, message_id
from ..ports import UnitOfWorkFactory

log = logging.getLogger("authdemo.mail")

GIVE_UP_AFTER = 30
"""Attempts before a mail is left for ``purge-expired`` (about 2 hours of back-off)."""
NEVER = timedelta(days=3650)
"""The next attempt of a mail given up: after ``purge-expired`` removed it."""


class DeliveryFailed(Exception):
    """One attempt failed; ``permanent``: the server refused for good (5xx)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class MailTransport(Protocol):
    description: str
    """For the start-up line and logs: never a password."""

    async def send(self, message: EmailMessage) -> None:
        """Deliver, or raise ``DeliveryFailed``."""
        ...


def _stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when this task was asked to stop and something on the
    way swallowed the request (``Task.cancelling()`` still counts it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


class MailSender:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        transport: MailTransport,
        sender: str,
        clock: Clock,
        *,
        poll: float = 0.5,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self._uow = uow
        self._transport = transport
        self._sender = sender
        self._clock = clock
        self._poll = poll
        self._lease = lease
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A mail was just written here: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; the database away is waited out.

        A cancellation always ends it, even one that a library on the way answered as a
        failure (a database or SMTP error): the loop looks at the task's pending
        cancellation each time round, so a server's shutdown never waits on it."""
        pause = self._poll
        while True:
            _stop_if_cancelled()
            try:
                while await self.deliver_one():
                    pass
                pause = self._poll
            except (StorageUnavailable, StorageRefused):
                pause = min(30.0, max(pause * 2, 1.0))
                log.warning("mail outbox unreadable; next look in %.0f s", pause)
            self._wake.clear()
            try:
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def deliver_one(self) -> bool:
        """Claim one due mail and try it; False when none was due."""
        claim = secrets.token_hex(16)
        now = self._clock.now()
        async with self._uow() as tx:  # a read first: an idle outbox takes no write lock
            due = await tx.outbox.next_due()
        if due is None or due > now:
            return False
        async with self._uow(write=True) as tx:
            claimed = await tx.outbox.claim_due(now, self._lease, claim, 1)
            await tx.commit()
        if not claimed:
            return False
        (queued,) = claimed
        message = compose(
            queued.mail, self._sender, message_id(queued.id, queued.created_at, self._sender)
        )
        try:
            await self._transport.send(message)
        except DeliveryFailed as failure:
            # Stopping: the failure may be how the transport answered the cancellation.
            # The mail stays claimed until its lease ends, then is tried again.
            _stop_if_cancelled()
            await self._failed(queued, failure)
            return True
        async with self._uow(write=True) as tx:
            marked = await tx.outbox.mark_sent(queued.id, claim, self._clock.now())
            await tx.commit()
        if not marked:  # pragma: no cover - the lease ran out while sending: now said twice
            log.warning("mail %s (%s) sent after its lease ran out", queued.id, queued.mail.kind)
        log.info("mail %s (%s) sent, attempt %d", queued.id, queued.mail.kind, queued.attempts + 1)
        return True

    async def _failed(self, queued: QueuedMail, failure: DeliveryFailed) -> None:
        attempts = queued.attempts + 1
        now = self._clock.now()
        final = failure.permanent or attempts >= GIVE_UP_AFTER
        retry_at = now + (NEVER if final else backoff(attempts))
        async with self._uow(write=True) as tx:
            await tx.outbox.mark_failed(queued.id, queued.claim, str(failure), retry_at)
            await tx.commit()
        if final:
            log.error(
                "mail %s (%s) not sent, given up after %d attempt(s): %s",
                queued.id,
                queued.mail.kind,
                attempts,
                failure,
            )
        else:
            log.warning(
                "mail %s (%s) not sent (attempt %d): %s; next attempt in %d s",
                queued.id,
                queued.mail.kind,
                attempts,
                failure,
                (retry_at - now).total_seconds(),
            )
