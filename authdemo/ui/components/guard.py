"""``RequireAuth`` and ``require_auth``: nothing protected renders while signed out."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec

from idom.types import Component

from ..hooks import use_auth
from ..library import component
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
