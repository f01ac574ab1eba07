"""The components, one module per component (``from authdemo.ui.components import X``).

- ``login``: ``LoginForm`` and its second step; ``guard``: ``RequireAuth``/``require_auth``,
  ``RequirePermission``.
- ``login``: ``LoginForm`` and its second step; ``guard``: ``RequireAuth``/``require_auth``.
- ``email``: sign-up, its code, "forgot password", and the address card.
- ``sessions``, ``password``, ``two_factor``: the account cards (``SessionList``,
  ``ChangePassword``, ``TwoFactorSettings``); ``account``: ``AccountPage`` of all three.
- ``admin``: ``AdminPage`` (users, roles, sessions, the audit trail).
- ``notepad``, ``demo``: the demo app (``DemoApp``) and its session-data example.
- ``forms``: what the forms share.

Element ids are a public contract: tests and app stylesheets address them.
"""

from __future__ import annotations

from .account import AccountPage
from .admin import AdminPage
from .demo import DemoApp, SignedInView
from .email import EmailSettings, ResetPasswordForms, SignUpForm, VerifyEmailForm
from .forms import account_field, code_field, field, form_values
from .guard import RequireAuth, RequirePermission, require_auth
from .login import LoginForm, SecondStepForm, use_insecure_origin
from .notepad import Notepad
from .password import ChangePassword
from .sessions import SessionList, describe_agent, when
from .two_factor import TwoFactorSettings

__all__ = [
    "AccountPage",
    "AdminPage",
    "ChangePassword",
    "DemoApp",
    "EmailSettings",
    "LoginForm",
    "Notepad",
    "RequireAuth",
    "RequirePermission",
    "ResetPasswordForms",
    "SecondStepForm",
    "SessionList",
    "SignUpForm",
    "SignedInView",
    "TwoFactorSettings",
    "VerifyEmailForm",
    "account_field",
    "code_field",
    "describe_agent",
    "field",
    "form_values",
    "require_auth",
    "use_insecure_origin",
    "when",
]
