"""The benchmark's references render what authdemo renders: a reference that fails part of
the demo's first render (and so does less work) would flatter authdemo's ratio less than
it should — or hide a cost."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from idom.core.layout import Layout

from bench.apps import UnauthenticatedDemo
from tests.support.idom_client import walk


async def settled_model(root: Any) -> dict[str, Any]:
    """The layout's model once no component wants to render any more."""
    async with Layout(root) as layout:
        model: dict[str, Any] = {}
        while True:
            try:
                async with asyncio.timeout(0.3):
                    update = await layout.render()
            except TimeoutError:
                return model
            if update["path"] == "":
                model = update["model"]
            else:  # a component below re-rendered: patch its part in
                model = _patched(model, update["path"], update["model"])


def _patched(model: dict[str, Any], path: str, new: Any) -> dict[str, Any]:
    target: Any = model
    parts = [p for p in path.split("/") if p]
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = new
    else:
        target[last] = new
    return model


async def test_the_bridge_reference_renders_the_whole_signed_in_demo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        model = await settled_model(UnauthenticatedDemo())
    ids = {n.get("attributes", {}).get("id") for n in walk(model)}
    # ``authdemo run`` can send mail (console mail without SMTP): the e-mail card too.
    assert {"greeting", "logout", "change-password", "mfa-status", "email-settings"} <= ids, ids
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
