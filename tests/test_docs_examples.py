"""Every example of the README and the documentation site runs, as written.

An example is a ``python`` block named by ``<!-- example: NAME.py -->`` before it and
closed by ``<!-- /example -->`` after it (``tests/support/docs.py``). Here:

- every ``python`` block of README.md and docs/ is such an example (a block that is not
  would run nowhere, and could drift from the API unseen);
- all of them together pass ``mypy --strict``, as an app author's checker sees an
  installed authdemo (a renamed hook or a changed signature fails here first);
- each one runs: the apps below are imported from the file they are saved as, served
  on a fresh database and driven over the websocket like a browser; the others name
  the test module that runs them (``RUN_ELSEWHERE``), which must say so by name.

The settings table (docs/reference/settings.md) and the API reference
(docs/reference/api.md) are held to the code here too.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

import authdemo
from authdemo.config import Settings
from tests.support.db import ROOT
from tests.support.docs import PYTHON_FENCE, examples, pages, source
from tests.support.idom_client import IdomClient
from tests.support.inner import run_module
from tests.support.live import Live, serve
from tests.support.mfa import MFA_KEY_TEXT, code_at, enrol
from tests.support.mfa import PASSWORD as MFA_PASSWORD
from tests.web.test_login_flow import cookie, first_visit

PASSWORD = "correct horse"

RUN_ELSEWHERE = {
    "app.py": ("tests/web/test_session_data.py", "tests/packaging/test_wheel.py"),
    "reactpy_app.py": ("tests/web/test_session_data.py",),
    "models.py": ("tests/packaging/test_wheel.py",),
    "env.py": ("tests/packaging/test_wheel.py",),
    "accounts.py": ("tests/test_public_api.py",),
    "end_session_route.py": ("tests/web/test_accounts_api.py",),
}
"""Examples whose run needs more than this module has: a built wheel in a fresh
virtualenv (the alembic recipe), or the UI-library parametrisation of the web suite."""


# --- the convention ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_is_a_named_example(page: Path) -> None:
    fences = len(PYTHON_FENCE.findall(source(page)))
    named = sum(1 for e in examples().values() if e.page == page)
    assert fences == named, (
        f"{page.relative_to(ROOT)} has {fences} python blocks, {named} of them named "
        "<!-- example: NAME.py --> … <!-- /example -->: name the others, so that they run"
    )


def test_the_examples_pass_mypy_strict_together(tmp_path: Path) -> None:
    """All of them in one folder (``env.py`` imports ``models``), with no configuration
    of ours; authdemo is found on ``PYTHONPATH``, as an installed package."""
    found = examples()
    for name, found_example in found.items():
        (tmp_path / name).write_text(found_example.code)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    result = run_module(
        tmp_path, "mypy", "--strict", "--config-file", "mypy.ini", *sorted(found), timeout=600
    )
    where = {name: e.where for name, e in found.items()}
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n(examples: {where})"


# --- running them ---------------------------------------------------------------------------------


@contextmanager
def imported(
    name: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> Iterator[ModuleType]:
    """The example saved as ``tmp_path/name`` and imported as its author would, with the
    ``AUTHDEMO_*`` variables pointing at the test's database."""
    path = tmp_path / name
    path.write_text(examples()[name].code)
    monkeypatch.setenv("AUTHDEMO_DATABASE_URL", settings.database_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    module_name = f"docs_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)


async def signed_in_client(live: Live, form: str = "login-form", **fields: str) -> IdomClient:
    """A browser that loaded the page and submitted ``form`` with alice's password."""
    client = await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))
    await client.wait_for_id(form)
    await client.submit(form, {"username": "alice", "password": PASSWORD, **fields})
    return client


Run = Callable[[ModuleType, Path], Awaitable[None]]
RUNS: dict[str, Run] = {}


def runs(name: str) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        RUNS[name] = run
        return run

    return register


@runs("cart.py")
async def run_cart(module: ModuleType, folder: Path) -> None:
    """An anonymous visitor's cart: kept per session, shared by its tabs, emptied."""
    async with serve(module.app) as live:
        token = await first_visit(live)
        async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as tab:
            assert tab.text("cart") == "Your cart is empty."
            for item in ("add-tea", "add-tea", "add-cake"):
                await tab.click(item)
            await tab.wait_for(lambda c: c.text("cart") == "3 in your cart: tea, tea, cake")
            async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as other:
                assert other.text("cart") == "3 in your cart: tea, tea, cake"
                await other.click("empty")
                await tab.wait_for(lambda c: c.text("cart") == "Your cart is empty.")


@runs("routes.py")
async def run_routes(module: ModuleType, folder: Path) -> None:
    """``/api/whoami`` answers 401 until the browser's cookie is signed in; the opted-out
    route goes without the security headers, the others keep them."""
    async with serve(module.app) as live:
        await live.app.ctx.service.create_user("alice", PASSWORD)
        anonymous = await live.get("/api/whoami", headers={"cookie": cookie("nonsense")})
        assert anonymous.status_code == 401
        client = await signed_in_client(live)
        await client.wait_for_id("hello")
        await client.tickets_fetched()
        signed_in = await live.get("/api/whoami", headers={"cookie": client.cookie or ""})
        assert signed_in.status_code == 200 and signed_in.json() == {"username": "alice"}
        widget = await live.get("/embed/widget")
        assert widget.text == "a page others may frame"
        assert "x-frame-options" not in widget.headers
        assert signed_in.headers["x-frame-options"] == "DENY"
        await client.close()


@runs("roles.py")
async def run_roles(module: ModuleType, folder: Path) -> None:
    """bob reads only until granted a role granting notes:write; the button is always
    there, and its click is refused on the server (nothing written) while he lacks it."""
    async with serve(module.app) as live:
        service = live.app.ctx.service
        await service.create_user("bob", PASSWORD)
        client = await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))
        await client.wait_for_id("login-form")
        await client.submit("login-form", {"username": "bob", "password": PASSWORD})
        await client.wait_for(lambda c: c.text("mode") == "read only")
        assert client.find("forbidden") is not None
        await client.click("add-note")
        await client.wait_for_id("permission-refused")
        assert client.text("notes") == "0"
        await client.tickets_fetched()
        forbidden = await live.http.post(
            live.base_url + "/api/notes", headers={"cookie": client.cookie or ""}
        )
        assert forbidden.status_code == 403
        await service.create_role("editor", ["notes:*"])
        await service.grant_role("bob", "editor")
        await client.wait_for(lambda c: c.text("mode") == "you may write", timeout=1.0)
        await client.click("add-note")
        await client.wait_for(lambda c: c.text("notes") == "1")
        allowed = await live.http.post(
            live.base_url + "/api/notes", headers={"cookie": client.cookie or ""}
        )
        assert allowed.status_code == 200
        await client.close()


@runs("routing.py")
async def run_routing(module: ModuleType, folder: Path) -> None:
    """The path picks the page: public home, a guarded account page, a not-found page."""
    async with serve(module.app) as live:
        await live.app.ctx.service.create_user("alice", PASSWORD)

        async def open_page(path: str, token: str) -> IdomClient:
            return await IdomClient.connect(
                live.base_url, cookie=cookie(token), path=f"/_idom/stream{path}"
            )

        token = await first_visit(live)
        async with await open_page("/", token) as home:
            assert home.text("title") == "Welcome"
        async with await open_page("/nowhere", token) as lost:
            assert lost.text("title") == "No page at /nowhere"
        account = await open_page("/account", token)
        assert account.find("title") is None  # guarded: the sign-in form instead
        await account.login("alice", PASSWORD)
        await account.wait_for(lambda c: c.text("title") == "Your account, alice")
        await account.tickets_fetched()
        async with await open_page("/account", account.token() or "") as again:
            assert again.text("title") == "Your account, alice"  # a link followed: signed in
        await account.close()


@runs("account.py")
async def run_account(module: ModuleType, folder: Path) -> None:
    """The account page behind the sign-in form: after signing in, the greeting, the
    session list (this device) and the app's own card inside it."""
    async with serve(module.app) as live:
        await live.app.ctx.service.create_user("alice", PASSWORD)
        client = await signed_in_client(live)
        await client.wait_for_id("greeting")
        await client.wait_for(lambda c: len(c.find_all("li")) >= 1)
        assert client.find("sessions") is not None and client.find("change-password") is not None
        await client.close()


@runs("login_form.py")
async def run_login_form(module: ModuleType, folder: Path) -> None:
    """The hand-made form: a wrong password's message, "Signing in…" until the cookie is
    held, the second step for a two-factor account, and the app's own stylesheet."""
    (folder / "static").mkdir(exist_ok=True)
    (folder / "static" / "site.css").write_text("body { font-family: serif; }\n")
    app = module.app
    async with serve(app) as live:
        page = await live.get("/")
        assert "/_authdemo/static/app.css" not in page.text  # AUTHDEMO_STYLESHEET=0
        css = await live.get("/static/site.css")
        assert css.status_code == 200 and "serif" in css.text
        assert css.headers["x-content-type-options"] == "nosniff"

        service = live.app.ctx.service
        await service.create_user("alice", PASSWORD)
        client = await signed_in_client(live, "sign-in", password="wrong password")
        await client.wait_for(lambda c: c.text("sign-in-error") is not None)
        assert "password" in (client.text("sign-in-error") or "").lower()
        await client.submit("sign-in", {"username": "alice", "password": PASSWORD})
        await client.wait_for(lambda c: c.find("signing-in") is not None or c.find("hello"))
        await client.wait_for_id("hello")
        assert client.find("cookie-refused") is None
        await client.click("sign-out")
        await client.wait_for_id("sign-in")
        await client.close()

        await service.create_user("bob", MFA_PASSWORD)
        secret, _ = await enrol(service, "bob")
        client = await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))
        await client.submit("sign-in", {"username": "bob", "password": MFA_PASSWORD})
        await client.wait_for_id("code-form")
        await client.submit("code-form", {"code": "000000"})
        await client.wait_for(lambda c: c.text("sign-in-error") is not None)
        # The step enrol() used is spent: the next one is within the accepted window.
        await client.submit("code-form", {"code": code_at(secret, datetime.now(UTC), 1)})
        await client.wait_for(lambda c: c.text("hello") == "Hello, bob")
        await client.close()


@runs("configured.py")
async def run_configured(module: ModuleType, folder: Path) -> None:
    async with serve(module.app) as live:
        page = await live.get("/")
        assert "<title>Shop</title>" in page.text
        assert live.app.ctx.settings.idle_timeout.total_seconds() == 600


EXTRA_ENV = {"login_form.py": {"AUTHDEMO_MFA_KEY": MFA_KEY_TEXT}}


@pytest.mark.parametrize("name", sorted(RUN_ELSEWHERE))
def test_an_example_run_elsewhere_is_named_by_the_module_that_runs_it(name: str) -> None:
    assert name in examples(), f"RUN_ELSEWHERE names {name}, which no page has"
    for module in RUN_ELSEWHERE[name]:
        assert f'"{name}"' in (ROOT / module).read_text(), f"{module} does not run {name}"


@pytest.mark.parametrize("name", sorted(set(examples()) - set(RUN_ELSEWHERE)))
async def test_the_example_runs(
    name: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert name in RUNS, f"the example {examples()[name].where} runs nowhere: add it to RUNS"
    with imported(name, settings, tmp_path, monkeypatch, **EXTRA_ENV.get(name, {})) as module:
        await RUNS[name](module, tmp_path)


# --- the reference held to the code ---------------------------------------------------------------


def test_the_settings_reference_has_a_row_for_every_variable() -> None:
    variables = set(re.findall(r"AUTHDEMO_[A-Z0-9_]+", (ROOT / "authdemo/config.py").read_text()))
    page = (ROOT / "docs/reference/settings.md").read_text()
    rows = {
        variable
        for line in page.splitlines()
        if line.startswith("|")
        for variable in re.findall(r"`(AUTHDEMO_[A-Z0-9_]+)`", line.split("|")[1])
    }
    assert not variables - rows, f"settings without a row: {sorted(variables - rows)}"
    assert not rows - variables, f"rows of no setting: {sorted(rows - variables)}"


def test_the_api_reference_documents_every_public_name() -> None:
    page = (ROOT / "docs/reference/api.md").read_text()
    missing = [name for name in authdemo.__all__ if f"::: authdemo.{name}\n" not in page]
    assert not missing, f"public names the API reference leaves out: {missing}"


def test_the_cli_reference_is_generated_from_the_command() -> None:
    page = (ROOT / "docs/reference/cli.md").read_text()
    assert ":module: authdemo.cli" in page and ":command: main" in page
