"""Maintenance: the token key, the audit trail, purging what can never be used again.

Invariants:
- The token key is generated once per deployment, by whichever process gets there
  first; every other one reads that same key (an insert that loses the race is ignored).
- Purging deletes only rows that no request can use again (expired sessions and
  tickets, delivered broadcasts, expired codes and limit windows, accounts made by
  sign-up and never verified in time, mails older than ``MAIL_RETENTION`` — whose codes
  expired long before —, throttle rows whose deletion changes no decision —
  ``ThrottlePolicy.forgotten``) and audit rows past their retention, in small
  transactions, so it is safe while the server runs and every table stays bounded.
"""

from __future__ import annotations

import asyncio
import logging

from ..domain import AuditEvent
from ..ports import UnitOfWork, UnitOfWorkFactory
from ..security import new_secret_key
from .core import BROADCAST_RETENTION, MAIL_RETENTION, PurgeReport, ServiceCore

log = logging.getLogger("authdemo.auth")

TOKEN_KEY_NAME = "session_token_key"  # noqa: S105 - a row name, not a secret


async def ensure_token_key(uow: UnitOfWorkFactory, configured: bytes | None) -> bytes:
    """The key that signs session tokens: configured, or generated once and kept in the DB."""
    if configured is not None:
        return configured
    async with uow() as tx:
        stored = await tx.secrets.get(TOKEN_KEY_NAME)
    if stored is None:
        async with uow(write=True) as tx:
            await tx.secrets.add(TOKEN_KEY_NAME, new_secret_key().hex())
            stored = await tx.secrets.get(TOKEN_KEY_NAME)
            await tx.commit()
    assert stored is not None
    return bytes.fromhex(stored)


class Maintenance(ServiceCore):
    async def audit_events(self, username: str | None, limit: int) -> list[AuditEvent]:
        user_id = (await self.get_user(username)).id if username is not None else None
        async with self._uow() as tx:
            return await tx.audit.list(user_id, limit)

    async def purge_expired(self, batch: int = 1000, pause: float = 0.0) -> PurgeReport:
        """Delete what can never be used again, in small transactions (safe while serving):
        dead sessions, old tickets, forgotten throttle rows, delivered broadcasts, audit
        rows older than the retention, unverified sign-ups past their time, expired codes
        and limit windows, and old mails."""
        now = self.now

        async def tickets(tx: UnitOfWork) -> int:
            return await tx.tickets.purge_expired(now(), batch)

        async def sessions(tx: UnitOfWork) -> int:
            return await tx.sessions.purge_expired(now(), batch)

        async def throttle_rows(tx: UnitOfWork) -> int:
            return await tx.throttle.purge(now() - self.throttle.forget_after, now(), batch)

        async def broadcasts(tx: UnitOfWork) -> int:
            return await tx.broadcasts.purge(now() - BROADCAST_RETENTION, batch)

        async def audit_events(tx: UnitOfWork) -> int:
            return await tx.audit.purge(now() - self.audit_retention, batch)

        async def mfa_pending(tx: UnitOfWork) -> int:
            return await tx.mfa.purge(now(), batch)

        async def unverified_accounts(tx: UnitOfWork) -> int:
            return await tx.emails.purge_unverified(now(), batch)

        async def email_codes(tx: UnitOfWork) -> int:
            return await tx.emails.purge_codes(now(), batch)

        async def rate_limits(tx: UnitOfWork) -> int:
            return await tx.limits.purge(now(), batch)

        async def mails(tx: UnitOfWork) -> int:
            return await tx.outbox.purge(now() - MAIL_RETENTION, batch)

        totals: dict[str, int] = {}
        for step in (
            tickets,
            sessions,
            throttle_rows,
            broadcasts,
            audit_events,
            mfa_pending,
            unverified_accounts,
            email_codes,
            rate_limits,
            mails,
        ):
            totals[step.__name__] = 0
            while True:
                async with self._uow(write=True) as tx:
                    deleted = await step(tx)
                    await tx.commit()
                totals[step.__name__] += deleted
                if deleted < batch:
                    break
                await asyncio.sleep(pause)  # let other writers in between batches
        log.info("purged %s", totals)
        return PurgeReport(**totals)
