"""authdemo: server-side sessions and sign-in for IDOM single-page apps on Sanic.

The public API, all importable from here::

    from authdemo import create_app, Settings, use_auth, use_session, RequireAuth

Names are loaded on first use, so that ``import authdemo`` (alembic's env.py does)
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Auth",
    "AuthError",
    "CodeThrottled",
    "CookieRequired",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidSessionData",
    "LoginForm",
    "NotSignedIn",
    "RequireAuth",
    "SecondFactorRequired",
    "SecondStep",
    "SecondStepExpired",
    "SessionData",
    "SessionDataTooLarge",
    "Settings",
    "Throttled",
    "create_app",
    "require_auth",
    "use_auth",
    "use_session",
]

_WHERE = {
    "Auth": "authdemo.web.hooks",
    "SessionData": "authdemo.web.hooks",
    "use_auth": "authdemo.web.hooks",
    "use_session": "authdemo.web.hooks",
    "LoginForm": "authdemo.web.components",
    "RequireAuth": "authdemo.web.components",
    "require_auth": "authdemo.web.components",
    "create_app": "authdemo.web.app",
    "Settings": "authdemo.config",
    "AuthError": "authdemo.domain",
    "CookieRequired": "authdemo.domain",
    "InvalidCredentials": "authdemo.domain",
    "InvalidSessionData": "authdemo.domain",
    "NotSignedIn": "authdemo.domain",
    "SessionDataTooLarge": "authdemo.domain",
    "Throttled": "authdemo.domain",
    "CodeThrottled": "authdemo.domain",
    "InvalidCode": "authdemo.domain",
    "SecondFactorRequired": "authdemo.domain",
    "SecondStepExpired": "authdemo.domain",
    "SecondStep": "authdemo.web.connection",
}

if TYPE_CHECKING:
    from .config import Settings
    from .domain import (
        AuthError,
        CodeThrottled,
        CookieRequired,
        InvalidCode,
        InvalidCredentials,
        InvalidSessionData,
        NotSignedIn,
        SecondFactorRequired,
        SecondStepExpired,
        SessionDataTooLarge,
        Throttled,
    )
    from .web.app import create_app
    from .web.components import LoginForm, RequireAuth, require_auth
    from .web.connection import SecondStep
    from .web.hooks import Auth, SessionData, use_auth, use_session


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'authdemo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
