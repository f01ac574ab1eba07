"""The session cookie, through Sanic's test client (a real Sanic server per request)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authdemo.config import Settings
from authdemo.http.app import AuthdemoApp
from authdemo.http.cookies import COOKIE_NAME
from authdemo.security import TOKEN_LENGTH, TokenCodec
from tests.support.fakes import FakeClock
from tests.web.conftest import run_service, signed_in_token


def get(app: AuthdemoApp, path: str = "/", cookie: str | None = None):  # type: ignore[no-untyped-def]
    # Bytes, so that non-ASCII cookies reach the server as a browser would send them.
    headers = {"cookie": cookie.encode("utf-8")} if cookie is not None else {}
    _, response = app.test_client.get(path, headers=headers)
    return response


def set_cookies(response) -> list[str]:  # type: ignore[no-untyped-def]
    return response.headers.get_list("set-cookie")


def issued_token(response) -> str:  # type: ignore[no-untyped-def]
    (header,) = set_cookies(response)
    name, _, rest = header.partition("=")
    assert name == COOKIE_NAME
    return rest.split(";")[0]


def test_a_first_visit_gets_an_httponly_host_prefixed_cookie(app: AuthdemoApp) -> None:
    response = get(app)
    assert response.status == 200
    (header,) = set_cookies(response)
    parts = [p.strip() for p in header.split(";")]
    name, value = parts[0].split("=", 1)
    attributes = {p.split("=")[0].lower(): ([*p.split("=", 1), ""])[1] for p in parts[1:]}
    assert name == "__Host-authdemo_session"
    assert len(value) == TOKEN_LENGTH
    assert attributes == {
        "path": "/",
        "max-age": str(12 * 3600),
        "samesite": "Lax",
        "secure": "",
        "httponly": "",
    }
    assert "domain" not in attributes
    assert response.headers["cache-control"] == "no-store"


def test_a_valid_anonymous_cookie_is_kept(app: AuthdemoApp) -> None:
    token = issued_token(get(app))
    assert set_cookies(get(app, cookie=f"{COOKIE_NAME}={token}")) == []


def test_a_signed_in_cookie_is_kept(
    app: AuthdemoApp, settings: Settings, app_clock: FakeClock
) -> None:
    token = run_service(settings, app_clock, signed_in_token)
    assert set_cookies(get(app, cookie=f"{COOKIE_NAME}={token}")) == []


def test_a_forged_token_is_replaced(app: AuthdemoApp) -> None:
    forged = TokenCodec(b"attacker-key-of-32-bytes-length!").mint(datetime.now(UTC))
    response = get(app, cookie=f"{COOKIE_NAME}={forged}")
    assert issued_token(response) != forged


@pytest.mark.parametrize(
    "value",
    [
        "",
        "short",
        "x" * TOKEN_LENGTH,
        "'; DROP TABLE sessions; --",
        "../../etc/passwd",
        "é" * 10,
        '"quoted"',
    ],
)
def test_malformed_tokens_are_replaced(app: AuthdemoApp, value: str) -> None:
    response = get(app, cookie=f"{COOKIE_NAME}={value}")
    assert response.status == 200
    assert issued_token(response) != value


def test_an_oversized_cookie_header_gets_a_fresh_cookie_not_an_error(app: AuthdemoApp) -> None:
    response = get(app, cookie=f"{COOKIE_NAME}={'a' * 10_000}")
    assert response.status == 200
    assert len(issued_token(response)) == TOKEN_LENGTH


def test_an_expired_token_is_replaced(app: AuthdemoApp, app_clock: FakeClock) -> None:
    token = issued_token(get(app))
    app_clock.advance(timedelta(hours=12))
    assert issued_token(get(app, cookie=f"{COOKIE_NAME}={token}")) != token


def test_an_expired_session_is_replaced(
    app: AuthdemoApp, settings: Settings, app_clock: FakeClock
) -> None:
    token = run_service(settings, app_clock, signed_in_token)
    app_clock.advance(timedelta(minutes=31))
    assert issued_token(get(app, cookie=f"{COOKIE_NAME}={token}")) != token


def test_a_revoked_session_is_replaced(
    app: AuthdemoApp, settings: Settings, app_clock: FakeClock
) -> None:
    async def login_then_logout(service):  # type: ignore[no-untyped-def]
        token = await signed_in_token(service)
        resolved = await service.resolve(token)
        await service.logout(resolved.signed_in.session.id)
        return token

    token = run_service(settings, app_clock, login_then_logout)
    assert issued_token(get(app, cookie=f"{COOKIE_NAME}={token}")) != token


@pytest.mark.parametrize(
    "name", ["authdemo_session", "__Secure-authdemo_session", "__host-authdemo_session"]
)
def test_a_cookie_under_another_name_never_stands_in(app: AuthdemoApp, name: str) -> None:
    token = issued_token(get(app))
    response = get(app, cookie=f"{name}={token}")
    assert issued_token(response) != token


def test_the_first_well_formed_duplicate_wins(app: AuthdemoApp) -> None:
    token = issued_token(get(app))
    response = get(app, cookie=f"{COOKIE_NAME}=junk; {COOKIE_NAME}={token}")
    assert set_cookies(response) == []


def test_any_page_path_serves_the_app_and_a_cookie(app: AuthdemoApp) -> None:
    response = get(app, "/some/deep/link")
    assert response.status == 200 and '<div id="app">' in response.text
    assert len(set_cookies(response)) == 1


def test_cacheable_static_files_never_carry_a_cookie(app: AuthdemoApp) -> None:
    response = get(app, "/_authdemo/static/app.css")
    assert response.status == 200 and set_cookies(response) == []
