"""The revocation invariant under a randomised, concurrent mix of operations against real
`authdemo run` processes (two workers on one database; two hosts sharing PostgreSQL).

Tabs (IdomClient websockets, each a browser with its own cookie) sign in (mostly with
the current password, sometimes a stale one), sign out, sign out other sessions, change
their password and reload, while the operator's CLI sets passwords, disables, enables
and revokes. Races pit the CLI against sign-ins of the same user with the password it
is replacing (see `race`). When it has all stopped and had time to propagate:

- database: a session "may act" when it is not revoked or expired, its user is active
  and its ``user_epoch`` equals the user's ``credential_epoch``. None that may act
  (without the "active" term, see `check_database`) belongs to a disabled user, and
  none was created before its user's last password change (but the one that made that
  change itself: it goes on under a new token);
- screen: a tab that shows the signed-in view shows an active user with a session that
  may act, and the session its ticket/cookie leads to may act (and was not opened with
  a password that has since been replaced); a tab that was idle and signed in as a user
  when that user's sessions were ended (operator, or another tab) shows the sign-in
  form; a fresh websocket with any tab's cookie is signed in only on a session that may
  act.

The run is seeded and printed; rerun one with AUTHDEMO_TEST_SEED=<seed>. The plan (which
operation, when, on which tab and user, with which new password) depends on the seed
only; the interleaving is whatever the machine makes of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import inspect as inspect_schema
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from websockets.exceptions import ConnectionClosed

from tests.scale.conftest import PASSWORD, create_users
from tests.support.idom_client import IdomClient, Model, text_of, walk
from tests.support.server import ServerProcess, start_all

pytestmark = pytest.mark.slow

COOKIE_NAME = "__Host-authdemo_session"  # the README's literal name (authdemo.http.cookies)
TICKET_PREFIX = "/_auth/ticket/"

USERS = ("ann", "bob", "cyd")
TABS = 7  # tabs the plan acts on at random (races bring their own: see `race`)
RACE_TRIES = 8  # sign-ins per racer and race, at most
MAX_RETIRED = 3  # racer tabs left idle on a kept session until the end (more clients)
PLANNED = 80  # operations started per RUN_SECONDS (races add their sign-ins)
RUN_SECONDS = 12.5  # the plan's start times spread over this long
MIXED_SECONDS = 9.0  # operator commands of every kind until then; only races after
TAIL_RACES = (9.8, 10.7)
SWEEP_SECONDS = 11.5  # every signed-out tab signs in; the last race follows at RUN_SECONDS
OP_TIMEOUT = 5.0  # how long one UI action may take to show its outcome
CLI_TIMEOUT = 20.0  # how long one operator command may take (~1 s normally)
CLI_SLOTS = 2  # operator commands running at once, at most
PROPAGATION = 1.5  # SQLite workers poll every 250 ms; a revocation must land within 1 s
LATE_GRACE = 5.0  # what is still on screen after PROPAGATION gets this much longer
SERVER_ENV = {  # failed sign-ins are part of the mix: no back-off
    "AUTHDEMO_THROTTLE_ACCOUNT_FAILURES": "1000000",
    "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": "1000000",
}
OPERATOR_KINDS = ("set-password", "disable-user", "enable-user", "revoke-sessions")
# Operator actions after which every tab that was idle and signed in as that user must
# show the sign-in form at the end (revoke-sessions too: the README promises the same).
ENDS_ALL_SESSIONS = ("set-password", "disable-user", "revoke-sessions")


# --- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    at: float  # seconds after the start
    kind: str  # "tab", "arrive", "race" or one of OPERATOR_KINDS
    user: str
    tab: int = -1
    stale: bool = False  # sign in / confirm with an old password
    password: str = ""  # the new password (set-password, change-password)
    rolls: tuple[float, ...] = (0.0, 0.0, 0.0)
    action: str = ""  # race: the operator's command
    racers: tuple[float, ...] = ()  # race: a roll per racer
    if_needed: bool = False  # enable-user: only when the account is disabled
    last: bool = False  # the last race: starts once every tab has come back

    def label(self) -> str:
        where = f" tab{self.tab}" if self.tab >= 0 else ""
        action = f" {self.action}" if self.kind == "race" else ""
        return f"{self.kind}{action}{where} {self.user} @{self.at:.2f}s"


def make_plan(rng: random.Random) -> list[Op]:
    """~9 s of everything at once; then every account is enabled again, tab actions and
    two races follow, every account is enabled once more and every tab signs in, and a
    last race ends the run: its winners (if the invariant does not hold) have nothing
    after them that would clean them up, and the other users' tabs stay signed in."""
    plan: list[Op] = []
    serial = 0

    def new_password() -> str:
        nonlocal serial
        serial += 1
        return f"pw{serial}-{rng.getrandbits(32):08x}"

    def rolls() -> tuple[float, ...]:
        return (rng.random(), rng.random(), rng.random())

    def a_tab_op(at: float) -> Op:
        user = rng.choice(USERS)
        stale = rng.random() < 0.25
        return Op(at, "tab", user, rng.randrange(TABS), stale, new_password(), rolls())

    def a_race(at: float) -> Op:
        # The operator changes the password or disables the account while tabs sign in
        # as that user with the password that is current when the command starts; the
        # sign-ins are aimed at the command's commit (see `race` below).
        action = "set-password" if rng.random() < 0.7 else "disable-user"
        password = new_password() if action == "set-password" else ""
        racers = (rng.random(), rng.random())
        return Op(at, "race", rng.choice(USERS), password=password, action=action, racers=racers)

    at = 0.0
    while True:
        at += rng.expovariate(PLANNED / RUN_SECONDS)
        if at >= MIXED_SECONDS:
            break
        user = rng.choice(USERS)
        r = rng.random()
        if r < 0.70 or at > MIXED_SECONDS - 1.0:  # leave the commands time to finish
            # whatever the tab's state suggests: sign in, or act while signed in
            plan.append(a_tab_op(at))
        elif r < 0.78:
            plan.append(Op(at, "set-password", user, password=new_password()))
        elif r < 0.82:
            plan.append(Op(at, "disable-user", user))
            back = at + rng.uniform(1.5, 4.0)
            if back < MIXED_SECONDS:
                plan.append(Op(back, "enable-user", user))
        elif r < 0.86:
            plan.append(Op(at, "enable-user", user))
        elif r < 0.91:
            plan.append(Op(at, "revoke-sessions", user))
        else:
            plan.append(a_race(at))
    plan += [Op(MIXED_SECONDS, "enable-user", user, if_needed=True) for user in USERS]
    at = MIXED_SECONDS + 0.3
    while at < SWEEP_SECONDS:
        plan.append(a_tab_op(at))
        at += rng.expovariate(PLANNED / RUN_SECONDS)
    plan += [a_race(at) for at in TAIL_RACES]
    plan += [Op(SWEEP_SECONDS - 0.6, "enable-user", user, if_needed=True) for user in USERS]
    # Everyone comes back: each tab that is signed out signs in (current password)...
    plan += [
        Op(SWEEP_SECONDS + 0.05 * i, "arrive", rng.choice(USERS), i, rolls=rolls())
        for i in range(TABS)
    ]
    # ...and one last race, whose losers and bystanders must all end up signed out.
    plan.append(replace(a_race(RUN_SECONDS), last=True))
    return sorted(plan, key=lambda op: op.at)


# --- the browsers ---------------------------------------------------------------------------


@dataclass
class Tab:
    index: int
    host: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    token: str | None = None  # the cookie this browser holds
    client: IdomClient | None = None
    generation: int = 0  # bumped by every operation on this tab
    view_ticket: str | None = None  # the ticket of the sign-in/rotation the view shows
    view_token: str | None = None  # the cookie the view was opened with, if signed in then
    credential: tuple[str, str] | None = None  # (user, password) that opened/rotated it
    unanswered: tuple[str, str] | None = None  # a sign-in submitted that never answered
    changed_to: str | None = None  # the password this view's session set itself
    closed: str | None = None  # why the server closed the websocket
    acting: bool = False  # an operation of the plan is under way on this tab


@dataclass
class Run:
    seed: int
    variant: str
    db_url: str
    hosts: list[ServerProcess]
    tabs: list[Tab]
    http: httpx.AsyncClient
    passwords: dict[str, list[str]]  # every password ever tried as a new one, in order
    started: float = 0.0
    cli_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CLI_SLOTS))
    commands: int = 0  # operator commands waiting or running
    back: int = 0  # tabs that have come back at the end
    all_back: asyncio.Event = field(default_factory=asyncio.Event)
    cli_seconds: float = 0.8  # how long a CLI command takes here (moving average)
    done: Counter[str] = field(default_factory=Counter)
    obligations: list[tuple[Tab, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the harness's own exceptions
    cli_problems: list[str] = field(default_factory=list)
    cli_crashes: list[str] = field(default_factory=list)
    engine: AsyncEngine | None = None  # the test's own look at the database
    kept: list[str] = field(default_factory=list)  # sessions racers kept
    free_racers: list[Tab] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # stored hash -> its password
    retired: int = 0  # racer tabs kept aside, signed into a kept session, for the end
    spot_problems: list[str] = field(default_factory=list)  # found during the run
    notes: list[str] = field(default_factory=list)

    def host(self, tab: Tab) -> ServerProcess:
        return self.hosts[tab.host]

    def racer_tab(self) -> Tab:
        """A tab only races use: a free one, or a new one."""
        if self.free_racers:
            return self.free_racers.pop()
        tab = Tab(len(self.tabs), len(self.tabs) % len(self.hosts))
        self.tabs.append(tab)
        return tab

    def pick_host(self, roll: float) -> ServerProcess:
        return self.hosts[min(int(roll * len(self.hosts)), len(self.hosts) - 1)]


def cookie_header(token: str) -> str:
    return f"{COOKIE_NAME}={token}"


def set_cookie_token(response: httpx.Response) -> str | None:
    value = response.headers.get("set-cookie")
    return value.split(";")[0].split("=", 1)[1] if value else None


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


def shown_user(client: IdomClient | None) -> str | None:
    """The username a signed-in view shows ("Signed in as <strong>ann</strong>.")."""
    greeting = None if client is None else client.find("greeting")
    if greeting is None:
        return None
    strong = next((n for n in walk(greeting) if n.get("tagName") == "strong"), None)
    return text_of(strong) if strong is not None else text_of(greeting)


def signed_out(client: IdomClient) -> bool:
    return client.find("login-form") is not None and client.find("greeting") is None


def node_key(node: Model | None) -> Any:
    if node is None:
        return None
    return node.get("key", node.get("attributes", {}).get("key"))


def form_attempt(client: IdomClient) -> tuple[Any, ...]:
    """Changes with every refused sign-in: the form (or its password field) is re-keyed
    after each attempt, so that the field comes back empty."""
    form = client.find("login-form")
    keys = [node_key(form)]
    keys += [node_key(n) for n in walk(form) if str(node_key(n)).startswith("password-")]
    return tuple(keys)


def form_busy(client: IdomClient) -> bool:
    form = client.find("login-form")
    buttons = [n for n in walk(form) if n.get("tagName") == "button"]
    return bool(buttons and buttons[0].get("attributes", {}).get("disabled"))


def ticket_srcs(client: IdomClient) -> list[str]:
    return [
        str(img.get("attributes", {}).get("src"))
        for img in client.find_all("img")
        if str(img.get("attributes", {}).get("src", "")).startswith(TICKET_PREFIX)
    ]


async def connect(base_url: str, token: str | None) -> IdomClient:
    """A websocket that presents exactly this cookie and fetches no ticket by itself:
    the harness plays the browser's page load and <img> request explicitly, because
    it needs each ticket to tell which session a view runs as."""
    options = inspect.signature(IdomClient.connect).parameters
    own = {name: False for name in ("follow_tickets", "page_first") if name in options}
    cookie = cookie_header(token) if token else None
    return await IdomClient.connect(base_url, cookie=cookie, **own)  # type: ignore[arg-type]


async def drain(tab: Tab, quiet: float = 0.05) -> None:
    """Apply whatever the server has sent meanwhile."""
    if tab.client is None:
        return
    try:
        while True:
            await tab.client.receive(quiet)
    except TimeoutError:
        return
    except ConnectionClosed as closed:
        tab.closed = f"closed ({closed})"
        tab.client = None


async def open_tab(run: Run, tab: Tab) -> None:
    """Load the page (which may hand out a cookie), then open the websocket with it."""
    base = run.host(tab).base_url
    headers = {"cookie": cookie_header(tab.token)} if tab.token else {}
    response = await run.http.get(base + "/", headers=headers)
    tab.token = set_cookie_token(response) or tab.token
    tab.client = await connect(base, tab.token)
    tab.closed = None
    tab.view_ticket = None
    if shown_user(tab.client) is not None:
        tab.view_token = tab.token  # same session as before: credential stays
    else:
        tab.view_token = tab.credential = tab.changed_to = None


async def redeem(run: Run, tab: Tab, src: str, roll: float) -> None:
    """What the hidden <img> does: bring the ticket with the cookie held at sign-in,
    keep the cookie it hands out, and follow a redirect with that cookie."""
    base = run.pick_host(roll).base_url
    headers = {"sec-fetch-site": "same-origin"}
    if tab.token:
        headers["cookie"] = cookie_header(tab.token)
    response = await run.http.get(base + src, headers=headers)
    outcome = str(response.status_code)
    if response.status_code < 400:
        tab.token = set_cookie_token(response) or tab.token
        location = response.headers.get("location")
        if response.is_redirect and location:
            headers["cookie"] = cookie_header(tab.token) if tab.token else ""
            followed = await run.http.get(base + location, headers=headers)
            outcome += f" then {followed.status_code}"
    run.done[f"ticket:{outcome}"] += 1


def idle_tabs_of(run: Run, user: str, but: Tab | None = None) -> list[tuple[Tab, int]]:
    return [
        (t, t.generation)
        for t in run.tabs
        if t is not but and not t.acting and shown_user(t.client) == user
    ]


async def pump(run: Run) -> None:
    """What a browser does all along: apply what the server sends. An idle websocket
    whose messages nobody reads stops reading at its queue's high-water mark, pongs
    included, and the client library then drops it (1011, keepalive ping timeout)."""
    while True:
        for tab in list(run.tabs):
            if tab.client is not None and not tab.lock.locked():
                async with tab.lock:  # not an action: the generation stays
                    await drain(tab, quiet=0.005)
        await asyncio.sleep(0.2)


async def current_password(run: Run, user: str) -> str:
    """The user's password as the database has it now. Commands and forms run
    concurrently and commit in any order, so which one won is read, not assumed: the
    one of the passwords ever tried that verifies against the stored hash."""
    password_hash = (await user_row(run, user))[0]
    if password_hash not in run.hashes:
        for candidate in reversed(run.passwords[user]):
            if await asyncio.to_thread(verifies, password_hash, candidate):
                run.hashes[password_hash] = candidate
                break
        else:
            return run.passwords[user][-1]
    return run.hashes[password_hash]


async def stale_password(run: Run, user: str, roll: float) -> str:
    current = await current_password(run, user)
    older = [p for p in run.passwords[user] if p != current]
    return older[min(int(roll * len(older)), len(older) - 1)] if older else "not the password"


# --- UI operations (the tab's lock is held) ---------------------------------------------------


async def ui_login(run: Run, tab: Tab, user: str, password: str, roll: float) -> str:
    """Submit the sign-in form; fetch the ticket like the hidden <img> as soon as it is
    rendered (with the signed-in view, or before it: a view may wait for its cookie and
    show "Signing in…" meanwhile); then wait for the view to settle."""
    client = tab.client
    assert client is not None
    before = form_attempt(client)
    old = set(ticket_srcs(client))
    tab.view_ticket = tab.view_token = tab.credential = tab.changed_to = None
    seen_busy = False

    def new_tickets(c: IdomClient) -> list[str]:
        return sorted(set(ticket_srcs(c)) - old)

    def answered(c: IdomClient) -> bool:
        nonlocal seen_busy
        if c.find("greeting") is not None or new_tickets(c):
            return True
        if c.find("login-form") is None:
            return False
        if form_attempt(c) != before:
            return True
        seen_busy = seen_busy or form_busy(c)
        return seen_busy and not form_busy(c) and c.find("login-error") is not None

    earlier, tab.unanswered = tab.unanswered, None
    await client.login(user, password)
    try:
        await client.wait_for(answered, OP_TIMEOUT)
    except TimeoutError:
        tab.unanswered = (user, password)  # its answer may still come, later
        return "no answer"
    if client.find("greeting") is None and not new_tickets(client):
        message = client.text("login-error") or ""
        return "refused" if message.startswith("Incorrect") else f"refused: {message[:40]}"
    if (shown := shown_user(client)) is not None and shown != user:
        return earlier_sign_in(tab, shown, earlier)
    if earlier is not None and earlier[0] == user and earlier[1] != password:
        # The same user's earlier sign-in, with another password, may be the one whose
        # answer this is: which password opened the view is unknown.
        tab.credential = None
        run.notes.append(f"tab{tab.index} ({user}): opened by one of two passwords")
    else:
        tab.credential = (user, password)
    if not new_tickets(client):
        try:
            await client.wait_for(lambda c: bool(new_tickets(c)), 2.0)
        except TimeoutError:
            if (shown := shown_user(client)) is not None and shown != user:
                return earlier_sign_in(tab, shown, earlier)
            return "ok, no ticket" if shown is not None else "ok, then out"
    src = new_tickets(client)[0]
    tab.view_ticket = src.removeprefix(TICKET_PREFIX)
    await redeem(run, tab, src, roll)
    try:  # signed in, or back at the form (the session ended meanwhile)
        await client.wait_for(
            lambda c: (
                c.find("greeting") is not None
                or (
                    c.find("login-form") is not None
                    and c.find("signing-in") is None
                    and src not in ticket_srcs(c)
                )
            ),
            OP_TIMEOUT,
        )
    except TimeoutError:
        return "ok, view never settled"
    shown = shown_user(client)
    if shown is not None and shown != user:
        return earlier_sign_in(tab, shown, earlier)
    return "ok" if shown is not None else "ok, then signed out"


def earlier_sign_in(tab: Tab, shown: str, earlier: tuple[str, str] | None) -> str:
    """The view shows the answer of an earlier sign-in of this tab that the harness had
    given up on (a view signs in once at a time: this one was refused or queued behind
    it; or that one's ticket was never fetched and its wait for the cookie ran out).
    Judge the view by the credentials that really opened it."""
    tab.credential = earlier if earlier is not None and earlier[0] == shown else None
    return "ok, showing an earlier sign-in"


async def ui_logout(tab: Tab) -> str:
    client = tab.client
    assert client is not None
    await client.click("logout")
    try:
        await client.wait_for(
            lambda c: c.find("login-form") is not None or c.find("account-error") is not None,
            OP_TIMEOUT,
        )
    except TimeoutError:
        return "no answer"
    if client.find("login-form") is None:
        return "error"
    tab.view_ticket = tab.view_token = tab.credential = tab.changed_to = None
    return "ok"


async def settle(
    run: Run,
    tab: Tab,
    done: Callable[[IdomClient], bool],
    succeeded: Callable[[IdomClient], bool],
    roll: float,
) -> bool:
    """Wait for ``done``. A re-keyed session (a password change; "sign out other
    sessions" since credential epochs) hands its new cookie over through a new ticket,
    rendered before or after the action's own outcome: fetch it like the <img> as soon
    as it shows up (up to a second after a success). True if one was fetched; raises
    TimeoutError."""
    client = tab.client
    assert client is not None
    old = set(ticket_srcs(client))
    fetched = False

    def new_ticket(c: IdomClient) -> bool:
        return not fetched and bool(set(ticket_srcs(c)) - old)

    async def fetch() -> None:
        nonlocal fetched
        assert client is not None
        src = sorted(set(ticket_srcs(client)) - old)[0]
        tab.view_ticket = src.removeprefix(TICKET_PREFIX)
        fetched = True
        await redeem(run, tab, src, roll)

    await client.wait_for(lambda c: done(c) or new_ticket(c), OP_TIMEOUT)
    if new_ticket(client):
        await fetch()
        await client.wait_for(done, OP_TIMEOUT)
    if not fetched and succeeded(client) and client.find("greeting") is not None:
        try:
            await client.wait_for(new_ticket, 1.0)
        except TimeoutError:
            return False
        await fetch()
    return fetched


async def ui_logout_others(run: Run, tab: Tab, roll: float) -> str:
    client = tab.client
    assert client is not None
    user = shown_user(client)
    assert user is not None
    watched = idle_tabs_of(run, user, but=tab)
    seen_busy = False

    def finished(c: IdomClient) -> bool:
        nonlocal seen_busy
        if c.find("greeting") is None:
            return True
        button = c.find("logout-others")
        if button is not None and button.get("attributes", {}).get("disabled"):
            seen_busy = True
            return False
        return seen_busy

    await client.click("logout-others")
    try:
        fetched = await settle(
            run, tab, finished, lambda c: c.find("logout-others-done") is not None, roll
        )
    except TimeoutError:
        return "no answer"
    if client.find("greeting") is None:
        tab.view_ticket = tab.view_token = tab.credential = tab.changed_to = None
        return "signed out meanwhile"
    if client.find("sessions-error") is not None or client.find("logout-others-done") is None:
        return "error"
    run.obligations += [(t, g, f"tab{tab.index} signed out {user}'s others") for t, g in watched]
    return "ok" if fetched else "ok, no ticket"


async def ui_change_password(run: Run, tab: Tab, current: str, new: str, roll: float) -> str:
    client = tab.client
    assert client is not None
    user = shown_user(client)
    assert user is not None
    watched = idle_tabs_of(run, user, but=tab)
    before = node_key(client.find("change-password"))
    kept = tab.credential
    tab.credential = None  # unknown until the outcome is
    run.passwords[user].append(new)  # a candidate from now on: it may commit
    await client.submit("change-password", {"current_password": current, "new_password": new})
    try:
        fetched = await settle(
            run,
            tab,
            lambda c: c.find("greeting") is None or node_key(c.find("change-password")) != before,
            lambda c: c.find("change-password-ok") is not None,
            roll,
        )
    except TimeoutError:
        return "no answer"
    if client.find("greeting") is None:
        tab.view_ticket = tab.view_token = tab.changed_to = None
        return "signed out meanwhile"
    if client.find("change-password-ok") is None:
        tab.credential = kept
        return "refused"
    tab.credential, tab.changed_to = (user, new), new
    run.obligations += [(t, g, f"tab{tab.index} changed {user}'s password") for t, g in watched]
    return "ok" if fetched else "ok, no ticket"


async def ui_reload(run: Run, tab: Tab, roll: float) -> str:
    assert tab.client is not None
    await tab.client.close()
    tab.client = None
    tab.host = min(int(roll * len(run.hosts)), len(run.hosts) - 1)
    await open_tab(run, tab)
    return "signed in" if shown_user(tab.client) is not None else "signed out"


async def tab_op(run: Run, tab: Tab, op: Op) -> tuple[str, str]:
    """Do what the plan asks of this tab, as far as its current state allows."""
    if tab.client is None:
        await open_tab(run, tab)
    await drain(tab)
    if tab.client is None:
        return "tab", "closed"
    client = tab.client
    r0, r1, r2 = op.rolls
    user = shown_user(client)
    if op.kind == "arrive":
        if user is not None:
            return "arrive", "already signed in"
        if not signed_out(client):
            return "arrive", "neither view"
        user = await active_user(run, op.user)
        return "arrive", await ui_login(run, tab, user, await current_password(run, user), r1)
    if user is None:
        if not signed_out(client):
            return "tab", "neither view"
        if op.stale:
            password = await stale_password(run, op.user, r1)
        else:
            password = await current_password(run, op.user)
        return ("login-stale" if op.stale else "login"), await ui_login(
            run, tab, op.user, password, r2
        )
    if r0 < 0.30:
        return "reload", await ui_reload(run, tab, r1)
    if r0 < 0.45:
        if client.find("logout") is None:  # e.g. mid re-render
            return "logout", "no button"
        return "logout", await ui_logout(tab)
    if r0 < 0.65:
        if client.find("logout-others") is None:
            return "logout-others", "no button"
        return "logout-others", await ui_logout_others(run, tab, r1)
    if r0 < 0.95:
        if client.find("change-password") is None:
            return "change-password", "no form"
        if op.stale:
            current = await stale_password(run, user, r1)
        else:
            current = await current_password(run, user)
        kind = "change-password-stale" if op.stale else "change-password"
        return kind, await ui_change_password(run, tab, current, op.password, r2)
    return "idle", "ok"


# --- operator operations ----------------------------------------------------------------------


async def cli(db_url: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "authdemo",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "AUTHDEMO_DATABASE_URL": db_url},
    )
    try:
        out, _ = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), CLI_TIMEOUT
        )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        out, _ = await process.communicate()
        return -1, f"no answer in {CLI_TIMEOUT:.0f} s (killed); output: {out.decode()[-300:]}"
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def operator_op(run: Run, op: Op, running: asyncio.Event | None = None) -> tuple[str, str]:
    """One command of the real CLI. At most CLI_SLOTS run at once (each is a Python
    start-up: a pile of them starves a small machine); ``running`` is set once this
    one has its slot and starts."""
    run.commands += 1
    try:
        return await _operator_op(run, op, running)
    finally:
        run.commands -= 1


async def _operator_op(run: Run, op: Op, running: asyncio.Event | None) -> tuple[str, str]:
    async with run.cli_slots:
        if op.if_needed and (await user_row(run, op.user))[1]:
            if running is not None:
                running.set()
            return op.kind, "not needed"
        # Tabs signed in as this user and idle now are signed in at the commit too.
        watched = idle_tabs_of(run, op.user) if op.kind in ENDS_ALL_SESSIONS else []
        args = [op.kind, op.user]
        stdin = None
        if op.kind == "set-password":
            args.append("--password-stdin")
            stdin = op.password + "\n"
            run.passwords[op.user].append(op.password)  # a candidate from now on
        loop = asyncio.get_running_loop()
        started = loop.time()
        if running is not None:
            running.set()
        code, out = await cli(run.db_url, *args, stdin=stdin)
    if code != 0 or "Traceback" in out:
        run.cli_problems.append(f"{op.label()}: exit {code}: {out.strip()[-600:]}")
    if "Traceback" in out:  # the CLI promises one clear line, never a traceback
        run.cli_crashes.append(f"{op.label()}: {out.strip()[-600:]}")
    if code == 0:
        run.cli_seconds = 0.7 * run.cli_seconds + 0.3 * (loop.time() - started)
        run.obligations += [(t, g, f"operator {op.kind} {op.user}") for t, g in watched]
    return op.kind, f"exit {code}"


async def race_login(run: Run, tab: Tab, user: str, password: str, roll: float) -> tuple[str, str]:
    """Sign this tab in as ``user`` now (signing out whoever it shows first)."""
    if tab.client is None:
        await open_tab(run, tab)
    await drain(tab)
    if tab.client is None:
        return "race-login", "closed"
    if shown_user(tab.client) is not None and tab.client.find("logout") is not None:
        run.done[f"logout:{await ui_logout(tab)}"] += 1
    if not signed_out(tab.client):
        return "race-login", "not at the sign-in form"
    return "race-login", await ui_login(run, tab, user, password, roll)


async def on_tab(run: Run, tab: Tab, action: Callable[[], Awaitable[tuple[str, str]]]) -> None:
    async with tab.lock:
        tab.generation += 1
        tab.acting = True
        try:
            kind, outcome = await action()
        except ConnectionClosed as closed:
            tab.closed = f"closed ({closed})"
            tab.client = None
            kind, outcome = "tab", "connection closed"
        finally:
            tab.acting = False
    run.done[f"{kind}:{outcome}"] += 1


_verifier = PasswordHasher()


@lru_cache(maxsize=4096)
def verifies(password_hash: str, password: str) -> bool:
    try:
        return bool(_verifier.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


async def active_user(run: Run, preferred: str) -> str:
    """``preferred`` if the account is enabled, else the first enabled one."""
    for user in (preferred, *USERS):
        if (await user_row(run, user))[1]:
            return user
    return preferred


async def user_row(run: Run, username: str) -> tuple[Any, ...]:
    """What a password change or a disable changes in the user's row."""
    assert run.engine is not None
    async with run.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT password_hash, is_active FROM authdemo_users WHERE username = :name"),
                {"name": username},
            )
        ).one()
    return (row[0], bool(row[1]))


async def session_note(run: Run, tab: Tab) -> str:
    """The session a racer kept, as the database has it right after the sign-in."""
    assert run.engine is not None and tab.view_ticket is not None
    async with run.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT s.id, s.created_at, s.revoked_at, u.password_changed_at, u.is_active "
                    "FROM authdemo_auth_tickets t JOIN authdemo_sessions s ON s.id = t.session_id "
                    "JOIN authdemo_users u ON u.id = s.user_id WHERE t.ticket_hash = :hash"
                ),
                {"hash": sha256(tab.view_ticket)},
            )
        ).one_or_none()
    if row is None:
        return "(no session found)"
    created, revoked, changed = as_utc(row[1]), as_utc(row[2]), as_utc(row[3])
    assert created is not None and changed is not None
    return (
        f"session {row[0]} created {created:%S.%f} ({'after' if created > changed else 'before'}"
        f" the last password change, at {changed:%S.%f}), "
        f"{'revoked' if revoked else 'not revoked'}, user {'active' if row[4] else 'disabled'}"
    )


async def race(run: Run, op: Op) -> None:
    """The operator's command, and racers signing in with the password it replaces (or
    as the user it disables) for as long as it runs.

    A racer signs in, then looks at the user's row: if the change is not in yet, its
    session opened before the change (which must end it), so it signs out and tries
    again; once the change is in, the session it just got may be one that verified the
    old credentials before the commit and opened after it. It keeps that one and stops
    (so does a refused sign-in: the change is in). A kept session must be dead once the
    command has returned, whenever it opened: checked then (later operations on the
    user would hide it by the end), and its tab stays aside, idle, for the final checks.
    """
    running = asyncio.Event()
    command = asyncio.create_task(operator_op(run, replace(op, kind=op.action), running))
    await running.wait()
    password = await current_password(run, op.user)
    before = await user_row(run, op.user)
    loop = asyncio.get_running_loop()
    started, expected = loop.time(), run.cli_seconds
    tabs = [run.racer_tab() for _ in op.racers]
    kept: list[tuple[Tab, str]] = []

    async def racer(tab: Tab, roll: float) -> tuple[str, str]:
        # Start within the first half of the command's usual run time.
        await asyncio.sleep(max(0.0, started + expected * 0.5 * roll - loop.time()))
        outcome = "too late"
        for attempt in range(RACE_TRIES):
            if command.done():
                break
            outcome = (await race_login(run, tab, op.user, password, roll))[1]
            if outcome != "ok":
                outcome += " at once" if attempt == 0 else " after a sign-in"
                break
            if await user_row(run, op.user) != before and tab.view_ticket is not None:
                kept.append((tab, tab.view_ticket))
                run.kept.append(f"{op.label()}: tab{tab.index} {await session_note(run, tab)}")
                return "race-login", "ok, opened as the change went in"
        return "race-login", outcome

    await asyncio.gather(
        *(
            on_tab(run, tab, partial(racer, tab, roll))
            for tab, roll in zip(tabs, op.racers, strict=True)
        )
    )
    kind, outcome = await command
    run.done[f"{kind}:{outcome}"] += 1
    for tab in tabs:
        if any(tab is k for k, _ in kept) and run.retired < MAX_RETIRED:
            run.retired += 1  # stays as it is until the final checks
        else:
            run.free_racers.append(tab)
    if outcome != "exit 0" or not kept:
        return
    # At once: the database needs no propagation, and a later operation on the user
    # could end the session legitimately and hide what happened.
    assert run.engine is not None
    snap = await read_database(run.engine)
    for tab, ticket in kept:
        sid = snap.ticket_sessions.get(sha256(ticket))
        session = snap.sessions.get(sid) if sid is not None else None
        if session is not None and snap.live(session):
            user = snap.users[session.user_id]
            run.spot_problems.append(
                f"during the run: {op.label()}: session {sid} that tab{tab.index} signed into "
                "with the old credentials is still live after the command returned "
                f"(created {session.created_at:%H:%M:%S.%f}, password changed "
                f"{user.password_changed_at:%H:%M:%S.%f}, user "
                f"{'active' if user.is_active else 'disabled'}, epochs "
                f"{session.user_epoch}/{user.credential_epoch})"
            )


async def execute(run: Run, op: Op) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, run.started + op.at - loop.time()))
    # The ending keeps its order on a slow machine too: the tabs come back once every
    # earlier command is done, and the last race starts once they all have.
    if op.kind == "arrive":
        deadline = loop.time() + 2 * CLI_TIMEOUT
        while run.commands and loop.time() < deadline:
            await asyncio.sleep(0.05)
    if op.last:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.all_back.wait(), 2 * CLI_TIMEOUT)
    try:
        if op.kind == "race":
            await race(run, op)
        elif op.kind in OPERATOR_KINDS:
            kind, outcome = await operator_op(run, op)
            run.done[f"{kind}:{outcome}"] += 1
        else:
            tab = run.tabs[op.tab]
            await on_tab(run, tab, lambda: tab_op(run, tab, op))
    except Exception:
        run.errors.append(f"{op.label()}:\n{traceback.format_exc()}")
    finally:
        if op.kind == "arrive":
            run.back += 1
            if run.back == TABS:
                run.all_back.set()


# --- the database ---------------------------------------------------------------------------


def as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def moment(value: Any) -> datetime:
    found = as_utc(value)
    assert found is not None
    return found


@dataclass
class UserState:
    id: int
    username: str
    is_active: bool
    password_changed_at: datetime
    password_hash: str
    credential_epoch: int | None


@dataclass
class SessionState:
    id: int
    user_id: int
    token_hash: str
    created_at: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    revoked_at: datetime | None
    user_epoch: int | None


@dataclass
class Snapshot:
    now: datetime
    has_epochs: bool
    users: dict[int, UserState]
    sessions: dict[int, SessionState]
    by_token_hash: dict[str, int]
    ticket_sessions: dict[str, int]  # ticket hash -> session id

    def user_named(self, name: str) -> UserState | None:
        return next((u for u in self.users.values() if u.username == name), None)

    def live(self, s: SessionState) -> bool:
        """Everything "may act" asks except that the user is active."""
        user = self.users[s.user_id]
        return (
            s.revoked_at is None
            and s.idle_expires_at > self.now
            and s.absolute_expires_at > self.now
            and (not self.has_epochs or s.user_epoch == user.credential_epoch)
        )

    def may_act(self, s: SessionState) -> bool:
        return self.live(s) and self.users[s.user_id].is_active


async def read_database(engine: AsyncEngine) -> Snapshot:
    async with engine.connect() as conn:

        def columns(sync_conn: Any, table: str) -> set[str]:
            return {c["name"] for c in inspect_schema(sync_conn).get_columns(table)}

        user_columns = await conn.run_sync(columns, "authdemo_users")
        session_columns = await conn.run_sync(columns, "authdemo_sessions")
        has_epochs = "credential_epoch" in user_columns and "user_epoch" in session_columns
        user_epoch = "credential_epoch" if has_epochs else "NULL"
        session_epoch = "user_epoch" if has_epochs else "NULL"
        users = (
            await conn.execute(
                text(
                    "SELECT id, username, is_active, password_changed_at, password_hash, "
                    f"{user_epoch} FROM authdemo_users"
                )
            )
        ).all()
        sessions = (
            await conn.execute(
                text(
                    "SELECT id, user_id, token_hash, created_at, idle_expires_at, "
                    f"absolute_expires_at, revoked_at, {session_epoch} FROM authdemo_sessions "
                    "WHERE user_id IS NOT NULL"
                )
            )
        ).all()
        tickets = (
            await conn.execute(text("SELECT ticket_hash, session_id FROM authdemo_auth_tickets"))
        ).all()
    user_states = {
        int(r[0]): UserState(
            int(r[0]),
            str(r[1]),
            bool(r[2]),
            moment(r[3]),
            str(r[4]),
            r[5],
        )
        for r in users
    }
    session_states = {
        int(r[0]): SessionState(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            moment(r[3]),
            moment(r[4]),
            moment(r[5]),
            as_utc(r[6]),
            r[7],
        )
        for r in sessions
    }
    return Snapshot(
        now=datetime.now(UTC),
        has_epochs=has_epochs,
        users=user_states,
        sessions=session_states,
        by_token_hash={s.token_hash: s.id for s in session_states.values()},
        ticket_sessions={str(h): int(i) for h, i in tickets},
    )


def password_is(user: UserState, password: str) -> bool:
    return verifies(user.password_hash, password)


def view_session(snap: Snapshot, tab: Tab) -> int | None:
    """The session a tab's view runs as: through its sign-in's ticket, or its cookie."""
    tickets = [tab.view_ticket] if tab.view_ticket else []
    if tab.client is not None:
        tickets += [s.removeprefix(TICKET_PREFIX) for s in ticket_srcs(tab.client)]
    for ticket in tickets:
        if sha256(ticket) in snap.ticket_sessions:
            return snap.ticket_sessions[sha256(ticket)]
    if tab.view_token is not None:
        return snap.by_token_hash.get(sha256(tab.view_token))
    return None


# --- the invariant --------------------------------------------------------------------------


def check_database(run: Run, snap: Snapshot) -> list[str]:
    problems = []
    # A session that did a self-service password change keeps going under a new token
    # (README: "rotates this session's token"), so its created_at predates the change
    # it made itself. That one (the change that is current) is not a violation.
    self_changed: set[int] = set()
    for tab in run.tabs:
        sid = view_session(snap, tab)
        if tab.changed_to and sid is not None:
            owner = snap.users[snap.sessions[sid].user_id] if sid in snap.sessions else None
            if owner is not None and password_is(owner, tab.changed_to):
                self_changed.add(sid)
    for s in snap.sessions.values():
        user = snap.users[s.user_id]
        # Checked without the is_active term of "may act" (with it, it holds by
        # definition): a disabled user's sessions must have ended, or enable-user
        # would bring them back.
        if snap.live(s) and not user.is_active:
            problems.append(
                f"DB: session {s.id} (created {s.created_at:%H:%M:%S.%f}, epoch {s.user_epoch}) "
                f"is live but its user {user.username} is disabled "
                f"(epoch {user.credential_epoch})"
            )
        if snap.may_act(s) and s.created_at < user.password_changed_at:
            if s.id in self_changed:
                continue
            problems.append(
                f"DB: session {s.id} of {user.username} may act but was created "
                f"{s.created_at:%H:%M:%S.%f}, before the password change at "
                f"{user.password_changed_at:%H:%M:%S.%f} (epochs {s.user_epoch}/"
                f"{user.credential_epoch})"
            )
    return problems


def check_screens(run: Run, snap: Snapshot) -> list[str]:
    problems = []
    for tab in run.tabs:
        if tab.client is None:
            continue
        shown = shown_user(tab.client)
        if shown is None:
            if tab.client.find("login-form") is None:
                problems.append(f"screen: tab{tab.index} shows neither view")
            continue
        user = snap.user_named(shown)
        if user is None:
            problems.append(f"screen: tab{tab.index} shows unknown user {shown!r}")
            continue
        if not user.is_active:
            problems.append(f"screen: tab{tab.index} is signed in as disabled {shown}")
        if not any(snap.may_act(s) for s in snap.sessions.values() if s.user_id == user.id):
            problems.append(f"screen: tab{tab.index} is signed in as {shown}, who has no session")
        sid = view_session(snap, tab)
        session = snap.sessions.get(sid) if sid is not None else None
        if session is None:
            if tab.view_ticket or tab.view_token or ticket_srcs(tab.client):
                problems.append(
                    f"screen: tab{tab.index} is signed in as {shown}, but its ticket/cookie "
                    "leads to no session"
                )
            else:  # e.g. a sign-in whose answer came after the harness stopped waiting
                run.notes.append(f"tab{tab.index} ({shown}): which session it shows is unknown")
            continue
        if not snap.may_act(session):
            problems.append(
                f"screen: tab{tab.index} is signed in as {shown} on session {sid}, which may "
                f"not act (revoked {session.revoked_at}, epochs {session.user_epoch}/"
                f"{user.credential_epoch}, active {user.is_active})"
            )
        elif session.user_id != user.id:
            problems.append(f"screen: tab{tab.index} shows {shown} on another user's session")
        elif tab.credential is not None and tab.credential[0] != shown:
            problems.append(  # the harness's own bookkeeping: see `earlier_sign_in`
                f"harness: tab{tab.index} shows {shown} but credits {tab.credential[0]}'s "
                "sign-in with it"
            )
        elif tab.credential is not None and not password_is(user, tab.credential[1]):
            # The race under test: a sign-in that verified the password the operator
            # was replacing must not open a session that outlives the change.
            problems.append(
                f"screen: tab{tab.index} is signed in as {shown} on session {sid}, opened "
                f"with a superseded password {tab.credential[1]!r} (session created "
                f"{session.created_at:%H:%M:%S.%f}, password changed "
                f"{user.password_changed_at:%H:%M:%S.%f})"
            )
    for tab, generation, cause in run.obligations:
        if tab.generation != generation:
            continue  # the tab did something since
        if tab.client is None:
            continue  # closed: counted in the summary
        if not signed_out(tab.client):
            problems.append(
                f"screen: tab{tab.index} still shows {shown_user(tab.client)!r} although it "
                f"was idle and signed in when: {cause}"
            )
    return problems


async def screens_after_grace(run: Run, engine: AsyncEngine, snap: Snapshot) -> list[str]:
    """The screen checks, PROPAGATION after the last operation. What they find is
    checked again for up to LATE_GRACE more: a view that does switch, only late (a
    loaded machine), is noted; one that never does is a violation."""
    problems = check_screens(run, snap)
    waited = time.monotonic()
    while problems and time.monotonic() - waited < LATE_GRACE:
        await asyncio.sleep(0.25)
        for tab in run.tabs:
            await drain(tab, quiet=0.02)
        again = check_screens(run, await read_database(engine))
        if not again or time.monotonic() - waited >= LATE_GRACE:
            late = len(problems) - len(again)
            if late > 0:
                run.notes.append(
                    f"{late} screen problem(s) found {PROPAGATION} s after the last operation "
                    f"went away within {time.monotonic() - waited + PROPAGATION:.1f} s "
                    f"(late propagation): {problems}"
                )
            return again
    return problems


async def check_reloads(run: Run, snap: Snapshot) -> list[str]:
    """A fresh websocket with each tab's cookie, on every host: signed in only when the
    cookie's session may act (the per-worker session cache must not say otherwise)."""
    problems = []
    for tab in run.tabs:
        if tab.token is None:
            continue
        sid = snap.by_token_hash.get(sha256(tab.token))
        session = snap.sessions.get(sid) if sid is not None else None
        for host in run.hosts * (2 if len(run.hosts) == 1 else 1):  # 2 tries: both workers
            async with await connect(host.base_url, tab.token) as fresh:
                shown = shown_user(fresh)
            if shown is None:
                continue
            if session is None or not snap.may_act(session):
                problems.append(
                    f"reload: tab{tab.index}'s cookie signs in as {shown} on {host.base_url}, "
                    f"but its session {sid} may not act"
                )
            elif snap.users[session.user_id].username != shown:
                problems.append(f"reload: tab{tab.index}'s cookie shows the wrong user {shown}")
    return problems


def server_errors(hosts: list[ServerProcess]) -> list[str]:
    lines = []
    for host in hosts:
        for line in host.log().splitlines():
            if "Traceback" in line or "ERROR" in line or "Error:" in line:
                lines.append(f"{host.port}: {line.strip()[:300]}")
    return lines


def state_of(tab: Tab) -> str:
    if tab.client is None:
        return "closed"
    user = shown_user(tab.client)
    if user is not None:
        return user
    return "out" if tab.client.find("login-form") is not None else "?"


def summary(run: Run, elapsed: float, snap: Snapshot | None, problems: list[str]) -> str:
    kinds: dict[str, list[str]] = {}
    for key, count in sorted(run.done.items()):
        kind, _, outcome = key.partition(":")
        kinds.setdefault(kind, []).append(f"{outcome} {count}")
    signed_in = Counter(u for t in run.tabs if (u := shown_user(t.client)) is not None)
    open_tabs = sum(t.client is not None for t in run.tabs)
    lines = [
        f"seed={run.seed} ({run.variant}); rerun with AUTHDEMO_TEST_SEED={run.seed}",
        f"{sum(run.done.values())} operations in {elapsed:.1f} s:",
        *(f"  {kind}: {', '.join(outcomes)}" for kind, outcomes in kinds.items()),
        f"tabs at the end: {open_tabs} open, signed in: {dict(signed_in) or 'none'}; "
        f"websockets closed: {[f'tab{t.index}: {t.closed}' for t in run.tabs if t.closed]}",
        "  " + " ".join(f"tab{t.index}:{state_of(t)}" for t in run.tabs),
        f"obligations (idle tabs that must be signed out): {len(run.obligations)}, of which "
        f"{sum(t.generation == g for t, g, _ in run.obligations)} still idle",
    ]
    if snap is not None:
        acting = Counter(s.user_id for s in snap.sessions.values() if snap.may_act(s))
        users = [
            f"{u.username} ({'active' if u.is_active else 'disabled'}, epoch "
            f"{u.credential_epoch}, {acting[u.id]} sessions may act)"
            for u in snap.users.values()
        ]
        lines.append("users: " + ", ".join(users))
    if run.kept:
        lines += ["sessions racers kept (opened as the change went in), just after sign-in:"]
        lines += [f"  {k}" for k in run.kept]
    if run.notes:
        lines += ["notes:", *(f"  {n}" for n in run.notes)]
    if run.cli_problems:
        lines += ["CLI problems:", *(f"  {p}" for p in run.cli_problems[:10])]
    errors = server_errors(run.hosts)
    if errors:
        lines += [f"server log errors ({len(errors)}):", *(f"  {e}" for e in errors[:15])]
    if run.errors:
        lines += [f"harness errors ({len(run.errors)}):", *run.errors[:3]]
    if problems:
        lines += [f"INVARIANT VIOLATIONS ({len(problems)}):", *(f"  {p}" for p in problems)]
    return "\n".join(lines)


async def run_and_check(db_url: str, hosts: list[ServerProcess], variant: str) -> None:
    seed = int(os.environ.get("AUTHDEMO_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"revocation invariant: seed={seed} ({variant})")
    plan = make_plan(random.Random(seed))
    jar = CookieJar(DefaultCookiePolicy(allowed_domains=[]))  # cookies go by hand only
    async with httpx.AsyncClient(timeout=10, cookies=jar) as http:
        run = Run(
            seed=seed,
            variant=variant,
            db_url=db_url,
            hosts=hosts,
            tabs=[Tab(i, i % len(hosts)) for i in range(TABS)],
            http=http,
            passwords={u: [PASSWORD] for u in USERS},
            engine=(engine := create_async_engine(db_url)),
        )
        try:
            started = time.monotonic()
            run.started = asyncio.get_running_loop().time()
            pumping = asyncio.create_task(pump(run))
            await asyncio.gather(*(execute(run, op) for op in plan))
            await asyncio.sleep(PROPAGATION)
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            for tab in run.tabs:
                await drain(tab, quiet=0.1)
            snap = await read_database(engine)
            problems = run.spot_problems + check_database(run, snap)
            problems += await screens_after_grace(run, engine, snap)
            problems += await check_reloads(run, snap)
            report = summary(run, time.monotonic() - started, snap, problems)
            print(report)
        finally:
            for tab in run.tabs:
                if tab.client is not None:
                    await tab.client.close()
            await engine.dispose()
    assert not run.errors, report
    assert not problems, report
    assert not run.cli_crashes, "an operator command crashed with a traceback\n" + report
    assert snap.has_epochs, (
        "the schema has no authdemo_users.credential_epoch / authdemo_sessions.user_epoch: "
        "the invariant was checked without the epoch condition\n" + report
    )


# --- the variants ---------------------------------------------------------------------------


@pytest.fixture
def two_workers(db_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    server = ServerProcess(db_url, tmp_path / "workers.log", workers=2, env=SERVER_ENV)
    server.start(meanwhile=lambda: create_users(db_url, *USERS))
    yield [server]
    server.stop()


@pytest.fixture
def two_hosts(db_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    first = ServerProcess(db_url, tmp_path / "host-a.log", env=SERVER_ENV)
    second = ServerProcess(db_url, tmp_path / "host-b.log", env=SERVER_ENV)
    start_all([first, second], meanwhile=lambda: create_users(db_url, *USERS))
    yield [first, second]
    first.stop()
    second.stop()


async def test_no_revoked_session_acts_after_a_random_mix_on_two_workers(
    db_url: str, db_backend: str, two_workers: list[ServerProcess]
) -> None:
    await run_and_check(db_url, two_workers, f"one server, --workers 2, {db_backend}")


@pytest.mark.postgresql_only
async def test_no_revoked_session_acts_after_a_random_mix_on_two_hosts(
    db_url: str, two_hosts: list[ServerProcess]
) -> None:
    await run_and_check(db_url, two_hosts, "two hosts, one PostgreSQL database")
