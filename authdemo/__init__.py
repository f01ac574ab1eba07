"""authdemo: server-side sessions and sign-in for IDOM single-page apps on Sanic.

The public API, all importable from here and typed::

    from authdemo import create_app, current_user, use_auth, use_session, RequireAuth

Everything below is imported explicitly (no lazy ``__getattr__``), so that a misspelt
name fails type checking, not only at run time.
"""

from __future__ import annotations

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
from .http.app import create_app
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
