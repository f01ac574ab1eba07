"""The auth state of one open websocket, kept in step with the server-side session.

``LiveSession`` is assembled from one module per concern, each stating at its top the
invariants it keeps:

- ``state``: the immutable snapshots a view renders (``AuthState``, ``SecondStep``).
- ``lifecycle``: entering and leaving a session, timers, re-checks, followed events,
  the check before each UI event.
- ``signin``: the password, the second step, signing out.
- ``follow``: following another tab's sign-in, proven by the browser's current cookie.
- ``email``: sign-up and its code, "forgot password", a new address.
- ``account``: password change, two-factor settings, the session list.
- ``data``: writes of ``use_session()``.
- ``rights``: the user's permissions, shown live and checked at action time.
- ``admin``: the admin page's reads and changes (admin rights and a recent sign-in).
"""

from __future__ import annotations

from .account import AccountActions
from .admin import AdminActions
from .data import DataWrites
from .email import EmailFlow
from .follow import TabFollowing
from .state import AuthState, SecondStep

__all__ = ["AuthState", "LiveSession", "SecondStep"]


class LiveSession(TabFollowing, EmailFlow, AccountActions, DataWrites, AdminActions):
    """One open view's connection to its server-side session."""

    def close(self) -> None:
        self._closed = True
        self._drop_second_step()
        self._abandon_enrolment()
        self._stop_following_cookie()
        self._stop_watching_cookie()
        self._stop_follow()
        self._leave()
        self._listeners = ()
