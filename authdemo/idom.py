"""authdemo for IDOM 1.0 apps, said explicitly: ``from authdemo.idom import …``.

The same API as ``authdemo`` (IDOM is the default), except that ``create_app`` renders
with IDOM whatever ``settings.ui``/``AUTHDEMO_UI`` say; for ReactPy see
``authdemo.reactpy``.
"""

from __future__ import annotations

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
from .http.current import current_user
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
from .service import Enrolment, MfaStatus, UserSummary
from .ui.bridge import RootConstructor
from .ui.components import (
    AccountPage,
    ChangePassword,
    EmailSettings,
    LoginForm,
    RequireAuth,
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


def create_app(
    settings: Settings | None = None,
    root: RootConstructor | None = None,
    *,
    name: str = "authdemo",
    clock: Clock | None = None,
    hasher_factory: HasherFactory | None = None,
) -> AuthdemoApp:
    """``authdemo.create_app`` on IDOM (whatever ``settings.ui``/``AUTHDEMO_UI`` say)."""
    settings = replace(settings or Settings.from_env(), ui="idom")
    return _app.create_app(settings, root, name=name, clock=clock, hasher_factory=hasher_factory)


__all__ = [
    "AccountPage",
    "Accounts",
    "AlreadySignedIn",
    "AuditEvent",
    "AuditKind",
    "Auth",
    "AuthError",
    "AuthSession",
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
    "InvalidSessionData",
    "InvalidUsername",
    "LoginForm",
    "MailThrottled",
    "MailUnavailable",
    "MfaStateConflict",
    "MfaStatus",
    "MfaUnavailable",
    "NotSignedIn",
    "RequireAuth",
    "ResetPasswordForms",
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
    "UnknownSession",
    "UnknownUser",
    "User",
    "UserSummary",
    "UsernameTaken",
    "VerifyEmailForm",
    "WrongEmailCode",
    "create_app",
    "current_user",
    "require_auth",
    "use_auth",
    "use_session",
]
