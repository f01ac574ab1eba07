"""authdemo for ReactPy 1.1 apps: ``from authdemo.reactpy import create_app, use_auth, …``.

The same API as ``authdemo`` (same names, same behaviour, same objects where nothing
depends on the library), for an app whose components are ReactPy's: ``create_app``
serves ReactPy's client and renders with ReactPy's ``Layout``, and its components
(``LoginForm``, ``RequireAuth``, ``require_auth``, ``AccountPage``, ``SessionList``, …)
are typed as ReactPy components. Needs ``pip install 'authdemo[reactpy]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, ParamSpec, cast

try:
    from reactpy.types import Component
except ImportError as missing:  # pragma: no cover - the test install has the extra
    raise ImportError("authdemo.reactpy needs: pip install 'authdemo[reactpy]'") from missing

from .accounts import Accounts
from .bootstrap import HasherFactory
from .config import ConfigError, Settings
from .domain import (
    AlreadySignedIn,
    AuditEvent,
    AuditKind,
    AuthError,
    AuthSession,
    Clock,
    CodeThrottled,
    CookieRequired,
    InvalidCode,
    InvalidCredentials,
    InvalidPassword,
    InvalidSessionData,
    InvalidUsername,
    MfaStateConflict,
    MfaUnavailable,
    NotSignedIn,
    SchemaNotReady,
    SecondFactorRequired,
    SecondStepExpired,
    SessionDataTooLarge,
    SignedIn,
    StorageRefused,
    StorageUnavailable,
    Throttled,
    UnknownSession,
    UnknownUser,
    User,
    UsernameTaken,
)
from .http import app as _app
from .http.app import AuthdemoApp
from .http.current import current_user, has_permission
from .mail import (
    EmailCodeLocked,
    EmailNotVerified,
    EmailTaken,
    InvalidEmail,
    MailThrottled,
    MailUnavailable,
    SignupClosed,
    WrongEmailCode,
)
from .permissions import (
    BuiltInRole,
    InvalidPermission,
    InvalidRoleName,
    Permission,
    PermissionDenied,
    Role,
    RoleExists,
    UndeclaredPermission,
    UnknownRole,
)
from .service import Enrolment, MfaStatus, UserSummary
from .ui import components as _components
from .ui.bridge import RootConstructor
from .ui.connection import SecondStep
from .ui.hooks import (
    Auth,
    EmailControls,
    SessionControls,
    SessionData,
    TwoFactorControls,
    use_auth,
    use_session,
)
from .ui.rights import requires, use_permission

P = ParamSpec("P")


def create_app(
    settings: Settings | None = None,
    root: RootConstructor | None = None,
    *,
    name: str = "authdemo",
    clock: Clock | None = None,
    hasher_factory: HasherFactory | None = None,
    permissions: Iterable[Permission] = (),
) -> AuthdemoApp:
    """``authdemo.create_app`` on ReactPy (whatever ``settings.ui``/``AUTHDEMO_UI`` say)."""
    settings = replace(settings or Settings.from_env(), ui="reactpy")
    return _app.create_app(
        settings,
        root,
        name=name,
        clock=clock,
        hasher_factory=hasher_factory,
        permissions=permissions,
    )


def _made_by_reactpy(shared: Callable[P, Any]) -> Callable[P, Component]:
    # authdemo's components are written once (ui/library.py); rendered by this app they are
    # ReactPy components, which is what the type says.
    return cast("Callable[P, Component]", shared)


LoginForm = _made_by_reactpy(_components.LoginForm)
RequireAuth = _made_by_reactpy(_components.RequireAuth)
RequirePermission = _made_by_reactpy(_components.RequirePermission)
AccountPage = _made_by_reactpy(_components.AccountPage)
AdminPage = _made_by_reactpy(_components.AdminPage)
ChangePassword = _made_by_reactpy(_components.ChangePassword)
SessionList = _made_by_reactpy(_components.SessionList)
TwoFactorSettings = _made_by_reactpy(_components.TwoFactorSettings)
EmailSettings = _made_by_reactpy(_components.EmailSettings)
SignUpForm = _made_by_reactpy(_components.SignUpForm)
VerifyEmailForm = _made_by_reactpy(_components.VerifyEmailForm)
ResetPasswordForms = _made_by_reactpy(_components.ResetPasswordForms)


def require_auth(function: Callable[P, Any]) -> Callable[P, Component]:
    """``authdemo.require_auth`` for ReactPy components: ``@require_auth`` above
    ``@component``; the guarded constructor keeps ``function``'s signature."""
    return _made_by_reactpy(_components.require_auth(function))


__all__ = [
    "AccountPage",
    "Accounts",
    "AdminPage",
    "AlreadySignedIn",
    "AuditEvent",
    "AuditKind",
    "Auth",
    "AuthError",
    "AuthSession",
    "BuiltInRole",
    "ChangePassword",
    "CodeThrottled",
    "ConfigError",
    "CookieRequired",
    "EmailCodeLocked",
    "EmailControls",
    "EmailNotVerified",
    "EmailSettings",
    "EmailTaken",
    "Enrolment",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidPassword",
    "InvalidPermission",
    "InvalidRoleName",
    "InvalidSessionData",
    "InvalidUsername",
    "LoginForm",
    "MailThrottled",
    "MailUnavailable",
    "MfaStateConflict",
    "MfaStatus",
    "MfaUnavailable",
    "NotSignedIn",
    "Permission",
    "PermissionDenied",
    "RequireAuth",
    "RequirePermission",
    "ResetPasswordForms",
    "Role",
    "RoleExists",
    "SchemaNotReady",
    "SecondFactorRequired",
    "SecondStep",
    "SecondStepExpired",
    "SessionControls",
    "SessionData",
    "SessionDataTooLarge",
    "SessionList",
    "Settings",
    "SignUpForm",
    "SignedIn",
    "SignupClosed",
    "StorageRefused",
    "StorageUnavailable",
    "Throttled",
    "TwoFactorControls",
    "TwoFactorSettings",
    "UndeclaredPermission",
    "UnknownRole",
    "UnknownSession",
    "UnknownUser",
    "User",
    "UserSummary",
    "UsernameTaken",
    "VerifyEmailForm",
    "WrongEmailCode",
    "create_app",
    "current_user",
    "has_permission",
    "require_auth",
    "requires",
    "use_auth",
    "use_permission",
    "use_session",
]
