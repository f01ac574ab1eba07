"""A small client that speaks the websocket protocol of IDOM 1.0 and of ReactPy 1.1,
for tests and benchmarks.

It keeps the rendered model up to date (layout updates carry a JSON pointer and the
new model of that subtree) and can fire the events a browser would. The two protocols
differ only in where the stream is (``/_idom/stream``, ``/_reactpy/stream``) and in the
event message: ReactPy's client says ``"type": "layout-event"``, IDOM 1.0's does not.
Which one a server speaks is registered by whoever starts it (``serving``); a server
nobody registered speaks IDOM, the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

Model = dict[str, Any]

CONTROLS = {"button", "fieldset", "input", "object", "output", "select", "textarea"}
"""The elements a form's ``elements`` lists (in document order)."""

SERVED_UI: dict[str, str] = {}
"""base URL → UI library ("idom", "reactpy") of the test servers running now."""


@contextlib.contextmanager
def serving(base_url: str, ui: str) -> Iterator[None]:
    """Register the UI library of the server at ``base_url`` while it runs."""
    SERVED_UI[base_url.rstrip("/")] = ui
    try:
        yield
    finally:
        SERVED_UI.pop(base_url.rstrip("/"), None)


def ui_of(base_url: str) -> str:
    return SERVED_UI.get(base_url.rstrip("/"), "idom")


def stream_url(base_url: str, ui: str | None = None) -> str:
    """The websocket URL the UI library's client opens for the page at ``/``."""
    ws = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/")
    return f"{ws}/_{ui or ui_of(base_url)}/stream"


def walk(node: Any) -> Iterator[Model]:
    if isinstance(node, dict):
        yield node
        for child in node.get("children", ()):
            yield from walk(child)


def text_of(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return "".join(text_of(c) for c in node.get("children", ()))
    return ""


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def http_client(timeout: float = 10.0) -> httpx.AsyncClient:
    """An HTTP client as each image or page fetch uses one: sharing one TLS context, a
    new client costs ~0.1 ms instead of the ~17 ms of loading the CA store each time
    (forty tabs signing in and out made that the test process's main work)."""
    return httpx.AsyncClient(timeout=timeout, verify=_tls())


async def page_cookie(base_url: str, headers: dict[str, str] | None = None) -> str | None:
    """Load the page like a browser does first, and return its ``Cookie`` header value."""
    async with http_client() as http:
        response = await http.get(base_url.rstrip("/") + "/", headers=headers)
    for value in response.headers.get_list("set-cookie"):
        return str(value.split(";", 1)[0])
    return None


class IdomClient:
    def __init__(
        self,
        ws: ClientConnection,
        cookie: str | None = None,
        base_url: str | None = None,
        follow_tickets: bool = False,
        ui: str = "idom",
    ) -> None:
        self.ws = ws
        self.ui = ui
        """The protocol spoken: "idom" (IDOM 1.0) or "reactpy" (ReactPy 1.1)."""
        self.cookie = cookie
        """The ``Cookie`` the browser holds (None: none); tickets fetched update it."""
        self.base_url = base_url
        self.follow_tickets = follow_tickets
        """Fetch each ticket image as soon as it is rendered, as a browser does."""
        self.ticket_statuses: list[int | str] = []
        """The status of each ticket image fetched, or why its fetch failed."""
        self._followed: set[str] = set()
        self._fetches: set[asyncio.Task[None]] = set()
        self.model: Model = {}
        self.updates = 0

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        cookie: str | None = None,
        origin: str | None = "same",
        path: str | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        page_first: bool = True,
        follow_tickets: bool = True,
        ui: str | None = None,
    ) -> IdomClient:
        """Open the websocket like the IDOM (or ReactPy) client does and wait for the
        first render. ``ui`` defaults to what the server at ``base_url`` registered
        (``serving``); ``path`` to that library's stream.

        Like a browser: without ``cookie``, the page is loaded first for one
        (``page_first=False`` opens the websocket with no cookie at all), and every
        ticket image is fetched as soon as it renders, following its redirect with the
        new cookie (``follow_tickets=False`` leaves that to the test)."""
        ui = ui or ui_of(base_url)
        path = path or f"/_{ui}/stream"
        ws_url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        headers = dict(headers or {})
        if cookie is None and page_first:
            cookie = await page_cookie(base_url, headers)
        if origin == "same":
            headers["Origin"] = base_url.rstrip("/")
        elif origin is not None:
            headers["Origin"] = origin
        if cookie is not None:
            headers["Cookie"] = cookie
        ws = await websockets.connect(
            ws_url.rstrip("/") + path,
            additional_headers=headers,
            origin=None,
            open_timeout=timeout,
            max_size=2**22,
        )
        client = cls(ws, cookie, base_url, follow_tickets, ui)
        await client.receive(timeout)
        return client

    async def close(self) -> None:
        for task in tuple(self._fetches):
            task.cancel()
        await self.ws.close()

    async def __aenter__(self) -> IdomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- model ------------------------------------------------------------------------------

    def apply(self, message: dict[str, Any]) -> None:
        assert message.get("type") == "layout-update", message
        path, model = message["path"], message["model"]
        if not path:
            self.model = model
        else:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
            target: Any = self.model
            for part in parts[:-1]:
                target = target[int(part)] if isinstance(target, list) else target[part]
            last = parts[-1]
            if isinstance(target, list):
                target[int(last)] = model
            else:
                target[last] = model
        self.updates += 1

    async def receive(self, timeout: float = 10.0) -> None:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        self.apply(json.loads(raw))
        if self.follow_tickets:
            self._fetch_new_ticket()

    def _fetch_new_ticket(self) -> None:
        src = self.ticket_src()
        if src is None or src in self._followed or self.base_url is None:
            return
        self._followed.add(src)

        async def fetch() -> None:
            try:
                response = await self.redeem(str(self.base_url), src=src)
            except (httpx.HTTPError, OSError) as error:  # counted, never swallowed
                self.ticket_statuses.append(f"failed: {type(error).__name__}: {error}"[:200])
            else:
                self.ticket_statuses.append(response.status_code)

        task = asyncio.ensure_future(fetch())
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def tickets_fetched(self) -> list[int | str]:
        """Wait for the ticket requests in flight; the statuses of all fetched so far."""
        if self._fetches:
            await asyncio.gather(*tuple(self._fetches), return_exceptions=True)
        return self.ticket_statuses

    def token(self) -> str | None:
        """The session token this browser holds now (its cookie's value)."""
        return self.cookie.split("=", 1)[1] if self.cookie else None

    async def catch_up(self, quiet: float = 0.05, timeout: float = 10.0) -> None:
        """Apply every update the server sent, until none came for ``quiet`` seconds:
        what a browser has on screen, before it acts on the page (a click on a handler
        of an earlier render is ignored by the UI library). ``TimeoutError`` when the
        page never went quiet within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await self.receive(quiet)
            except TimeoutError:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"the page kept changing for {timeout} s")

    async def wait_for(
        self, predicate: Callable[[IdomClient], bool], timeout: float = 10.0
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met; model: {json.dumps(self.model)[:2000]}")
            await self.receive(remaining)

    async def wait_for_id(self, element_id: str, timeout: float = 10.0) -> Model:
        await self.wait_for(lambda c: c.find(element_id) is not None, timeout)
        found = self.find(element_id)
        assert found is not None
        return found

    def find(self, element_id: str) -> Model | None:
        return next(
            (n for n in walk(self.model) if n.get("attributes", {}).get("id") == element_id), None
        )

    def find_all(self, tag: str) -> list[Model]:
        return [n for n in walk(self.model) if n.get("tagName") == tag]

    def text(self, element_id: str) -> str | None:
        node = self.find(element_id)
        return None if node is None else text_of(node)

    # --- events ------------------------------------------------------------------------------

    async def fire(self, node: Model, event: str, *data: Any) -> None:
        handler = node.get("eventHandlers", {}).get(event)
        assert handler is not None, f"no {event} handler on {node.get('tagName')}"
        message: dict[str, Any] = {"target": handler["target"], "data": list(data)}
        if self.ui == "reactpy":
            message = {"type": "layout-event", **message}
        await self.ws.send(json.dumps(message))

    async def submit(self, form_id: str, values: dict[str, str]) -> None:
        """Submit the form with ``values`` by name, as the library's client sends it:
        IDOM 1.0's names each element; ReactPy 1.1's sends every control of the form in
        document order with its tag and value only (no name)."""
        form = self.find(form_id)
        assert form is not None, f"no #{form_id}"
        elements: list[dict[str, Any]]
        if self.ui == "reactpy":
            elements = []
            for node in walk(form):
                attributes = node.get("attributes", {})
                if node.get("tagName") in CONTROLS and attributes.get("type") != "image":
                    name = attributes.get("name")
                    value = values.get(name) if name else None
                    if value is None:
                        value = attributes.get("value", attributes.get("default_value", ""))
                    elements.append({"tagName": node["tagName"].upper(), "value": value})
        else:
            elements = [{"name": k, "value": v} for k, v in values.items()]
        await self.fire(form, "on_submit", {"target": {"tagName": "FORM", "elements": elements}})

    async def click(self, element_id: str) -> None:
        node = self.find(element_id)
        assert node is not None, f"no #{element_id}"
        await self.fire(node, "on_click", {"target": {}})

    async def login(self, username: str, password: str) -> None:
        await self.submit("login-form", {"username": username, "password": password})

    async def redeem(
        self,
        base_url: str,
        http: httpx.AsyncClient | None = None,
        src: str | None = None,
        follow: bool = True,
    ) -> httpx.Response:
        """Fetch the ticket image as the browser would: same-origin, with the cookie this
        browser holds; keep the new cookie it hands out and (``follow``) follow the
        redirect with it, as an ``<img>`` does. Returns the ticket's own response."""
        src = src or self.ticket_src()
        assert src is not None, "no ticket to redeem"
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(http_client())
            response = await http.get(base_url.rstrip("/") + src, headers=self._headers())
            if "set-cookie" in response.headers:
                self.cookie = response.headers["set-cookie"].split(";", 1)[0]
            location = response.headers.get("location")
            if follow and response.is_redirect and location:
                await http.get(base_url.rstrip("/") + location, headers=self._headers())
        return response

    def _headers(self) -> dict[str, str]:
        headers = {"sec-fetch-site": "same-origin"}
        if self.cookie:
            headers["cookie"] = self.cookie
        return headers

    def ticket_src(self) -> str | None:
        for img in self.find_all("img"):
            src = img.get("attributes", {}).get("src", "")
            if src.startswith("/_auth/ticket/"):
                return str(src)
        return None

    def follow_src(self) -> str | None:
        """The follow image this view renders (another tab rotated its cookie), if any."""
        for img in self.find_all("img"):
            src = img.get("attributes", {}).get("src", "")
            if src.startswith("/_auth/follow/"):
                return str(src)
        return None

    async def fetch_follow(
        self, cookie: str | None, *, site: str = "same-origin", src: str | None = None
    ) -> httpx.Response:
        """Load this view's follow image as a browser holding ``cookie`` would (the
        browser's current cookie; ``site``: what its fetch metadata says)."""
        src = src or self.follow_src()
        assert src is not None and self.base_url is not None, "no follow image"
        headers = {"sec-fetch-site": site}
        if cookie:
            headers["cookie"] = cookie
        async with http_client() as http:
            return await http.get(self.base_url.rstrip("/") + src, headers=headers)


async def flood_until_closed(client: IdomClient) -> None:
    """Send events far over the connection's budget until the server closes it (1008);
    the client goes on sending after the server's close, so some are never read."""
    event = json.dumps({"target": "none", "data": []})

    async def flood() -> None:
        for _ in range(1000):
            await client.ws.send(event)
        await asyncio.wait_for(client.ws.recv(), 5)

    try:
        await flood()
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1008, closed
    else:
        raise AssertionError("the server did not close a flood")
