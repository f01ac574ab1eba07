"""``RequireAuth`` and ``require_auth``: nothing protected renders while signed out;
``RequirePermission``: nothing renders without the permission."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec

from idom.types import Component

from ..hooks import use_auth
from ..library import component, html
from ..rights import use_permission
from .login import LoginForm

P = ParamSpec("P")


@component
def RequireAuth(child: Any, fallback: Any = None) -> Any:
    """Render ``child`` only for a signed-in user, the sign-in form (or ``fallback``) otherwise.

    The check happens on the server before ``child`` renders, so nothing protected is
    ever rendered, let alone sent, while signed out; when the session ends the child
    unmounts at once.
    """
    auth = use_auth()
    if auth.user is None:
        return fallback if fallback is not None else LoginForm()
    return child


def require_auth(function: Callable[P, Any]) -> Callable[P, Component]:
    """Decorator form of :func:`RequireAuth`: ``@require_auth`` above ``@component``.

    The guarded constructor takes the same arguments as ``function`` (for type checkers
    too: whatever signature ``function`` has, the guarded one has)."""

    @wraps(function)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> Component:
        return RequireAuth(function(*args, **kwargs))

    return guarded


@component
def RequirePermission(permission: str, child: Any, fallback: Any = None) -> Any:
    """Render ``child`` only while the signed-in user holds ``permission``; ``fallback``
    otherwise (default: the sign-in form while signed out, ``#forbidden`` when signed in).

    Follows the user's roles live: a grant shows ``child``, a revoke takes it away, in
    every open view, without a reload. What the child *does* is guarded by
    ``@requires`` (checked on the server when the event arrives). Raises
    ``UndeclaredPermission`` for a name the app did not declare."""
    auth = use_auth()
    allowed = use_permission(permission)
    if allowed and auth.user is not None:
        return child
    if fallback is not None:
        return fallback
    if auth.user is None:
        return LoginForm()
    return html.p(
        {"id": "forbidden", "role": "alert"},
        "You do not have permission to see this. Ask an administrator for access.",
    )
