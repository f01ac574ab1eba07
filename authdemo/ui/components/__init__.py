"""The components, one module per component (``from authdemo.ui.components import X``).

- ``login``: ``LoginForm`` and its second step; ``guard``: ``RequireAuth``/``require_auth``.
- ``sessions``, ``password``, ``two_factor``: the account cards.
- ``notepad``, ``demo``: the demo app (``DemoApp``) and its session-data example.
- ``forms``: what the forms share.

Element ids are a public contract: tests and app stylesheets address them.
"""

from __future__ import annotations

from .demo import DemoApp, SignedInView
from .forms import account_field, code_field, field, form_values
from .guard import RequireAuth, require_auth
from .login import LoginForm, SecondStepForm, use_insecure_origin
from .notepad import Notepad
from .password import ChangePasswordForm
from .sessions import SessionList, describe_agent, when
from .two_factor import TwoFactorCard

__all__ = [
    "ChangePasswordForm",
    "DemoApp",
    "LoginForm",
    "Notepad",
    "RequireAuth",
    "SecondStepForm",
    "SessionList",
    "SignedInView",
    "TwoFactorCard",
    "account_field",
    "code_field",
    "describe_agent",
    "field",
    "form_values",
    "require_auth",
    "use_insecure_origin",
    "when",
]
