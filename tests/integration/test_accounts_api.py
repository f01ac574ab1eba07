"""``authdemo.Accounts``, the account API for an app's own code, on a real database.

Each operation is checked for its result, its audit row, and its live effect: what
ends sessions is written to the broadcast outbox, and a server's follower (here one
beside the test, as every worker has) delivers it to that server's open views.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest

from authdemo import (
    Accounts,
    AuditKind,
    InvalidCredentials,
    InvalidPassword,
    InvalidUsername,
    MfaStateConflict,
    NotSignedIn,
    UnknownSession,
    UnknownUser,
    UsernameTaken,
)
from authdemo.bootstrap import Runtime, runtime
from authdemo.broadcast import BroadcastFollower
from authdemo.config import Settings
from authdemo.events import EventKind, SessionEvent
from authdemo.security import hash_token
from tests.conftest import cheap_hasher
from tests.support.mfa import CLIENT, MFA_KEY, PASSWORD, enrol

NEW_PASSWORD = "battery staple"


@dataclass
class Server:
    """A running server's side: its service, and what its follower delivers."""

    rt: Runtime
    follower: BroadcastFollower
    heard: list[SessionEvent]

    async def sign_in(self, username: str = "alice", password: str = PASSWORD) -> int:
        """A signed-in session (as a browser gets one); its id."""
        service = self.rt.service
        anonymous = service.new_token()
        result = await service.login(hash_token(anonymous), username, password, CLIENT)
        await service.redeem_ticket(result.ticket, anonymous)
        return result.signed_in.session.id

    async def may_act(self, session_id: int) -> bool:
        return await self.rt.service.current(session_id) is not None

    async def revoked_live(self) -> set[int]:
        """The sessions this server's open views hear are revoked, from the outbox."""
        await self.follower.poll()
        return {i for e in self.heard if e.kind is EventKind.REVOKED for i in e.session_ids}


@pytest.fixture
def mfa_settings(settings: Settings) -> Settings:
    return replace(settings, mfa_keys=(MFA_KEY,))


@asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        heard: list[SessionEvent] = []
        rt.events.subscribe_all(heard.append)
        follower = BroadcastFollower(rt.uow, rt.events)
        await follower.start_position()
        yield Server(rt, follower, heard)


@asynccontextmanager
async def accounts(settings: Settings) -> AsyncIterator[Accounts]:
    """Another process's accounts (a script's, an admin's)."""
    async with Accounts.open(settings, hasher_factory=cheap_hasher) as opened:
        yield opened


async def alice_and_bob(acc: Accounts) -> None:
    await acc.create_user("alice", PASSWORD)
    await acc.create_user("bob", PASSWORD)


async def last_event(acc: Accounts, username: str | None = None) -> tuple[str, str, str, str]:
    (event,) = await acc.events(username, limit=1)
    return event.kind, event.username, event.client_addr, event.detail


# --- users ----------------------------------------------------------------------------------


async def test_create_user_returns_the_user_who_can_sign_in_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        user = await acc.create_user("Alice", PASSWORD)
        assert (user.username, user.is_active) == ("Alice", True)
        assert await acc.get_user("ALICE") == user
        assert await last_event(acc, "alice") == (AuditKind.USER_CREATED, "Alice", "cli", "")
        assert await srv.may_act(await srv.sign_in("alice"))


async def test_create_user_refuses_a_taken_name_a_bad_name_and_a_bad_password(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc:
        await acc.create_user("alice", PASSWORD)
        with pytest.raises(UsernameTaken):
            await acc.create_user("ALICE", PASSWORD)
        with pytest.raises(InvalidUsername):
            await acc.create_user("al ice", PASSWORD)
        with pytest.raises(InvalidPassword):
            await acc.create_user("bob", "short")
        assert [s.user.username for s in await acc.list_users()] == ["alice"]


async def test_an_unknown_user_is_refused_by_every_operation_on_a_user(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc:
        for call in (
            acc.get_user("ghost"),
            acc.set_password("ghost", NEW_PASSWORD),
            acc.disable_user("ghost"),
            acc.enable_user("ghost"),
            acc.revoke_sessions("ghost"),
            acc.reset_two_factor("ghost"),
            acc.sessions("ghost"),
            acc.events("ghost"),
        ):
            with pytest.raises(UnknownUser, match="no user named 'ghost'"):
                await call


async def test_set_password_ends_every_session_of_the_user_live_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        ended = {await srv.sign_in(), await srv.sign_in()}
        bobs = await srv.sign_in("bob")
        assert await acc.set_password("ALICE", NEW_PASSWORD) == 2
        assert await last_event(acc, "alice") == (
            AuditKind.PASSWORD_CHANGED,
            "alice",
            "cli",
            "by operator",
        )
        assert await srv.revoked_live() == ended
        assert not any([await srv.may_act(i) for i in ended]) and await srv.may_act(bobs)
        with pytest.raises(InvalidCredentials):
            await srv.sign_in("alice", PASSWORD)
        await srv.sign_in("alice", NEW_PASSWORD)


async def test_set_password_refuses_a_password_outside_the_policy_and_changes_nothing(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await acc.create_user("alice", PASSWORD)
        session = await srv.sign_in()
        with pytest.raises(InvalidPassword):
            await acc.set_password("alice", "short")
        assert await srv.may_act(session)
        assert await srv.revoked_live() == set()


async def test_disable_user_ends_the_users_sessions_live_refuses_sign_ins_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        session = await srv.sign_in()
        bobs = await srv.sign_in("bob")
        assert await acc.disable_user("alice") == 1
        assert await last_event(acc, "alice") == (
            AuditKind.USER_DISABLED,
            "alice",
            "cli",
            "by operator",
        )
        assert await srv.revoked_live() == {session}
        assert not await srv.may_act(session) and await srv.may_act(bobs)
        assert not (await acc.get_user("alice")).is_active
        with pytest.raises(InvalidCredentials):
            await srv.sign_in()


async def test_enable_user_lets_the_user_sign_in_again_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await acc.create_user("alice", PASSWORD)
        ended = await srv.sign_in()
        await acc.disable_user("alice")
        assert await acc.enable_user("alice") is None
        assert await last_event(acc, "alice") == (
            AuditKind.USER_ENABLED,
            "alice",
            "cli",
            "by operator",
        )
        assert (await acc.get_user("alice")).is_active
        assert not await srv.may_act(ended)  # what disabling ended stays ended
        assert await srv.may_act(await srv.sign_in())


async def test_reset_two_factor_removes_it_ends_every_session_live_and_is_audited(
    mfa_settings: Settings,
) -> None:
    async with accounts(mfa_settings) as acc, server(mfa_settings) as srv:
        await acc.create_user("alice", PASSWORD)
        await enrol(srv.rt.service)
        (summary,) = await acc.list_users()
        assert summary.mfa and summary.live_sessions == 1
        (session,) = await acc.sessions("alice")
        await srv.follower.poll()
        srv.heard.clear()  # what enrolment broadcast
        assert await acc.reset_two_factor("alice") == 1
        assert await last_event(acc, "alice") == (
            AuditKind.MFA_RESET,
            "alice",
            "cli",
            "by operator; 1 session(s) ended",
        )
        assert await srv.revoked_live() == {session.session.id}
        assert not (await acc.list_users())[0].mfa
        assert await srv.may_act(await srv.sign_in())  # the password alone signs in


async def test_reset_two_factor_of_a_user_without_it_is_refused(settings: Settings) -> None:
    async with accounts(settings) as acc:
        await acc.create_user("alice", PASSWORD)
        with pytest.raises(MfaStateConflict, match="has no two-factor sign-in"):
            await acc.reset_two_factor("alice")


async def test_list_users_counts_live_sessions_by_name(settings: Settings) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        assert await acc.list_users() == []
        await acc.create_user("bob", PASSWORD)
        await acc.create_user("Alice", PASSWORD)
        await srv.sign_in("bob")
        await srv.sign_in("bob")
        await acc.disable_user("alice")
        summaries = await acc.list_users()
        assert [(s.user.username, s.user.is_active, s.live_sessions, s.mfa) for s in summaries] == [
            ("Alice", False, 0, False),
            ("bob", True, 2, False),
        ]


# --- sessions -------------------------------------------------------------------------------


async def test_sessions_lists_live_signed_in_sessions_of_one_user_or_everyone(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        alices = await srv.sign_in()
        bobs = await srv.sign_in("bob")
        await srv.rt.service.logout(await srv.sign_in("bob"))
        mine = await acc.sessions("ALICE")
        assert [(s.session.id, s.user.username) for s in mine] == [(alices, "alice")]
        assert {s.session.id for s in await acc.sessions()} == {alices, bobs}


async def test_revoke_sessions_ends_every_session_of_the_user_live_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        ended = {await srv.sign_in(), await srv.sign_in()}
        bobs = await srv.sign_in("bob")
        assert await acc.revoke_sessions("alice") == 2
        assert await srv.revoked_live() == ended
        assert await acc.sessions("alice") == [] and await srv.may_act(bobs)
        assert await last_event(acc, "alice") == (
            AuditKind.REVOKED,
            "alice",
            "cli",
            "2 session(s) by operator",
        )
        assert await acc.revoke_sessions("alice") == 0


async def test_end_session_ends_that_one_session_of_the_user_live_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await acc.create_user("alice", PASSWORD)
        alice = await acc.get_user("alice")
        target, other = await srv.sign_in(), await srv.sign_in()
        ended = await acc.end_session(target, user_id=alice.id)
        assert (ended.id, ended.user_id) == (target, alice.id)
        assert ended.revoked_at is not None
        assert await srv.revoked_live() == {target}
        assert not await srv.may_act(target) and await srv.may_act(other)
        (event,) = await acc.events("alice", limit=1)
        assert (event.kind, event.session, event.client_addr, event.detail) == (
            AuditKind.REVOKED,
            ended.short_id,
            "cli",
            "1 session by operator",
        )


async def test_end_session_of_another_users_session_is_refused_and_changes_nothing(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        alice = await acc.get_user("alice")
        bobs = await srv.sign_in("bob")
        before = await acc.events(limit=100)
        with pytest.raises(UnknownSession) as refused:
            await acc.end_session(bobs, user_id=alice.id)
        assert str(refused.value) == f"There is no live session {bobs} to end (ended already?)."
        assert await srv.may_act(bobs)
        assert await srv.revoked_live() == set()
        assert await acc.events(limit=100) == before


async def test_end_session_of_an_ended_or_unknown_session_is_refused(settings: Settings) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await acc.create_user("alice", PASSWORD)
        alice = await acc.get_user("alice")
        session = await srv.sign_in()
        await acc.end_session(session, user_id=alice.id)
        await srv.revoked_live()
        for call in (
            acc.end_session(session, user_id=alice.id),
            acc.end_any_session(session),
            acc.end_session(session + 1000, user_id=alice.id),
            acc.end_any_session(session + 1000),
        ):
            with pytest.raises(UnknownSession):
                await call
        assert await srv.revoked_live() == {session}  # nothing broadcast again


async def test_end_any_session_ends_whoevers_session_it_is_live_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        bobs, alices = await srv.sign_in("bob"), await srv.sign_in()
        ended = await acc.end_any_session(bobs)
        assert ended.id == bobs
        assert await srv.revoked_live() == {bobs}
        assert not await srv.may_act(bobs) and await srv.may_act(alices)
        assert await last_event(acc) == (
            AuditKind.REVOKED,
            "bob",
            "cli",
            "1 session by operator",
        )


async def test_end_any_session_does_not_end_an_anonymous_row(settings: Settings) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        service = srv.rt.service
        token = service.new_token()
        resolved = await service.resolve(token)
        anonymous, _ = await service.open_anonymous_session(
            hash_token(token), resolved.issued_at, CLIENT
        )
        with pytest.raises(UnknownSession):
            await acc.end_any_session(anonymous.id)
        assert await service.live_session(anonymous.id) is not None


# --- the service's "end this session" of a signed-in view ------------------------------------


async def test_a_view_ends_one_session_of_its_own_user_live_and_is_audited(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await acc.create_user("alice", PASSWORD)
        acting, target = await srv.sign_in(), await srv.sign_in()
        ended = await srv.rt.service.end_own_session(acting, target, CLIENT)
        assert ended.id == target
        assert await srv.revoked_live() == {target}
        assert await srv.may_act(acting) and not await srv.may_act(target)
        acting_short = (await srv.rt.service.current(acting)).session.short_id  # type: ignore[union-attr]
        (event,) = await acc.events("alice", limit=1)
        assert (event.kind, event.session, event.client_addr, event.detail) == (
            AuditKind.REVOKED,
            ended.short_id,
            CLIENT.addr,
            f"1 session, from session {acting_short}",
        )


async def test_a_view_cannot_end_another_users_session(settings: Settings) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await alice_and_bob(acc)
        acting, bobs = await srv.sign_in(), await srv.sign_in("bob")
        before = await acc.events(limit=100)
        with pytest.raises(UnknownSession):
            await srv.rt.service.end_own_session(acting, bobs, CLIENT)
        assert await srv.may_act(bobs)
        assert await srv.revoked_live() == set()
        assert await acc.events(limit=100) == before


async def test_a_view_whose_session_ended_cannot_end_another(settings: Settings) -> None:
    async with accounts(settings) as acc, server(settings) as srv:
        await acc.create_user("alice", PASSWORD)
        acting, target = await srv.sign_in(), await srv.sign_in()
        await srv.rt.service.logout(acting)
        with pytest.raises(NotSignedIn):
            await srv.rt.service.end_own_session(acting, target, CLIENT)
        epoch = (await srv.rt.service.current(target)).session.user_epoch  # type: ignore[union-attr]
        with pytest.raises(NotSignedIn):  # a view re-keyed away from the epoch it holds
            await srv.rt.service.end_own_session(target, target, CLIENT, epoch=epoch + 1)
        assert await srv.may_act(target)


# --- the audit trail --------------------------------------------------------------------------


async def test_events_are_newest_first_of_one_user_or_everyone_within_the_limit(
    settings: Settings,
) -> None:
    async with accounts(settings) as acc:
        await alice_and_bob(acc)
        await acc.disable_user("alice")
        kinds = [(e.kind, e.username) for e in await acc.events()]
        assert kinds == [
            (AuditKind.USER_DISABLED, "alice"),
            (AuditKind.USER_CREATED, "bob"),
            (AuditKind.USER_CREATED, "alice"),
        ]
        assert [e.kind for e in await acc.events("bob")] == [AuditKind.USER_CREATED]
        assert len(await acc.events(limit=2)) == 2
        with pytest.raises(ValueError, match="at least 1"):
            await acc.events(limit=0)
