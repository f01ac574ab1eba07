"""The account hooks over the websocket (``use_auth().sessions``, ``.two_factor``) and
the account components alone, in apps that use the public API only.

The probe below is an app that trusts its client: it takes the operation and its
arguments from the event's payload, which a client can forge at will. The server must
still refuse what is not the signed-in user's to touch."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from itertools import count
from typing import Any

import pytest

from authdemo import AuthError, RequireAuth, use_auth
from authdemo.config import Settings
from authdemo.http.app import AuthdemoApp, create_app
from authdemo.ui.library import component, html, use_state
from tests.apps import account_idom, account_reactpy
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve
from tests.support.mfa import MFA_KEY, code_at
from tests.web.test_login_flow import sign_in

Creds = tuple[str, str]
PASSWORD = "correct horse"
_names = count()


@component
def Probe() -> Any:
    """Runs ``[operation, *arguments]`` from the clicked button's value through the hooks
    and shows ``n:result`` (the exception's name when one is raised)."""
    auth = use_auth()
    result, set_result = use_state("")
    runs, set_runs = use_state(0)

    async def run(data: Any) -> None:
        operation, *args = json.loads(data["target"]["value"])
        two_factor, sessions = auth.two_factor, auth.sessions
        try:
            if operation == "status":
                status = await two_factor.status()
                out = f"{status.enabled} {status.recovery_codes_left}"
            elif operation == "start":
                out = (await two_factor.start(*args)).secret
            elif operation == "confirm":
                out = " ".join(await two_factor.confirm(*args))
            elif operation == "renew":
                out = " ".join(await two_factor.regenerate_recovery_codes(*args))
            elif operation == "disable":
                out = str(await two_factor.disable(*args))
            elif operation == "list":
                out = " ".join(str(s.id) for s in await sessions.list())
            elif operation == "end":
                out = str(await sessions.end(*args))
            else:
                out = str(await sessions.end_others())
        except AuthError as failure:
            out = type(failure).__name__
        set_runs(runs + 1)
        set_result(f"{runs + 1}:{out}")

    return html.div(
        html.p({"id": "greeting"}, auth.user.username if auth.user else ""),
        html.button({"id": "probe", "value": "", "on_click": run}, "run"),
        html.p({"id": "probe-result"}, result),
    )


@component
def ProbeApp() -> Any:
    return RequireAuth(Probe())


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, mfa_keys=(MFA_KEY,))


def app_of(settings: Settings, clock: FakeClock, root: Any) -> AuthdemoApp:
    return create_app(
        settings,
        root,
        name=f"authdemo_account_{next(_names)}",
        clock=clock,
        hasher_factory=cheap_hasher,
    )


@pytest.fixture
async def probe(settings: Settings, app_clock: FakeClock) -> Any:
    async with serve(app_of(settings, app_clock, ProbeApp)) as running:
        await running.app.ctx.service.create_user("alice", PASSWORD)
        await running.app.ctx.service.create_user("mallory", PASSWORD)
        yield running


async def call(client: IdomClient, *operation: Any) -> str:
    """Fire the probe with a payload of the test's choosing; the result it shows."""
    before = client.text("probe-result") or ""
    runs = int(before.split(":", 1)[0]) if before else 0
    await client.fire(
        client.find("probe") or {}, "on_click", {"target": {"value": json.dumps(operation)}}
    )
    await client.wait_for(lambda c: (c.text("probe-result") or "").startswith(f"{runs + 1}:"))
    return (client.text("probe-result") or "").split(":", 1)[1]


async def signed_out(client: IdomClient, timeout: float = 10.0) -> None:
    await client.wait_for(lambda c: c.find("login-form") is not None, timeout)


# --- sessions --------------------------------------------------------------------------------


async def test_ending_another_users_session_by_a_forged_id_is_refused_and_changes_nothing(
    probe: Live,
) -> None:
    service = probe.app.ctx.service
    alice, _ = await sign_in(probe, ("alice", PASSWORD))
    mallory, _ = await sign_in(probe, ("mallory", PASSWORD))
    ((alices, _),) = await service.live_sessions("alice")
    audit_before = await service.audit_events(None, 100)

    assert await call(mallory, "end", alices.id) == "False"

    assert [s.id for s, _ in await service.live_sessions("alice")] == [alices.id]
    assert await service.audit_events(None, 100) == audit_before
    assert alice.find("greeting") is not None and alice.find("login-form") is None
    assert await call(alice, "list") == str(alices.id)  # and it still acts
    await alice.close()
    await mallory.close()


async def test_ending_one_of_my_sessions_by_id_signs_that_view_out_live_and_keeps_the_rest(
    probe: Live,
) -> None:
    here, _ = await sign_in(probe, ("alice", PASSWORD))
    there, _ = await sign_in(probe, ("alice", PASSWORD))
    kept, _ = await sign_in(probe, ("alice", PASSWORD))
    mine = sorted(int(i) for i in (await call(here, "list")).split())
    assert len(mine) == 3
    there_id = mine[1]  # sessions are numbered in the order they opened

    started = time.monotonic()
    assert await call(here, "end", there_id) == "True"
    await signed_out(there, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert await call(kept, "list") == await call(here, "list")
    assert len((await call(kept, "list")).split()) == 2
    assert await call(here, "end", there_id) == "False"  # ended already
    for client in (here, there, kept):
        await client.close()


async def test_ending_the_others_through_the_hook_keeps_this_view(probe: Live) -> None:
    here, _ = await sign_in(probe, ("alice", PASSWORD))
    there, _ = await sign_in(probe, ("alice", PASSWORD))
    assert await call(here, "end_others") == "1"
    await signed_out(there, timeout=1.0)
    assert len((await call(here, "list")).split()) == 1
    await here.close()
    await there.close()


# --- two-factor ---------------------------------------------------------------------------


async def test_two_factor_on_new_recovery_codes_and_off_through_the_hooks(
    probe: Live, app_clock: FakeClock
) -> None:
    tab, _ = await sign_in(probe, ("alice", PASSWORD))
    other, _ = await sign_in(probe, ("alice", PASSWORD))
    assert await call(tab, "status") == "False 0"
    assert await call(tab, "start", "wrong password") == "InvalidCredentials"
    secret = await call(tab, "start", PASSWORD)
    assert await call(tab, "confirm", "000000") == "InvalidCode"
    codes = (await call(tab, "confirm", code_at(secret, app_clock.now()))).split()
    assert len(codes) == 10
    await signed_out(other)  # turning it on ended the other session, live
    assert await call(tab, "status") == "True 10"
    assert await call(tab, "start", PASSWORD) == "MfaStateConflict"

    app_clock.advance(timedelta(seconds=30))
    fresh = (await call(tab, "renew", PASSWORD, code_at(secret, app_clock.now()))).split()
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    assert await call(tab, "disable", PASSWORD, codes[0]) == "InvalidCode"  # the old ones died

    assert await call(tab, "disable", PASSWORD, fresh[0]) == "0"
    assert await call(tab, "status") == "False 0"
    kinds = [e.kind.value for e in await probe.app.ctx.service.audit_events("alice", 20)]
    assert {"mfa_enrol_confirmed", "mfa_recovery_renewed", "mfa_disabled"} <= set(kinds)
    await tab.close()
    await other.close()


# --- the components, in an app of public names only ---------------------------------------


@pytest.fixture
async def account_app(settings: Settings, app_clock: FakeClock, ui_name: str) -> Any:
    module = account_idom if ui_name == "idom" else account_reactpy
    async with serve(app_of(settings, app_clock, module.Root)) as running:
        await running.app.ctx.service.create_user("alice", PASSWORD)
        yield running


COMPONENT_IDS = {
    "page": {
        "greeting",
        "logout",
        "sessions",
        "logout-others",
        "app-card",
        "change-password",
        "mfa",
    },
    "sessions": {"sessions", "logout-others"},
    "password": {"change-password"},
    "two-factor": {"mfa"},
}


async def test_each_account_component_renders_alone_behind_require_auth(
    account_app: Live,
) -> None:
    tab = await IdomClient.connect(account_app.base_url)
    every = set().union(*COMPONENT_IDS.values())
    for view in COMPONENT_IDS:
        await tab.click(f"show-{view}")
        await tab.wait_for(lambda c: c.find("login-form") is not None)
        assert not [i for i in every if tab.find(i) is not None]  # nothing while signed out
    await tab.click("show-page")
    await tab.login("alice", PASSWORD)
    await tab.wait_for_id("greeting")
    for view, ids in COMPONENT_IDS.items():
        await tab.click(f"show-{view}")
        await tab.wait_for_id(f"view-{view}")
        await tab.wait_for(lambda c, ids=ids: all(c.find(i) is not None for i in ids))
        if view == "two-factor":
            await tab.wait_for_id("mfa-enable")
        assert not [i for i in every - ids if tab.find(i) is not None], view
    await tab.close()
