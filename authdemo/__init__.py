"""authdemo: server-side sessions and sign-in for IDOM single-page apps on Sanic.

The public API, all importable from here and typed::

    from authdemo import create_app, current_user, use_auth, use_session, RequireAuth

Type checkers see every name imported explicitly (the ``TYPE_CHECKING`` block below),
so a misspelt one fails type checking. At run time the names of the web and UI halves
(``create_app``, the components, the hooks) are imported on first use, by a module
``__getattr__`` that type checkers never see: the command line (``authdemo
create-user``, ``revoke-sessions``…) and any code that needs only the services start
without loading Sanic or a UI library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .accounts import Accounts
from .config import ConfigError, Settings
from .domain import (
    AlreadySignedIn,
    AuditEvent,
    AuditKind,
    AuthError,
    AuthSession,
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

if TYPE_CHECKING:
    from .http.app import create_app
    from .http.current import current_user, has_permission
    from .ui.components import (
        AccountPage,
        AdminPage,
        ChangePassword,
        EmailSettings,
        LoginForm,
        RequireAuth,
        RequirePermission,
        ResetPasswordForms,
        SessionList,
        SignUpForm,
        TwoFactorSettings,
        VerifyEmailForm,
        require_auth,
    )
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

# name -> the module it lives in, imported on first use (``__getattr__`` below).
_LAZY = {
    "create_app": ".http.app",
    "current_user": ".http.current",
    "has_permission": ".http.current",
    **dict.fromkeys(
        (
            "AccountPage",
            "AdminPage",
            "ChangePassword",
            "EmailSettings",
            "LoginForm",
            "RequireAuth",
            "RequirePermission",
            "ResetPasswordForms",
            "SessionList",
            "SignUpForm",
            "TwoFactorSettings",
            "VerifyEmailForm",
            "require_auth",
        ),
        ".ui.components",
    ),
    "SecondStep": ".ui.connection",
    **dict.fromkeys(
        (
            "Auth",
            "EmailControls",
            "SessionControls",
            "SessionData",
            "TwoFactorControls",
            "use_auth",
            "use_session",
        ),
        ".ui.hooks",
    ),
    "requires": ".ui.rights",
    "use_permission": ".ui.rights",
}

if not TYPE_CHECKING:  # hidden from type checkers: a misspelt name stays an error there

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'authdemo' has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # once: later look-ups find it without this function
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


__version__ = "0.1.0"
"""The one place the version is written (pyproject.toml reads it from here)."""

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
