"""A sign-in cycle's statements come from SQLAlchemy's compiled cache once warm.

A statement SQLAlchemy cannot cache (a multi-row ``.values([...])``, say) is compiled
anew at every execution: about a tenth of the event loop's samples in a sign-in cycle
(``bench.signin_profile``) when the throttle's reservation and the outbox were written
that way (docs/performance.md, "Statements built once"). Runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.permissions import Permission, PermissionRegistry
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.conftest import cheap_hasher

CLIENT = ClientInfo("203.0.113.7", "pytest")
PASSWORD = "correct horse"


async def one_cycle(service: AuthService) -> None:
    """Sign in (password, ticket, cookie held, first look at the new cookie), sign out."""
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    await service.cookie_held(token)
    resolved = await service.resolve(token)
    assert resolved.signed_in is not None
    assert await service.logout(resolved.signed_in.session.id, CLIENT) is not None


async def test_a_warm_sign_in_cycle_compiles_no_statement(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        await rt.service.create_user("alice", PASSWORD)
        await one_cycle(rt.service)  # compiles each statement once
        compiled: list[str] = []

        def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: Any) -> None:
            # ``compiled`` is None for the driver's own SQL (SQLite's BEGIN, where it is
            # sent as a statement: on SQLAlchemy's own adapter, not on authdemo's).
            if context.compiled is not None and context.cache_hit != context.dialect.CACHE_HIT:
                compiled.append(" ".join(sql.split()))

        event.listen(rt.engine.sync_engine, "before_cursor_execute", record)
        try:
            await one_cycle(rt.service)
        finally:
            event.remove(rt.engine.sync_engine, "before_cursor_execute", record)
    if rt.engine.dialect.name == "postgresql":
        # The one known exception: the redemption's two outbox rows with the NOTIFY,
        # an INSERT inside a CTE, which cannot go out as "insertmanyvalues".
        expected = [sql for sql in compiled if sql.startswith("WITH added AS (INSERT")]
        assert len(expected) == 1 and "), (" in expected[0], compiled
        compiled.remove(expected[0])
    assert compiled == []


async def test_the_checks_statements_are_sent_as_compiled(settings: Settings) -> None:
    """No value of a permission check's statements is rendered into their SQL at each
    execution ("literal execute": a regular-expression pass over the statement, about
    30 us of every check, when the patterns' separator was a plain string)."""
    declared = PermissionRegistry([Permission("notes:read", ""), Permission("notes:write", "")])
    async with runtime(settings, hasher_factory=cheap_hasher, permissions=declared) as rt:
        service = rt.service
        await service.create_user("alice", PASSWORD)
        await service.create_role("editor", ["notes:*"])
        await service.create_role("reader", ["notes:read"])
        await service.grant_role("alice", "editor")
        await service.grant_role("alice", "reader")
        result = await service.login(hash_token(service.new_token()), "alice", PASSWORD, CLIENT)
        assert result.signed_in is not None
        session_id, user_id = result.signed_in.session.id, result.signed_in.user.id
        rendered: list[str] = []

        def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: Any) -> None:
            if context.compiled is not None and context.compiled.literal_execute_params:
                rendered.append(" ".join(sql.split()))

        event.listen(rt.engine.sync_engine, "before_cursor_execute", record)
        try:
            assert await service.permitted(session_id, "notes:write")
            assert await service.user_has_permission(user_id, "notes:write")
            assert (await service.grants_of(user_id)).allows("notes:read")
        finally:
            event.remove(rt.engine.sync_engine, "before_cursor_execute", record)
    assert rendered == []
