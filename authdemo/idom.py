"""authdemo for IDOM 1.0 apps, said explicitly: ``from authdemo.idom import …``.

The same API as ``authdemo`` (IDOM is the default), except that ``create_app`` renders
with IDOM whatever ``settings.ui``/``AUTHDEMO_UI`` say; for ReactPy see
``authdemo.reactpy``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

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
from .ui.bridge import RootConstructor
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


def create_app(
    settings: Settings | None = None,
    root: RootConstructor | None = None,
    *,
    name: str = "authdemo",
    clock: Clock | None = None,
    hasher_factory: HasherFactory | None = None,
    permissions: Iterable[Permission] = (),
) -> AuthdemoApp:
    """``authdemo.create_app`` on IDOM (whatever ``settings.ui``/``AUTHDEMO_UI`` say)."""
    settings = replace(settings or Settings.from_env(), ui="idom")
    return _app.create_app(
        settings,
        root,
        name=name,
        clock=clock,
        hasher_factory=hasher_factory,
        permissions=permissions,
    )


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
