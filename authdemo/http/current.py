"""``await current_user(request)``: who is signed in, for an app's own HTTP routes;
``await has_permission(request, "notes:write")``: may they do this.

The HTTP side's counterpart of ``use_auth()``: the same cookie, resolved by the same
service call a page load makes (``AuthService.visit``), so the same rule holds — the
session is live (not expired, not revoked) and its user active and still on the
credential epoch the session was opened under (``domain.may_act``).
"""

from __future__ import annotations

from sanic import Request

from ..domain import User
from ..permissions import UndeclaredPermission
from ..service import AuthService
from .cookies import read_session_cookie

_ANSWER = "authdemo_current_user"


async def current_user(request: Request) -> User | None:
    """The user signed in with this request's session cookie, or None.

    None for a request without a usable cookie, an anonymous visitor, and a session
    that ended (signed out, expired, revoked, its user disabled or its password
    changed since). Like a page load it slides the session's idle expiry (a write
    only when that is due); it never sets a cookie. The answer is kept for the rest of
    the request. Raises ``StorageUnavailable`` when the database cannot be reached
    (the app answers 503 unless the route catches it).
    """
    if hasattr(request.ctx, _ANSWER):
        answer: User | None = getattr(request.ctx, _ANSWER)
        return answer
    service: AuthService | None = getattr(request.app.ctx, "service", None)
    if service is None:
        raise RuntimeError(
            "current_user() works on requests to an app made by authdemo.create_app(), "
            "once it has started"
        )
    resolution = await service.visit(read_session_cookie(request))
    user = resolution.signed_in.user if resolution.signed_in is not None else None
    setattr(request.ctx, _ANSWER, user)
    return user


async def has_permission(request: Request, permission: str) -> bool:
    """Whether the user signed in with this request's cookie holds ``permission`` now:
    their roles are read from the database for every call (a revoke counts at once).

    False for a request that is not signed in (see ``current_user``). Raises
    ``UndeclaredPermission`` for a name the app did not declare (a typo) and
    ``StorageUnavailable`` when the database cannot be reached."""
    user = await current_user(request)
    service: AuthService = request.app.ctx.service
    if permission not in service.permissions:
        raise UndeclaredPermission(permission, (p.name for p in service.permissions))
    if user is None:
        return False
    return await service.user_has_permission(user.id, permission)
