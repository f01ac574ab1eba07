"""The signed-in user's live session list."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from ...domain import (
    AuthSession,
    NotSignedIn,
    StorageUnavailable,
)
from ..hooks import use_auth, use_live_session
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


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@component
def SessionList(refresh_key: int) -> Any:
    """The user's live sessions, kept true while open: re-read when one opens or ends
    anywhere (``auth.sessions_version``) and when the next one of them expires."""
    auth = use_auth()
    live = use_live_session()
    sessions, set_sessions = use_state(cast(list[AuthSession], []))
    expired, set_expired = use_state(0)
    this_id = auth.session.id if auth.session else None

    @use_effect(dependencies=[refresh_key, this_id, auth.sessions_version, expired])
    async def load() -> None:
        if auth.user is not None:
            try:
                set_sessions(await auth.sessions())
            except StorageUnavailable:
                log.warning("session list not refreshed: the database is unavailable")
            except NotSignedIn:
                pass  # the view signed out meanwhile; the list is on its way out

    @use_effect(dependencies=[sessions])
    def at_next_expiry() -> Callable[[], None]:
        # Expiry sends no event (nothing happens at that moment), so wake up for it.
        ends = [s.expires_at() for s in sessions if s.id != this_id]
        if not ends:
            return lambda: None
        delay = (min(ends) - live.now()).total_seconds() + 0.05
        handle = asyncio.get_running_loop().call_later(
            max(0.0, delay), lambda: set_expired(lambda n: n + 1)
        )
        return handle.cancel

    return html.ul(
        {"id": "sessions", "class_name": "sessions", "aria_label": "Active sessions"},
        [
            html.li(
                {"key": str(s.id)},
                html.strong(describe_agent(s.user_agent)),
                *([html.span({"class_name": "badge"}, "this device")] if s.id == this_id else []),
                html.br(),
                html.span(
                    {"class_name": "muted"},
                    f"{s.client_addr or 'unknown address'} · signed in {when(s.created_at)}"
                    f" · last seen {when(s.last_seen_at)}",
                ),
            )
            for s in sessions
        ],
    )
