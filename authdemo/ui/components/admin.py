"""``AdminPage``: users, their roles and sessions, and the audit trail, for holders of
``authdemo:admin``.

Invariant: the page shows its content only while the user holds ``authdemo:admin``
(following grants and revokes live), and every read and change it makes is checked
again on the server at the moment it happens (``LiveSession.admin_*``: admin rights
read from the database, and a recent sign-in for changes). Element ids and classes are
a public contract: ``#admin-page``, ``#forbidden``, ``#admin-users
li[data-username=NAME]`` with ``button.disable-user``, ``button.enable-user``,
``button.end-sessions``, ``button.reset-two-factor``, ``select.grant-role`` +
``button.grant-role``, ``button.revoke-role[data-role=ROLE]``; the recent-sign-in
prompt ``form#reauth-form input[name=password]``; ``#admin-events li``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any, cast

from ...domain import AuthError, InvalidCredentials, NotSignedIn, StorageUnavailable
from ...permissions import ADMIN, PermissionDenied
from ..connection.admin import AdminOverview, AdminUser, RecentSignInRequired
from ..hooks import AuthContext, Provided, use_auth
from ..library import component, html, use_context, use_effect, use_state
from ..rights import use_permission
from .forms import account_field, field, form_values, posted_form
from .login import LoginForm
from .sessions import when

log = logging.getLogger(__name__)

RECENT_SIGN_IN = timedelta(minutes=10)
REFRESH_EVERY = timedelta(seconds=10)
"""How often an open admin page reads again what no event announces (accounts created
or enabled elsewhere, e-mail changes, new audit rows, last activity)."""
FORBIDDEN = "You do not have permission to see this page. Ask an administrator for access."

Pending = tuple[str, str, str | None]  # action, username, role


@dataclass(eq=False)
class _Reads:
    """An admin page's reads: the latest way to read (this render's), which read was
    shown last, and the reads the watch started (cancelled with it)."""

    read: Callable[[], Awaitable[None]] | None = None
    started: int = 0
    shown: int = 0
    tasks: set[asyncio.Task[None]] = dataclass_field(default_factory=set)

    def start(self) -> None:
        if self.read is None:
            return
        task = asyncio.ensure_future(self.read())
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("admin page read failed", exc_info=task.exception())

    def cancel(self) -> None:
        for task in tuple(self.tasks):
            task.cancel()


@component
def AdminPage(
    reauth_after: timedelta = RECENT_SIGN_IN,
    events_limit: int = 50,
    refresh_every: timedelta | None = None,
) -> Any:
    """The admin page: the sign-in form while signed out, ``#forbidden`` without
    ``authdemo:admin``, else ``#admin-page``. Changes ask for the password again when it
    was last entered more than ``reauth_after`` ago. What it shows follows changes made
    elsewhere: sessions and roles within a second (they are broadcast), the rest every
    ``refresh_every`` (default ``REFRESH_EVERY``, 10 s)."""
    auth = use_auth()
    provided: Provided = use_context(AuthContext)
    allowed = use_permission(ADMIN.name)
    overview, set_overview = use_state(cast("AdminOverview | None", None))
    reloads, set_reloads = use_state(0)
    events_of, set_events_of = use_state("")
    chosen, set_chosen = use_state(cast("dict[str, str]", {}))
    message, set_message = use_state("")
    error, set_error = use_state("")
    pending, set_pending = use_state(cast("Pending | None", None))
    live = provided.live
    every = refresh_every or REFRESH_EVERY

    reads, _ = use_state(_Reads())  # this page's box, never replaced

    async def read_again() -> None:
        if not allowed or live is None:
            set_overview(None)
            return
        reads.started += 1
        mine = reads.started
        read: AdminOverview | None
        try:
            read = await live.admin_overview(events_of or None, events_limit)
        except (PermissionDenied, NotSignedIn):
            read = None
        except StorageUnavailable:
            log.warning("admin page not refreshed: the database is unavailable")
            return
        if mine < reads.shown:
            return  # a read that started later is on the page already
        reads.shown = mine
        # Rendered again only when something changed: a render gives every button a new
        # handler, and a click sent just before the new ones arrive is ignored by the UI
        # library. A refresh that found nothing new (most of them) must not cost a click.
        set_overview(lambda shown: shown if shown == read else read)

    reads.read = read_again  # as of this render (its ``allowed``, ``events_of``)

    @use_effect(dependencies=[allowed, live, every])
    def watch() -> Callable[[], None] | None:
        if not allowed or live is None:
            return None
        # Straight to a read, not through state: a state change renders the page.
        stop = live.watch_accounts(reads.start, every)

        def stop_all() -> None:
            stop()
            reads.cancel()

        return stop_all

    @use_effect(dependencies=[allowed, reloads, events_of, provided.state.rights_version])
    async def load() -> None:
        await read_again()

    async def act(action: str, username: str, role: str | None) -> None:
        if live is None:
            return
        set_error("")
        set_message("")
        try:
            set_message(await live.admin_act(action, username, role, reauth_after))
        except RecentSignInRequired:
            set_pending((action, username, role))
            return
        except AuthError as failure:
            set_error(str(failure))
        set_reloads(lambda n: n + 1)

    async def reauth(data: Any) -> None:
        if live is None or pending is None:
            return
        try:
            await live.confirm_password(form_values(data).get("password", ""))
        except InvalidCredentials as failure:  # Throttled too: its message says when
            set_error(str(failure))
            return
        except AuthError as failure:
            set_error(str(failure))
            return
        set_pending(None)
        await act(*pending)

    if auth.user is None:
        return LoginForm()
    if not allowed:
        return html.p({"id": "forbidden", "class_name": "card error", "role": "alert"}, FORBIDDEN)
    content: list[Any] = [html.h2("Administration")]
    if message:
        content.append(
            html.p({"id": "admin-message", "class_name": "ok", "role": "status"}, message)
        )
    if error:
        content.append(html.p({"id": "admin-error", "class_name": "error", "role": "alert"}, error))
    if pending is not None:
        content.append(reauth_form(auth.user, reauth))
    if overview is not None:
        now = auth.sessions.now()  # "5 min ago" as of this render
        content += [
            users_list(overview, chosen, set_chosen, act, now),
            events_card(overview, events_of, set_events_of, now),
        ]
    return html.div({"id": "admin-page", "class_name": "card wide"}, *content)


def reauth_form(user: Any, submit: Callable[[Any], Any]) -> Any:
    return html.form(
        posted_form("reauth-form", submit),
        html.p("It has been a while since you entered your password: enter it again."),
        account_field(user),
        field(
            "Password",
            id="reauth-password",
            name="password",
            type="password",
            autocomplete="current-password",
            required=True,
            auto_focus=True,
        ),
        html.button({"type": "submit", "class_name": "primary"}, "Confirm"),
    )


def users_list(
    overview: AdminOverview,
    chosen: dict[str, str],
    set_chosen: Callable[[Any], None],
    act: Callable[[str, str, str | None], Any],
    now: datetime,
) -> Any:
    role_names = [r.name for r in overview.roles]
    return html.ul(
        {"id": "admin-users"},
        *(user_row(u, role_names, chosen, set_chosen, act, now) for u in overview.users),
    )


def user_row(
    entry: AdminUser,
    role_names: list[str],
    chosen: dict[str, str],
    set_chosen: Callable[[Any], None],
    act: Callable[[str, str, str | None], Any],
    now: datetime,
) -> Any:
    summary = entry.summary
    name = summary.user.username
    grantable = [r for r in role_names if r not in summary.roles]
    selected = chosen.get(name) if chosen.get(name) in grantable else None
    selected = selected or (grantable[0] if grantable else "")

    def button(css: str, label: str, action: str, role: str | None = None) -> Any:
        async def click(_event: Any) -> None:
            await act(action, name, role)

        attributes: dict[str, Any] = {"class_name": css, "type": "button", "on_click": click}
        if role is not None and action == "revoke":
            attributes["data-role"] = role
        return html.button(attributes, label)

    async def choose(data: Any) -> None:
        value = data.get("target", {}).get("value", "") if isinstance(data, dict) else ""
        set_chosen(lambda current: {**current, name: str(value)})

    status = "active" if summary.user.is_active else "disabled"
    last = when(entry.last_active, now) if entry.last_active else "never (no open session)"
    grant: list[Any] = []
    if grantable:
        grant = [
            html.select(
                {"class_name": "grant-role", "value": selected, "on_change": choose},
                *(html.option({"key": r, "value": r}, r) for r in grantable),
            ),
            button("grant-role", "Grant", "grant", selected),
        ]
    return html.li(
        {"key": name, "data-username": name, "class_name": f"admin-user {status}"},
        html.strong({"class_name": "username"}, name),
        html.span(
            {"class_name": "meta muted"},
            f"{status} · two-factor {'on' if summary.mfa else 'off'} · "
            f"{summary.live_sessions} open session(s) · last active ",
            last,
        ),
        html.div(
            {"class_name": "roles"},
            *(
                html.span(
                    {"key": r, "class_name": "role"},
                    r,
                    button("revoke-role", "Revoke", "revoke", r),
                )
                for r in summary.roles
            ),
            *([] if summary.roles else [html.span({"class_name": "muted"}, "no roles")]),
        ),
        html.div(
            {"class_name": "actions"},
            button("enable-user", "Enable", "enable")
            if not summary.user.is_active
            else button("disable-user", "Disable", "disable"),
            button("end-sessions", "End sessions", "end_sessions"),
            *(
                [button("reset-two-factor", "Reset two-factor", "reset_two_factor")]
                if summary.mfa
                else []
            ),
            *grant,
        ),
    )


def events_card(
    overview: AdminOverview,
    events_of: str,
    set_events_of: Callable[[Any], None],
    now: datetime,
) -> Any:
    async def choose(data: Any) -> None:
        value = data.get("target", {}).get("value", "") if isinstance(data, dict) else ""
        set_events_of(str(value))

    names = [u.summary.user.username for u in overview.users]
    return html.section(
        {"class_name": "admin-events"},
        html.h3("Audit trail"),
        html.select(
            {"id": "events-user", "value": events_of, "on_change": choose},
            html.option({"key": "", "value": ""}, "Everyone"),
            *(html.option({"key": n, "value": n}, n) for n in names),
        ),
        html.ul(
            {"id": "admin-events"},
            *(
                html.li(
                    {"key": f"{e.at.isoformat()}-{i}"},
                    when(e.at, now),
                    f" {e.kind} {e.username or '-'} {e.detail}",
                )
                for i, e in enumerate(overview.events)
            ),
        ),
    )
