"""Permissions for components: ``use_permission("notes:write")`` to decide what to show,
``@requires("notes:write")`` on an event handler to decide what may be done.

Showing is presentation: it follows the user's roles live (a grant or revoke anywhere
re-renders every open view of the user within the broadcast's delivery). Enforcement is
``@requires``: the server re-checks, at the moment the event arrives, by reading the
session and the user's roles from the database — a stale page, a forged event or a view
that missed the revoke is refused, and the handler does not run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec

from ..domain import NotSignedIn, StorageUnavailable
from ..permissions import PermissionDenied
from .connection import LiveSession
from .hooks import AuthContext, Provided
from .library import use_context, use_effect, use_state

log = logging.getLogger(__name__)
P = ParamSpec("P")


def _live(provided: Provided, name: str) -> LiveSession:
    if provided.live is None:
        raise RuntimeError(f"{name}() is only available below authdemo's root component")
    return provided.live


def use_permission(permission: str) -> bool:
    """Whether the signed-in user holds ``permission`` (False while signed out, and
    until it is first read). Re-renders when the user's roles change anywhere.

    For what to *show*; guard the action itself with ``@requires``. Raises
    ``UndeclaredPermission`` for a name the app did not declare (a typo)."""
    provided: Provided = use_context(AuthContext)
    live = _live(provided, "use_permission")
    live.check_declared(permission)
    state = provided.state
    user_id = state.user.id if state.user is not None and not state.pending else None
    who = (user_id, state.generation)
    version = state.rights_version
    answer, set_answer = use_state((who, False))

    def settle(allowed: bool) -> None:
        # Rendered again only when the answer changed: a render gives every handler
        # below a new id, and an event sent just before the new ones arrived (a sign-in
        # form submitted right after the page connected) is ignored by the UI library.
        set_answer(lambda last: last if last == (who, allowed) else (who, allowed))

    @use_effect(dependencies=[permission, user_id, state.generation, version])
    async def read() -> None:
        if user_id is None:
            settle(False)
            return
        try:
            grants = await live.grants()
        except StorageUnavailable:
            log.warning("permissions not re-read: the database is unavailable")
            return
        settle(grants.allows(permission))

    # Another user (or a new sign-in) never sees the last one's answer; the same user
    # keeps theirs while a new version is read (the server decides actions anyway).
    read_for, allowed = answer
    return read_for == who and allowed


def requires(
    permission: str,
) -> Callable[[Callable[P, Any]], Callable[P, Awaitable[None]]]:
    """Guard an event handler: ``@requires("notes:write")`` above ``async def on_click(event)``
    inside a component (it reads the connection, like a hook: apply it on every render).

    When the event arrives the server checks, reading the database, that this view's
    user holds ``permission`` now; if not, the handler does not run, nothing changes,
    and the view says so (``auth.refusal``, shown as ``#permission-refused``). An
    event from a view whose session ended signs that view out instead. Raises
    ``UndeclaredPermission`` (at render) for a name the app did not declare."""
    provided: Provided = use_context(AuthContext)
    live = _live(provided, "requires")
    live.check_declared(permission)

    def decorate(handler: Callable[P, Any]) -> Callable[P, Awaitable[None]]:
        @wraps(handler)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                await live.require_permission(permission)
            except PermissionDenied:
                log.info("refused: the user lacks %s", permission)
                return
            except NotSignedIn:
                return  # the view signed out; the event is void
            result = handler(*args, **kwargs)
            if inspect.isawaitable(result):
                await result

        return guarded

    return decorate
