"""One implementation, two UI libraries (issue 15): IDOM 1.0 by default, ReactPy 1.1 on
request, chosen once per app; the same components and hooks rendered by either."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import idom
import pytest
import reactpy

import authdemo
import authdemo.idom
import authdemo.reactpy
from authdemo.config import ConfigError, Settings
from authdemo.ui.components import LoginForm
from authdemo.ui.library import (
    check_root,
    component,
    current,
    html,
    library,
    use_effect,
    use_library,
    use_state,
)
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve

_names = itertools.count()


def test_each_librarys_module_exports_the_same_api_as_the_package() -> None:
    for module in (authdemo.idom, authdemo.reactpy):
        assert sorted(module.__all__) == sorted(authdemo.__all__)
        assert "__getattr__" not in vars(module)
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)


def test_the_library_independent_parts_are_the_same_objects() -> None:
    for name in ("use_auth", "use_session", "current_user", "Auth", "User", "Settings"):
        assert getattr(authdemo.reactpy, name) is getattr(authdemo, name)
        assert getattr(authdemo.idom, name) is getattr(authdemo, name)


def test_the_ui_setting_reads_authdemo_ui_and_defaults_to_idom() -> None:
    assert Settings.from_env({}).ui == "idom"
    assert Settings.from_env({"AUTHDEMO_UI": " ReactPy "}).ui == "reactpy"
    assert Settings.from_env({"AUTHDEMO_UI": "idom"}).ui == "idom"
    with pytest.raises(ConfigError, match="AUTHDEMO_UI='react'"):
        Settings.from_env({"AUTHDEMO_UI": "react"})
    # Built in code, refused as it is built, naming the field (and its allowed values).
    with pytest.raises(ConfigError, match=r"Settings\(ui='vue'\): ui must be one of 'idom'"):
        replace(Settings(), ui="vue")  # type: ignore[arg-type]


def test_each_module_binds_its_library_whatever_the_settings_say(settings: Settings) -> None:
    on_reactpy = authdemo.reactpy.create_app(
        replace(settings, ui="idom"), name=f"ui_lib_{next(_names)}"
    )
    on_idom = authdemo.idom.create_app(
        replace(settings, ui="reactpy"), name=f"ui_lib_{next(_names)}"
    )
    assert on_reactpy.ctx.settings.ui == "reactpy"
    assert on_idom.ctx.settings.ui == "idom"


def test_a_shared_component_is_made_by_the_library_of_the_connection() -> None:
    assert current().name == "idom"  # outside any connection: the default
    assert isinstance(LoginForm(), idom.core.component.Component)
    with use_library(library("reactpy")):
        made = LoginForm()
        assert isinstance(made, reactpy.core.component.Component)
        assert made.type is LoginForm.function  # type: ignore[attr-defined]
    assert isinstance(LoginForm(), idom.core.component.Component)


def test_a_root_made_by_the_other_library_is_refused_with_a_hint() -> None:
    @reactpy.component
    def ReactPyRoot() -> Any:
        return reactpy.html.p("hi")

    @idom.component
    def IdomRoot() -> Any:
        return idom.html.p("hi")

    with pytest.raises(TypeError, match=r"authdemo\.reactpy"):
        check_root(ReactPyRoot(), library("idom"))
    with pytest.raises(TypeError, match=r"authdemo\.idom"):
        check_root(IdomRoot(), library("reactpy"))
    check_root(ReactPyRoot(), library("reactpy"))
    check_root(html.p("not a component"), library("idom"))  # any other root is the app's


async def test_the_page_loads_only_its_own_librarys_client(live: Live) -> None:
    page = (await live.get("/")).text
    other = "idom" if live.ui == "reactpy" else "reactpy"
    assert f'src="/_{live.ui}/assets/' in page and f"/_{other}/" not in page
    client = await IdomClient.connect(live.base_url)
    assert client.find("login-form") is not None
    await client.close()
    with pytest.raises(Exception, match="404"):
        await IdomClient.connect(live.base_url, ui=other)


@component
def Toggler() -> Any:
    """A button that mounts and unmounts a child with an effect: each unmount waits for
    the effect to end, i.e. the render awaits part-way (as ReactPy 1.1's does)."""
    shown, set_shown = use_state(False)

    def flip(_: Any) -> None:
        set_shown(lambda now: not now)

    return html.div(
        html.button({"id": "flip", "on_click": flip}, "flip"),
        *([WithEffect()] if shown else []),
        html.p({"id": "state"}, "shown" if shown else "hidden"),
    )


@component
def WithEffect() -> Any:
    @use_effect(dependencies=[])
    async def effect() -> None:
        await asyncio.sleep(0)

    @use_effect(dependencies=[])
    def tick() -> Callable[[], None]:
        return lambda: None

    return html.p({"id": "child"}, "child")


async def test_many_connections_rendering_at_once_all_get_their_renders(
    settings: Settings,
) -> None:
    """ReactPy 1.1 keeps its rendering components on one stack per thread while its
    render awaits: without the bridge's one-render-at-a-time, connections re-rendering
    together broke it ("Hook stack is in an invalid state") and were dropped."""
    app = authdemo.create_app(
        settings, Toggler, name=f"ui_lib_{next(_names)}", hasher_factory=cheap_hasher
    )
    async with serve(app) as live:
        clients = await asyncio.gather(*(IdomClient.connect(live.base_url) for _ in range(12)))
        for round_ in range(6):
            expected = "shown" if round_ % 2 == 0 else "hidden"
            await asyncio.gather(*(c.click("flip") for c in clients))
            await asyncio.gather(
                *(c.wait_for(lambda c, e=expected: c.text("state") == e, 5) for c in clients)
            )
        await asyncio.gather(*(c.close() for c in clients))


def test_a_reactpy_form_hands_its_submit_handler_the_controls_names() -> None:
    """ReactPy 1.1's client sends a form's elements without names (tag and value, in
    document order); the handler gets them named, as IDOM 1.0's client sends them."""
    received: list[Any] = []

    async def submit(data: Any) -> None:
        received.append(data)

    reactpy_lib = library("reactpy")
    with use_library(reactpy_lib):
        form = html.form(
            {"on_submit": submit},
            html.div(html.input({"name": "username"}), html.input({"type": "image"})),
            html.textarea({"name": "note"}),
            html.button({"type": "submit"}, "go"),
        )
    handler = form["eventHandlers"]["on_submit"]
    sent = [{"tagName": "INPUT", "value": "alice"}, {"tagName": "TEXTAREA", "value": "hi"}]
    sent.append({"tagName": "BUTTON", "value": ""})
    asyncio.run(handler.function([{"target": {"tagName": "FORM", "elements": sent}}]))
    elements = received[0]["target"]["elements"]
    assert [e.get("name") for e in elements] == ["username", "note", None]
    assert [e["value"] for e in elements] == ["alice", "hi", ""]


def test_a_reactpy_form_holding_a_component_is_left_as_it_is() -> None:
    """Controls inside a component are rendered later: their order is unknown here, so
    the event is passed on unchanged rather than named wrongly."""
    received: list[Any] = []
    with use_library(library("reactpy")):
        plain = html.form({"on_submit": received.append}, LoginForm())
    event = {"target": {"elements": [{"tagName": "INPUT", "value": "x"}]}}
    asyncio.run(plain["eventHandlers"]["on_submit"].function([event]))
    assert received == [event]


@pytest.mark.parametrize(
    ("module", "made_by", "hint"),
    [("authdemo", "reactpy", "authdemo.reactpy"), ("authdemo.reactpy", "idom", "authdemo.idom")],
)
def test_create_app_refuses_a_root_of_the_other_library_in_a_fresh_process(
    module: str, made_by: str, hint: str, tmp_path: Path
) -> None:
    """As an app meets it: only the app's imports loaded, authdemo never loaded the other
    library itself. Refused when the app is built, not with a blank page later."""
    script = (
        f"import {made_by}\n"
        f"from {module} import Settings, create_app\n"
        f"@{made_by}.component\n"
        "def Root():\n"
        f"    return {made_by}.html.p('hi')\n"
        "try:\n"
        f"    create_app(Settings(database_url='sqlite+aiosqlite:///{tmp_path}/x.db'), Root)\n"
        "except TypeError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    print('accepted')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"import create_app from {hint}" in done.stdout, done.stdout + done.stderr
