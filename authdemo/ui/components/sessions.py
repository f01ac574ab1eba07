"""``SessionList``: the signed-in user's live sessions, each with an "end" button, and
"sign out other sessions".

Invariants:
- The list is kept true while open: re-read when one of the user's sessions opens or
  ends anywhere (``auth.sessions.version``) and when the next one of them expires.
- Ending a row asks the server to end that id; the server ends it only if it is a live
  session of this user (``auth.sessions.end``), whatever the event carried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from ...domain import AuthError, AuthSession, NotSignedIn, StorageUnavailable
from ..hooks import use_auth
from ..library import component, html, use_effect, use_state

log = logging.getLogger(__name__)


def describe_agent(user_agent: str) -> str:
    """'Chrome on Linux' from a User-Agent header; the raw text (shortened) otherwise."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("HeadlessChrome/", "Headless Chrome"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
                ("python-httpx", "httpx"),
                ("Python/", "Python"),
            )
            if token in ua
        ),
        None,
    )
    system = next(
        (
            name
            for token, name in (
                ("Android", "Android"),
                ("iPhone", "iOS"),
                ("iPad", "iPadOS"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("Linux", "Linux"),
            )
            if token in ua
        ),
        None,
    )
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (ua[:60] + ("…" if len(ua) > 60 else "")) or "unknown client"


def ago(moment: datetime, now: datetime) -> str:
    """How long ago ``moment`` was, as a person says it: "just now", "5 min ago",
    "3 hours ago", "yesterday", "4 days ago", then the date."""
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return "just now"  # a clock a little ahead says so too
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    days = hours // 24
    if days == 1:
        return "yesterday"
    if days < 7:
        return f"{days} days ago"
    return f"on {moment.day} {moment:%B %Y}"


def when(moment: datetime, now: datetime) -> Any:
    """``<time>``: how long ago, with the exact moment in ``datetime`` (for machines)
    and in ``title`` (the tooltip a person hovers for)."""
    return html.time(
        {
            "datetime": moment.isoformat(timespec="seconds"),
            "title": moment.strftime("%Y-%m-%d %H:%M UTC"),
        },
        ago(moment, now),
    )


@component
def SessionList(class_name: str = "") -> Any:
    """The signed-in user's live sessions (``ul#sessions``, one ``li`` each, this device
    marked), an "end" button on every other row (``button.end-session``) and "Sign out
    other sessions" (``button#logout-others``). Live: rows come and go as sessions open
    and end anywhere. Renders nothing while signed out. ``class_name`` is added to the
    card's classes (``card wide authdemo-sessions``), for the app's stylesheet."""
    auth = use_auth()
    sessions, set_sessions = use_state(cast(list[AuthSession], []))
    expired, set_expired = use_state(0)
    ended, set_ended = use_state(0)
    notice, set_notice = use_state(("", ""))
    problem, set_problem = use_state("")
    busy, set_busy = use_state(False)
    this_id = auth.session.id if auth.session else None
    signed_in = auth.user is not None

    @use_effect(dependencies=[this_id, auth.sessions.version, expired, ended])
    async def load() -> None:
        if signed_in:
            try:
                set_sessions(await auth.sessions.list())
            except StorageUnavailable:
                log.warning("session list not refreshed: the database is unavailable")
            except NotSignedIn:
                pass  # the view signed out meanwhile; the list is on its way out

    @use_effect(dependencies=[sessions])
    def at_next_expiry() -> Callable[[], None]:
        # Expiry sends no event (nothing happens at that moment), so wake up for it.
        ends = [s.expires_at() for s in sessions if s.id != this_id]
        if not ends or not signed_in:
            return lambda: None
        delay = (min(ends) - auth.sessions.now()).total_seconds() + 0.05
        handle = asyncio.get_running_loop().call_later(
            max(0.0, delay), lambda: set_expired(lambda n: n + 1)
        )
        return handle.cancel

    async def act(action: Callable[[], Any]) -> None:
        set_busy(True)
        set_problem("")
        set_notice(("", ""))
        try:
            await action()
        except AuthError as failure:
            set_problem(str(failure))
        finally:
            set_busy(False)
            set_ended(lambda n: n + 1)  # re-read: this view's own change, at once

    def end(session_id: int) -> Callable[[Any], Any]:
        async def end_this(_: Any) -> None:
            async def action() -> None:
                if await auth.sessions.end(session_id):
                    set_notice(("end-session-done", "Session ended. That browser is signed out."))
                else:
                    set_notice(("end-session-done", "That session had ended already."))

            await act(action)

        return end_this

    async def sign_out_others(_: Any) -> None:
        async def action() -> None:
            count = await auth.sessions.end_others()
            set_notice(
                (
                    "logout-others-done",
                    f"Signed out {count} other session{'s' if count != 1 else ''}."
                    if count
                    else "There were no other sessions.",
                )
            )

        await act(action)

    if not signed_in:
        return html._()
    notice_id, notice_text = notice
    now = auth.sessions.now()  # "5 min ago" as of this render (each re-read renders)
    return html.section(
        {
            "id": "account-sessions",
            "class_name": f"card wide authdemo-sessions {class_name}".strip(),
        },
        html.h2("Your sessions"),
        html.ul(
            {"id": "sessions", "class_name": "sessions", "aria_label": "Active sessions"},
            [
                html.li(
                    {"key": str(s.id)},
                    html.div(
                        {"class_name": "session"},
                        html.strong(describe_agent(s.user_agent)),
                        *(
                            [html.span({"class_name": "badge"}, "this device")]
                            if s.id == this_id
                            else []
                        ),
                        html.br(),
                        html.span(
                            {"class_name": "muted"},
                            f"{s.client_addr or 'unknown address'} · signed in ",
                            when(s.created_at, now),
                            " · last seen ",
                            when(s.last_seen_at, now),
                        ),
                    ),
                    *(
                        []
                        if s.id == this_id
                        else [
                            html.button(
                                {
                                    "type": "button",
                                    "class_name": "end-session",
                                    "disabled": busy,
                                    "aria_label": f"End the session of "
                                    f"{describe_agent(s.user_agent)}, signed in "
                                    f"{ago(s.created_at, now)}",
                                    "on_click": end(s.id),
                                },
                                "End",
                            )
                        ]
                    ),
                )
                for s in sessions
            ],
        ),
        html.div(
            {"class_name": "actions"},
            html.button(
                {
                    "id": "logout-others",
                    "type": "button",
                    "disabled": busy,
                    "on_click": sign_out_others,
                },
                "Sign out other sessions",
            ),
        ),
        *(
            [html.p({"id": notice_id, "class_name": "ok", "role": "status"}, notice_text)]
            if notice_text
            else []
        ),
        *(
            [html.p({"id": "sessions-error", "class_name": "error", "role": "alert"}, problem)]
            if problem
            else []
        ),
    )
