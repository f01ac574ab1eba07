"""Roles and permissions: creating and deleting roles, granting and revoking them, and
the checks that decide an action.

Invariants:
- A check that decides an action reads the truth: ``permitted`` reads the session and
  the user's roles from the database, in one transaction, at the moment of the action
  (no cache, no state an open view carried along). A session that may not act
  (``domain.may_act``) holds no permission.
- Every change of what a user may do — a grant, a revoke, a role deleted from under its
  holders — writes its audit row and a ``RIGHTS_CHANGED`` broadcast for each user it
  touches in the transaction that makes it: every open view of theirs, on every
  worker and host, re-reads its permissions (the outbox cannot lose one that committed).
- Only declared permissions are granted: a pattern must be a declared name, or a
  ``prefix:*`` that matches one, or ``*`` (``PermissionRegistry.check_pattern``).
- The built-in ``admin`` role is never deleted. Deleting another role revokes it from
  everyone who held it (each revocation audited and announced).
- A grant and a role's deletion cannot interleave: both lock the role's row first, so a
  grant either lands before the delete (and is among the holdings it revokes) or finds
  the role gone (``UnknownRole``).
"""

from __future__ import annotations

import logging

from ..domain import AuditKind, ClientInfo, NotSignedIn, UnknownUser, User, may_act, username_key
from ..events import EventKind, SessionEvent, publish_quietly
from ..permissions import (
    ADMIN_ROLE,
    BuiltInRole,
    Grants,
    InvalidPermission,
    Role,
    UnknownRole,
    check_description,
    check_role_name,
)
from ..ports import UnitOfWork
from .core import BY_OPERATOR, OPERATOR, ServiceCore

log = logging.getLogger("authdemo.auth")


class Rights(ServiceCore):
    # --- checks ------------------------------------------------------------------------

    async def grants_of(self, user_id: int) -> Grants:
        """What ``user_id``'s roles grant, compiled for cheap checks (read now)."""
        async with self._uow(one_statement=True) as tx:
            return Grants.of(await tx.roles.patterns_of(user_id))

    async def permitted(self, session_id: int, permission: str, epoch: int | None = None) -> bool:
        """May this session's user do ``permission`` right now? Read from the database in
        one statement: the session may act (and is on ``epoch``, the acting view's) and
        one of the user's roles grants it. ``NotSignedIn`` when the session may not act.
        ``UndeclaredPermission`` for a name the app did not declare."""
        self.permissions.require(permission)
        now = self.now()
        async with self._uow(one_statement=True) as tx:
            found = await tx.roles.acting_with_patterns(session_id)
        if found is None:
            raise NotSignedIn()
        session, user, patterns = found
        if user is None or not may_act(session, user, now):
            raise NotSignedIn()
        if epoch is not None and session.user_epoch != epoch:
            raise NotSignedIn()
        return Grants.of(patterns).allows(permission)

    async def user_has_permission(self, user_id: int, permission: str) -> bool:
        """Does ``user_id`` (active) hold ``permission`` now? (HTTP routes, with the user
        their request's session resolved to.)"""
        self.permissions.require(permission)
        async with self._uow(one_statement=True) as tx:
            patterns = await tx.roles.active_patterns(user_id)
        return patterns is not None and Grants.of(patterns).allows(permission)

    # --- roles ---------------------------------------------------------------------------

    async def list_roles(self) -> list[Role]:
        async with self._uow() as tx:
            return await tx.roles.list()

    async def roles_of(self, username: str) -> list[str]:
        user = await self.get_user(username)
        async with self._uow() as tx:
            return (await tx.roles.names_by_user()).get(user.id, [])

    async def create_role(
        self,
        name: str,
        patterns: list[str],
        description: str = "",
        *,
        client: ClientInfo = OPERATOR,
        by: str = BY_OPERATOR,
    ) -> Role:
        check_role_name(name)
        check_description(description)
        if not patterns:
            raise InvalidPermission("A role grants at least one permission.")
        checked = sorted({self.permissions.check_pattern(p) for p in patterns})
        async with self._uow(write=True) as tx:
            role = await tx.roles.add(name, description, checked, self.now())
            await self._audit(
                tx,
                AuditKind.ROLE_CREATED,
                client=client,
                detail=f"role {name} ({', '.join(checked)}) by {by}",
            )
            await tx.commit()
        log.info("role created role=%s", name)
        return role

    async def delete_role(
        self, name: str, *, client: ClientInfo = OPERATOR, by: str = BY_OPERATOR
    ) -> int:
        """Delete a role, revoking it from everyone who holds it (live). Returns how many
        held it."""
        if name == ADMIN_ROLE:
            raise BuiltInRole(name)
        async with self._uow(write=True) as tx:
            role = await self._role(tx, name, lock=True)
            holders = await tx.roles.delete(role.id)
            events: list[SessionEvent] = []
            for user_id in holders:
                user = await tx.users.get(user_id)
                await self._audit(
                    tx,
                    AuditKind.ROLE_REVOKED,
                    user=user,
                    client=client,
                    detail=f"role {name} (deleted) by {by}",
                )
                events.append(await self._rights_changed(tx, user_id, "role_deleted"))
            await self._audit(
                tx,
                AuditKind.ROLE_DELETED,
                client=client,
                detail=f"role {name}, held by {len(holders)} user(s), by {by}",
            )
            await tx.commit()
        log.info("role deleted role=%s holders=%d", name, len(holders))
        for event in events:
            await publish_quietly(self._events, event)
        return len(holders)

    async def grant_role(
        self, username: str, role: str, *, client: ClientInfo = OPERATOR, by: str = BY_OPERATOR
    ) -> bool:
        """``username`` holds ``role`` from now on, in every open view within the
        follower's poll. False (nothing written) when they held it already."""
        return await self._change_holding(username, role, True, client, by)

    async def revoke_role(
        self, username: str, role: str, *, client: ClientInfo = OPERATOR, by: str = BY_OPERATOR
    ) -> bool:
        """``username`` holds ``role`` no more. False when they did not hold it."""
        return await self._change_holding(username, role, False, client, by)

    async def _change_holding(
        self, username: str, name: str, grant: bool, client: ClientInfo, by: str
    ) -> bool:
        key = username_key(username)
        now = self.now()
        async with self._uow(write=True) as tx:
            user: User | None = await tx.users.get_by_key(key) if key else None
            if user is None:
                raise UnknownUser(username)
            role = await self._role(tx, name, lock=True)
            if grant:
                changed = await tx.roles.grant(user.id, role.id, now)
            else:
                changed = await tx.roles.revoke(user.id, role.id)
            if not changed:
                return False
            kind = AuditKind.ROLE_GRANTED if grant else AuditKind.ROLE_REVOKED
            await self._audit(tx, kind, user=user, client=client, detail=f"role {name} by {by}")
            event = await self._rights_changed(tx, user.id, kind)
            await tx.commit()
        log.info("%s user=%s role=%s", kind, user.username, name)
        await publish_quietly(self._events, event)
        return True

    async def _role(self, tx: UnitOfWork, name: str, *, lock: bool = False) -> Role:
        role = await tx.roles.get(name, lock=lock)
        if role is None:
            raise UnknownRole(name)
        return role

    async def _rights_changed(self, tx: UnitOfWork, user_id: int, reason: str) -> SessionEvent:
        event = SessionEvent(EventKind.RIGHTS_CHANGED, (), reason, user_id=user_id)
        return await self._broadcast(tx, event, self.now())
