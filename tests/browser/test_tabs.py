"""Tabs of one browser agree: a sign-in in one tab is followed by the others, proven by
the browser's own cookie, while a copy of the pre-sign-in cookie outside it is not."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.models import SessionRow
from tests.browser.conftest import PASSWORD, shown
from tests.browser.test_sign_in import COOKIE, session_cookie, sign_in
from tests.support.db import in_thread
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new password"


def on_the_form(context: Any, server: ServerProcess, count: int) -> list[Any]:
    pages = []
    for _ in range(count):
        page = context.new_page()
        page.goto(server.base_url)
        shown(page, "form#login-form")
        pages.append(page)
    return pages


def session_rows(db_url: str) -> tuple[int, int]:
    """(all session rows, live signed-in sessions of alice)."""

    async def count() -> tuple[int, int]:
        async with runtime(Settings(database_url=db_url)) as rt:
            async with rt.engine.connect() as conn:
                rows = (await conn.execute(select(func.count()).select_from(SessionRow))).scalar()
            live = await rt.service.live_sessions("alice")
        return int(rows or 0), len(live)

    return in_thread(lambda: asyncio.run(count()))


class OutsideCopy:
    """A websocket opened outside the browser with a copy of its cookie, in a thread of
    its own (Playwright's sync API holds this thread's event loop). It records whether
    it heard the retirement (rendered a follow image) and whether it was ever signed in."""

    def __init__(self, server: ServerProcess, cookie_value: str) -> None:
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.asked_to_follow = False
        self.signed_in = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(server, f"{COOKIE}={cookie_value}"))
        )
        self._thread.start()
        assert self.ready.wait(15), "the outside websocket did not open"

    async def _run(self, server: ServerProcess, cookie: str) -> None:
        try:
            async with await IdomClient.connect(server.base_url, cookie=cookie) as copy:
                assert copy.find("login-form") is not None
                self.ready.set()
                while not self.stop.is_set():
                    try:
                        await copy.receive(timeout=0.1)
                    except TimeoutError:
                        continue
                    self.asked_to_follow |= copy.follow_src() is not None
                    self.signed_in |= copy.find("greeting") is not None
        except BaseException as error:  # reported in the test's thread
            self.error = error
            self.ready.set()

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(15)
        if self.error is not None:
            raise self.error


def test_a_sign_in_is_followed_by_the_other_tab_within_a_second_but_not_by_a_copy_outside(
    context: Any, server: ServerProcess
) -> None:
    one, two = on_the_form(context, server, 2)
    copy = OutsideCopy(server, session_cookie(context)["value"])
    try:
        sign_in(one)
        shown(one, "#greeting")
        started = time.monotonic()
        shown(two, "#greeting", timeout=1_000)
        assert time.monotonic() - started < 1.0
        assert "alice" in two.inner_text("#greeting")
        assert two.locator("#cookie-warning").count() == 0
        time.sleep(1.0)  # what the copy could have been sent has been sent
    finally:
        copy.finish()
    assert copy.asked_to_follow  # it heard the retirement like every view of that cookie
    assert not copy.signed_in  # but only the browser's own tabs follow
    assert session_rows(server.db_url)[1] == 1


def test_after_a_password_change_in_one_tab_the_other_signs_in_again_at_once(
    context: Any, server: ServerProcess
) -> None:
    one, two = on_the_form(context, server, 2)
    sign_in(one)
    shown(one, "#greeting")
    shown(two, "#greeting")

    one.fill("input[name=current_password]", PASSWORD)
    one.fill("input[name=new_password]", NEW_PASSWORD)
    one.click("form#change-password button[type=submit]")
    shown(one, "#change-password-ok")
    shown(two, "#signed-out-reason")  # signed out, as documented
    rows_before, _ = session_rows(server.db_url)
    time.sleep(0.5)  # the follow that tells tab two the browser's new cookie

    started = time.monotonic()
    sign_in(two, password=NEW_PASSWORD)
    shown(two, "#greeting", timeout=2_000)
    assert time.monotonic() - started < 2.0
    assert two.locator("#cookie-warning").count() == 0
    rows_after, live = session_rows(server.db_url)
    assert rows_after == rows_before + 1  # one new session, no stray
    # The browser's cookie is the new session's: the first tab follows it there.
    shown(one, "#greeting", timeout=2_000)
    assert one.locator("#cookie-warning").count() == 0
    assert live == 1
    assert "did not pick up its cookie" not in server.log()


def test_a_sign_in_in_the_second_tab_right_after_the_first_opens_no_stray_session(
    context: Any, server: ServerProcess
) -> None:
    one, two = on_the_form(context, server, 2)
    for page in (one, two):
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
    started = time.monotonic()
    one.click("form#login-form button[type=submit]")
    two.click("form#login-form button[type=submit]")
    shown(one, "#greeting")
    shown(two, "#greeting", timeout=3_000)
    assert time.monotonic() - started < 3.0  # not the 10 s wait for a cookie that never comes
    time.sleep(0.5)
    for page in (one, two):
        assert page.locator("#cookie-warning").count() == 0
        assert "alice" in page.inner_text("#greeting")
    assert session_rows(server.db_url)[1] == 1  # no stray session
    assert "did not pick up its cookie" not in server.log()
