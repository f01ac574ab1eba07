"""use_session(), RequireAuth and the README's example, over real websockets."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from authdemo import RequireAuth, create_app, use_auth, use_session
from authdemo.config import Settings
from authdemo.db.models import SessionRow
from authdemo.domain import AuthError
from authdemo.security import hash_token
from authdemo.ui.components import LoginForm
from authdemo.ui.library import component, html
from tests.conftest import cheap_hasher
from tests.support.docs import example
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve
from tests.web.test_login_flow import cookie, first_visit

_names = itertools.count()
PASSWORD = "correct horse"
SECRET = "the launch codes are 0000"


@component
def DataRoot() -> Any:
    """Shows the session's data and changes it, like an app would."""
    auth = use_auth()
    data = use_session()
    error, set_error = use_state_str()

    async def bump(_: Any) -> None:
        try:
            await data.set("count", int(data.get("count", 0)) + 1)
        except AuthError as failure:
            set_error(str(failure))

    async def huge(_: Any) -> None:
        try:
            await data.set("blob", "x" * 70_000)
        except AuthError as failure:
            set_error(str(failure))

    async def forget(_: Any) -> None:
        await data.delete("count")

    async def sign_out(_: Any) -> None:
        await auth.logout()

    return html.div(
        html.p({"id": "data"}, json.dumps(dict(data), sort_keys=True)),
        html.button({"id": "bump", "on_click": bump}, "bump"),
        html.button({"id": "huge", "on_click": huge}, "huge"),
        html.button({"id": "forget", "on_click": forget}, "forget"),
        *([html.p({"id": "data-error"}, error)] if error else []),
        html.p({"id": "who"}, auth.user.username if auth.user else "anonymous"),
        LoginForm()
        if auth.user is None
        else html.button({"id": "logout", "on_click": sign_out}, "out"),
    )


def use_state_str() -> tuple[str, Callable[[str], None]]:
    from authdemo.ui.library import use_state

    value, setter = use_state("")
    return value, setter


@asynccontextmanager
async def running(settings: Settings, root: Callable[[], Any]) -> AsyncIterator[Live]:
    app = create_app(
        settings, root, name=f"authdemo_data_{next(_names)}", hasher_factory=cheap_hasher
    )
    async with serve(app) as live:
        yield live


def data_of(client: IdomClient) -> dict[str, Any]:
    return json.loads(client.text("data") or "{}")  # type: ignore[no-any-return]


async def count_rows(live: Live) -> int:
    async with live.app.ctx.runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(SessionRow))).scalar_one())


@pytest.fixture
async def data_live(settings: Settings) -> AsyncIterator[Live]:
    async with running(settings, DataRoot) as live:
        await live.app.ctx.service.create_user("alice", PASSWORD)
        yield live


async def test_anonymous_data_creates_its_row_on_the_first_write_only(data_live: Live) -> None:
    token = await first_visit(data_live)
    client = await IdomClient.connect(data_live.base_url, cookie=cookie(token))
    assert await count_rows(data_live) == 0  # page view and websocket: no row
    await client.click("bump")
    await client.wait_for(lambda c: data_of(c) == {"count": 1})
    assert await count_rows(data_live) == 1
    assert client.ticket_src() is None  # the row took the cookie the browser has
    async with data_live.app.ctx.runtime.uow() as tx:
        found = await tx.sessions.find_by_token_hash(hash_token(token))
    assert found is not None and found[0].data == {"count": 1}
    await client.close()


async def test_data_survives_a_reconnect(data_live: Live) -> None:
    token = await first_visit(data_live)
    async with await IdomClient.connect(data_live.base_url, cookie=cookie(token)) as client:
        await client.click("bump")
        await client.wait_for(lambda c: data_of(c) == {"count": 1})
    async with await IdomClient.connect(data_live.base_url, cookie=cookie(token)) as again:
        assert data_of(again) == {"count": 1}


async def test_data_survives_a_server_restart(settings: Settings) -> None:
    async with running(settings, DataRoot) as live:
        token = await first_visit(live)
        async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as client:
            await client.click("bump")
            await client.wait_for(lambda c: data_of(c) == {"count": 1})
    async with running(settings, DataRoot) as restarted:
        again = await IdomClient.connect(restarted.base_url, cookie=cookie(token))
        assert data_of(again) == {"count": 1}
        await again.close()


async def test_other_tabs_see_a_change_live(data_live: Live) -> None:
    token = await first_visit(data_live)
    tab_a = await IdomClient.connect(data_live.base_url, cookie=cookie(token))
    tab_b = await IdomClient.connect(data_live.base_url, cookie=cookie(token))
    # Only the live event can bring the change (nothing here polls or reconnects); the
    # bound is generous for a loaded CI machine (this once missed 1 s through PgBouncer).
    await tab_a.click("bump")
    await tab_b.wait_for(lambda c: data_of(c) == {"count": 1}, timeout=5.0)
    await tab_b.click("bump")
    await tab_a.wait_for(lambda c: data_of(c) == {"count": 2}, timeout=5.0)
    await tab_a.click("forget")
    await tab_b.wait_for(lambda c: data_of(c) == {}, timeout=5.0)
    await tab_a.close()
    await tab_b.close()


async def test_the_size_cap_shows_a_clear_error_and_keeps_the_data(data_live: Live) -> None:
    async with await IdomClient.connect(
        data_live.base_url, cookie=cookie(await first_visit(data_live))
    ) as c:
        await c.click("bump")
        await c.wait_for(lambda c: data_of(c) == {"count": 1})
        await c.click("huge")
        await c.wait_for_id("data-error")
        assert c.text("data-error") == (
            "Session data is limited to 64 KiB; this change would make it 69 KiB."
        )
        assert data_of(c) == {"count": 1}


async def test_a_smaller_configured_cap_applies(settings: Settings) -> None:
    async with running(replace(settings, session_data_max_bytes=1024), DataRoot) as live:
        c = await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))
        await c.click("huge")
        await c.wait_for_id("data-error")
        assert "limited to 1 KiB" in (c.text("data-error") or "")
        await c.close()


async def test_signing_in_keeps_the_data_and_signing_out_clears_it(data_live: Live) -> None:
    token = await first_visit(data_live)
    client = await IdomClient.connect(data_live.base_url, cookie=cookie(token))
    await client.click("bump")
    await client.wait_for(lambda c: data_of(c) == {"count": 1})
    await client.login("alice", PASSWORD)
    await client.wait_for(lambda c: c.text("who") == "alice")
    assert data_of(client) == {"count": 1}
    assert await client.tickets_fetched() == [303]
    signed_in = client.token()
    assert signed_in is not None
    async with await IdomClient.connect(data_live.base_url, cookie=cookie(signed_in)) as reload:
        assert data_of(reload) == {"count": 1} and reload.text("who") == "alice"
    async with await IdomClient.connect(data_live.base_url, cookie=cookie(token)) as old:
        assert data_of(old) == {} and old.text("who") == "anonymous"

    await client.click("logout")
    await client.wait_for(lambda c: c.text("who") == "anonymous")
    assert data_of(client) == {}
    await client.click("bump")  # a new, empty anonymous session
    await client.wait_for(lambda c: data_of(c) == {"count": 1})
    # Its row needs a new cookie (the old one was revoked): a ticket bound to it.
    assert await client.tickets_fetched() == [303, 303]
    fresh = client.token()
    assert fresh not in (None, token, signed_in)
    await client.close()


# --- the guard ------------------------------------------------------------------------------


@component
def Secret() -> Any:
    return html.p({"id": "secret"}, SECRET)


@component
def GuardedRoot() -> Any:
    return RequireAuth(Secret())


async def test_the_guard_never_sends_protected_content_while_signed_out(
    settings: Settings,
) -> None:
    async with running(settings, GuardedRoot) as live:
        await live.app.ctx.service.create_user("alice", PASSWORD)
        client = await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))
        raw: list[str] = []
        original = client.apply

        def record(message: dict[str, Any]) -> None:
            raw.append(json.dumps(message))
            original(message)

        client.apply = record  # type: ignore[method-assign]
        assert client.find("login-form") is not None and client.find("secret") is None
        await client.login("alice", "wrong password!")
        await client.wait_for_id("login-error")
        assert not any(SECRET in m for m in raw)
        await client.login("alice", PASSWORD)
        await client.wait_for_id("secret")
        await live.app.ctx.service.revoke_user_sessions("alice")
        await client.wait_for(
            lambda c: c.find("secret") is None and c.find("login-form") is not None
        )
        await client.close()


# --- the README example, as written -----------------------------------------------------------


README_EXAMPLES = {"idom": "app.py", "reactpy": "reactpy_app.py"}
"""The complete app for each UI library: the README's, and the guide's "Use it in your
ReactPy app" (tests/support/docs.py finds either)."""


def readme_example(ui: str = "idom") -> str:
    return example(README_EXAMPLES[ui])


@contextmanager
def readme_app(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The README's example for the settings' UI library, written to a file and imported
    as the app author would."""
    code = readme_example(settings.ui)
    assert 20 <= len([line for line in code.splitlines() if line.strip()]) <= 35
    (tmp_path / "readme_app.py").write_text(code)
    monkeypatch.setenv("AUTHDEMO_DATABASE_URL", settings.database_url)
    if settings.listen_url is not None:  # through PgBouncer
        monkeypatch.setenv("AUTHDEMO_LISTEN_URL", settings.listen_url)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.util.spec_from_file_location("readme_app", tmp_path / "readme_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_app"] = module
    try:
        spec.loader.exec_module(module)
        yield module.app
    finally:
        sys.modules.pop("readme_app", None)


async def test_the_readme_example_runs_as_written(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with readme_app(settings, tmp_path, monkeypatch) as app:
        async with serve(app) as live:
            await live.app.ctx.service.create_user("alice", PASSWORD)
            token = await first_visit(live)
            client = await IdomClient.connect(live.base_url, cookie=cookie(token))
            assert client.find("login-form") is not None and client.find("hello") is None
            await client.login("alice", PASSWORD)
            await client.wait_for_id("hello")
            assert client.text("hello") == "Hello, alice"
            await client.click("count")
            await client.wait_for(lambda c: c.text("count") == "Clicked 1 times")
            assert await client.tickets_fetched() == [303]
            new_token = client.token()
            async with await IdomClient.connect(
                live.base_url, cookie=cookie(new_token or "")
            ) as second_tab:
                assert second_tab.text("count") == "Clicked 1 times"
                await client.click("logout")
                await client.wait_for_id("login-form")
                await second_tab.wait_for_id("login-form")  # live, without a reload
                assert second_tab.find("hello") is None
            await client.close()


async def test_the_readme_counter_counts_every_one_of_20_rapid_clicks(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty clicks sent without waiting for a render in between: each handler runs
    with the count rendered before the first, so only an update computed from the
    stored value (``update_value``) counts them all."""
    with readme_app(settings, tmp_path, monkeypatch) as app:
        async with serve(app) as live:
            await live.app.ctx.service.create_user("alice", PASSWORD)
            client = await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))
            await client.login("alice", PASSWORD)
            await client.wait_for_id("hello")
            button = client.find("count")
            assert button is not None and client.text("count") == "Clicked 0 times"
            for _ in range(20):
                await client.fire(button, "on_click", {"target": {}})
            await client.wait_for(lambda c: c.text("count") == "Clicked 20 times")
            token = client.token()
            async with await IdomClient.connect(live.base_url, cookie=cookie(token or "")) as again:
                assert again.text("count") == "Clicked 20 times"  # stored, not only shown
            await client.close()
