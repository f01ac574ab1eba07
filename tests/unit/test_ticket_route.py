"""The ticket endpoint's handlers without a server: refusals never touch the cookie, a
redeemed ticket sets the new cookie for the session's remaining life and sends the
image on to the held path, and only a same-origin request there says the cookie is held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from authdemo.domain import ClientInfo, TicketRejected
from authdemo.http import tickets
from authdemo.http.cookies import cookie_header
from authdemo.security import TOKEN_LENGTH
from authdemo.ui.hooks import FOLLOW_PATH, HELD_PATH, TICKET_PATH

NOW = datetime(2030, 1, 1, tzinfo=UTC)
OLD = "A" * TOKEN_LENGTH
NEW = "B" * TOKEN_LENGTH
NAME = "__Host-app"


class FakeService:
    def __init__(self, reject: bool = False) -> None:
        self.reject = reject
        self.calls: list[tuple[Any, ...]] = []

    def now(self) -> datetime:
        return NOW

    async def redeem_ticket(self, ticket: str, cookie: str | None, client: ClientInfo) -> Any:
        self.calls.append(("redeem", ticket, cookie, client))
        if self.reject:
            raise TicketRejected("gone")
        session = SimpleNamespace(absolute_expires_at=NOW + timedelta(seconds=3600, microseconds=9))
        return SimpleNamespace(token=NEW, session=session)

    async def cookie_held(self, cookie: str | None) -> None:
        self.calls.append(("held", cookie))

    async def follow(self, nonce: str, cookie: str | None) -> None:
        self.calls.append(("follow", nonce, cookie))


def _app(service: FakeService) -> Any:
    routes: dict[str, tuple[Any, str]] = {}

    def add_route(handler: Any, uri: str, *, name: str) -> None:
        routes[name] = (handler, uri)

    settings = SimpleNamespace(allowed_origins=("https://other.test",), cookie_name=NAME)
    ctx = SimpleNamespace(settings=settings, trusted=("10.0.0.0/8",), service=service)
    app = SimpleNamespace(ctx=ctx, add_route=add_route, routes=routes)
    tickets.install_ticket_route(app)  # type: ignore[arg-type]
    return app


def _request(app: Any, site: str) -> Any:
    headers = {"sec-fetch-site": site, "cookie": f"{NAME}={OLD}", "user-agent": "ua"}
    return SimpleNamespace(headers=headers, app=app)


@pytest.fixture
def origins(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What same_origin was asked, answered from the request's Sec-Fetch-Site."""
    asked: list[tuple[Any, ...]] = []

    def same_origin(request: Any, extra: tuple[str, ...], trusted: Any) -> bool:
        asked.append((extra, trusted))
        return bool(request.headers["sec-fetch-site"] == "same-origin")

    monkeypatch.setattr(tickets, "same_origin", same_origin)
    monkeypatch.setattr(
        tickets,
        "client_info",
        lambda request, trusted: ClientInfo(f"addr via {trusted}", request.headers["user-agent"]),
    )
    return asked


def test_the_routes_are_the_ticket_held_and_follow_paths() -> None:
    app = _app(FakeService())
    assert {name: uri for name, (_, uri) in app.routes.items()} == {
        "auth_ticket": f"{TICKET_PATH}/<ticket:str>",
        "auth_cookie_held": HELD_PATH,
        "auth_follow": f"{FOLLOW_PATH}/<nonce:str>",
    }


async def test_a_ticket_from_another_origin_is_refused_before_the_service_sees_it(
    origins: list[tuple[Any, ...]], caplog: pytest.LogCaptureFixture
) -> None:
    service = FakeService()
    app = _app(service)
    redeem, _ = app.routes["auth_ticket"]
    response = await redeem(_request(app, "cross-site"), "t1")
    assert (response.status, response.body) == (403, b"Forbidden")
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    assert service.calls == []
    assert origins == [(("https://other.test",), ("10.0.0.0/8",))]
    assert [r.getMessage() for r in caplog.records] == ["ticket refused: not a same-origin request"]


async def test_a_rejected_ticket_is_gone_and_leaves_the_cookie_alone(
    origins: list[tuple[Any, ...]],
) -> None:
    app = _app(FakeService(reject=True))
    redeem, _ = app.routes["auth_ticket"]
    response = await redeem(_request(app, "same-origin"), "t1")
    assert (response.status, response.body) == (410, b"Gone")
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


async def test_a_redeemed_ticket_sets_the_new_cookie_and_sends_the_image_to_the_held_path(
    origins: list[tuple[Any, ...]],
) -> None:
    service = FakeService()
    app = _app(service)
    redeem, _ = app.routes["auth_ticket"]
    response = await redeem(_request(app, "same-origin"), "t1")
    assert response.status == 303
    assert response.headers["location"] == HELD_PATH
    # the browser's current cookie and address are what the ticket is checked against
    assert service.calls == [("redeem", "t1", OLD, ClientInfo("addr via ('10.0.0.0/8',)", "ua"))]
    assert response.headers.getall("set-cookie") == [cookie_header(NEW, 3600, name=NAME)]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("site", "held"), [("same-origin", True), ("cross-site", False)])
async def test_the_held_path_answers_a_pixel_and_only_same_origin_says_the_cookie_is_held(
    origins: list[tuple[Any, ...]], site: str, held: bool
) -> None:
    service = FakeService()
    app = _app(service)
    handler, _ = app.routes["auth_cookie_held"]
    response = await handler(_request(app, site))
    assert service.calls == ([("held", OLD)] if held else [])
    assert (response.status, response.body) == (200, tickets.PIXEL)
    assert response.content_type == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    assert origins == [(("https://other.test",), ("10.0.0.0/8",))]


NONCE = "n0nce_-" + "x" * 9  # 16 characters, as secrets.token_urlsafe spells them


def test_each_route_has_its_handler() -> None:
    app = _app(FakeService())
    handlers = {name: handler.__name__ for name, (handler, _) in app.routes.items()}
    assert handlers == {
        "auth_ticket": "redeem",
        "auth_cookie_held": "held",
        "auth_follow": "follow",
    }


async def test_a_follow_from_another_origin_is_refused_before_the_service_sees_it(
    origins: list[tuple[Any, ...]], caplog: pytest.LogCaptureFixture
) -> None:
    service = FakeService()
    app = _app(service)
    follow, _ = app.routes["auth_follow"]
    response = await follow(_request(app, "cross-site"), NONCE)
    assert (response.status, response.body) == (403, b"Forbidden")
    assert response.headers["cache-control"] == "no-store"
    assert service.calls == []
    assert origins == [(("https://other.test",), ("10.0.0.0/8",))]
    assert [r.getMessage() for r in caplog.records] == ["follow refused: not a same-origin request"]


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has space in it!"])
async def test_a_follow_with_no_nonce_of_ours_is_not_found(
    origins: list[tuple[Any, ...]], nonce: str
) -> None:
    service = FakeService()
    app = _app(service)
    follow, _ = app.routes["auth_follow"]
    response = await follow(_request(app, "same-origin"), nonce)
    assert (response.status, response.body) == (404, b"Not Found")
    assert response.headers["cache-control"] == "no-store"
    assert service.calls == []


async def test_a_same_origin_follow_hands_the_nonce_and_the_browsers_cookie_to_the_service(
    origins: list[tuple[Any, ...]],
) -> None:
    service = FakeService()
    app = _app(service)
    follow, _ = app.routes["auth_follow"]
    response = await follow(_request(app, "same-origin"), NONCE)
    assert service.calls == [("follow", NONCE, OLD)]
    assert (response.status, response.body) == (200, tickets.PIXEL)
    assert response.content_type == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    assert origins == [(("https://other.test",), ("10.0.0.0/8",))]
