"""Ending one chosen session on a real database (SQLite and PostgreSQL): the ownership
check is the statement's own WHERE clause, so another user's id changes nothing."""

from __future__ import annotations

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import AuditKind, ClientInfo
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.conftest import cheap_hasher

PASSWORD = "correct horse 1"
CLIENT = ClientInfo("203.0.113.7", "pytest")


async def sign_in(service: AuthService, username: str) -> tuple[str, int, int]:
    """A signed-in cookie, its session id and its user id."""
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), username, PASSWORD, CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    return token, result.signed_in.session.id, result.signed_in.user.id


async def test_ending_my_session_ends_only_that_one_and_audits_it(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", PASSWORD)
        _, here, alice = await sign_in(service, "alice")
        there_token, there, _ = await sign_in(service, "alice")
        kept_token, _, _ = await sign_in(service, "alice")

        assert await service.end_session(there, alice, acting=here, client=CLIENT)

        assert (await service.resolve(there_token)).signed_in is None
        assert (await service.resolve(kept_token)).signed_in is not None
        (latest, *_) = await service.audit_events("alice", 1)
        assert latest.kind is AuditKind.REVOKED and "ended by its user" in latest.detail


async def test_another_users_session_id_is_refused_and_changes_nothing(
    settings: Settings,
) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", PASSWORD)
        await service.create_user("mallory", PASSWORD)
        _, mine, mallory = await sign_in(service, "mallory")
        alice_token, alices, _ = await sign_in(service, "alice")
        before = await service.audit_events(None, 100)

        assert not await service.end_session(alices, mallory, acting=mine, client=CLIENT)

        assert (await service.resolve(alice_token)).signed_in is not None
        assert await service.audit_events(None, 100) == before
