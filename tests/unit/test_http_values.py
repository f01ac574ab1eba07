"""The HTTP half's pure checks, without a server: Host names, the session cookie's
reading and writing, and the same-origin rule of the ticket endpoint."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from authdemo.http.cookies import cookie_header, read_session_cookie, set_session_cookie
from authdemo.http.hosts import host_allowed, host_name
from authdemo.security import TOKEN_LENGTH

TOKEN = "A" * TOKEN_LENGTH
OTHER = "B" * TOKEN_LENGTH
NAME = "__Host-app"


def _request(headers: dict[str, str], cookie_name: str = NAME) -> Any:
    settings = SimpleNamespace(cookie_name=cookie_name)
    return SimpleNamespace(
        headers=headers, app=SimpleNamespace(ctx=SimpleNamespace(settings=settings))
    )


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("example.com:8443", "example.com"),
        ("[::1]:8000", "::1"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("a-b_c.example", "a-b_c.example"),
    ],
)
def test_host_name_is_lower_case_without_port_or_trailing_dot(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "header",
    [
        "",
        ".",
        "user@example.com",
        "example.com/path",
        "example .com",
        "example.com:123456",
        "[not:an:ip:zz]",
        "[1::2::3]",
        "example.com\n",
        "[::1]\n",
    ],
)
def test_host_name_refuses_anything_but_a_name_or_bracketed_ipv6_and_a_port(header: str) -> None:
    assert host_name(header) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.test", True),
        ("x.app.test", False),  # a plain entry is that name only
        ("example", True),  # a .domain entry: the domain itself
        ("x.example", True),  # and every name under it
        ("a.b.example", True),
        ("badexample", False),
        ("example.org", False),
        ("other.test", False),
    ],
)
def test_host_allowed_matches_plain_entries_exactly_and_dot_entries_as_a_domain(
    name: str, expected: bool
) -> None:
    assert host_allowed(name, ("app.test", ".example")) is expected
    assert host_allowed(name, (".example", "app.test")) is expected


def test_no_host_is_allowed_by_an_empty_list() -> None:
    assert not host_allowed("example", ())


def _cookie(header: str, cookie_name: str = NAME) -> str | None:
    return read_session_cookie(_request({"cookie": header}, cookie_name))


def test_the_session_cookie_is_read_by_the_apps_literal_name_only() -> None:
    assert _cookie(f"other={OTHER}; {NAME}={TOKEN}") == TOKEN
    assert _cookie(f"app={TOKEN}") is None  # the unprefixed name never stands in
    assert _cookie(f"{NAME}={TOKEN}", cookie_name="__Host-other") is None
    assert _cookie(f"__Host-other={OTHER}; {NAME}={TOKEN}", cookie_name="__Host-other") == OTHER


def test_of_duplicate_session_cookies_the_first_of_token_shape_wins() -> None:
    assert _cookie(f"{NAME}=junk; {NAME}={TOKEN}; {NAME}={OTHER}") == TOKEN
    assert _cookie(f" {NAME} = {TOKEN} ") == TOKEN  # spaces around name and value
    assert _cookie(f"{NAME}; {NAME}={TOKEN}") == TOKEN  # a part without "=" is skipped


def test_no_cookie_header_or_an_oversized_one_reads_as_no_cookie() -> None:
    assert read_session_cookie(_request({})) is None
    assert _cookie("") is None
    start = f"{NAME}={TOKEN}; pad="
    limit = 16 * 1024
    assert _cookie(start + "x" * (limit - len(start))) == TOKEN
    assert _cookie(start + "x" * (limit - len(start) + 1)) is None


def test_the_session_cookie_is_host_prefixed_secure_httponly_lax_and_never_negative() -> None:
    assert cookie_header(TOKEN, 60, name=NAME) == (
        f"{NAME}={TOKEN}; Path=/; Max-Age=60; SameSite=Lax; Secure; HttpOnly"
    )
    assert "Max-Age=0;" in cookie_header(TOKEN, -5, name=NAME)


def test_a_response_that_sets_the_cookie_is_never_cached() -> None:
    from sanic.response import text

    response = text("")
    set_session_cookie(response, TOKEN, 60, name=NAME)
    assert response.headers.getall("set-cookie") == [cookie_header(TOKEN, 60, name=NAME)]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("site", "expected"),
    [("same-origin", True), ("same-site", False), ("cross-site", False), ("none", False)],
)
def test_fetch_metadata_decides_same_origin_when_the_browser_sends_it(
    monkeypatch: pytest.MonkeyPatch, site: str, expected: bool
) -> None:
    from authdemo.http import tickets

    monkeypatch.setattr(tickets, "origin_allowed", lambda *args: True)  # Origin would pass
    assert tickets.same_origin(_request({"sec-fetch-site": site}), (), ()) is expected


@pytest.mark.parametrize("verdict", [True, False])
def test_without_fetch_metadata_the_origin_header_decides(
    monkeypatch: pytest.MonkeyPatch, verdict: bool
) -> None:
    from authdemo.http import tickets

    calls: list[tuple[object, ...]] = []

    def origin_allowed(*args: object) -> bool:
        calls.append(args)
        return verdict

    monkeypatch.setattr(tickets, "origin_allowed", origin_allowed)
    request = _request({"origin": "https://app.test"})
    assert tickets.same_origin(request, ("https://x.test",), ()) is verdict
    assert calls == [(request, ("https://x.test",), ())]


def _app(allowed_hosts: tuple[str, ...]) -> Any:
    registered: list[tuple[Any, str, int]] = []
    settings = SimpleNamespace(allowed_hosts=allowed_hosts)

    def register_middleware(middleware: Any, attach_to: str, *, priority: int) -> None:
        registered.append((middleware, attach_to, priority))

    return SimpleNamespace(
        ctx=SimpleNamespace(settings=settings),
        register_middleware=register_middleware,
        registered=registered,
    )


@pytest.mark.parametrize(
    ("host", "refused"),
    [("app.test", False), ("x.example:8443", False), ("evil.test", True), ("a b", True)],
)
async def test_the_host_check_refuses_unlisted_hosts_with_400_before_anything_else(
    host: str, refused: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from authdemo.http.hosts import install_host_check

    app = _app(("app.test", ".example"))
    install_host_check(app)
    [(check, attach_to, priority)] = app.registered
    assert (attach_to, priority) == ("request", 1000)  # first of the request middleware
    with caplog.at_level("DEBUG", logger="authdemo.http.hosts"):
        response = await check(SimpleNamespace(host=host))
    if not refused:
        assert response is None
        assert caplog.messages == []
    else:
        assert response.status == 400
        assert response.body == b"Bad Request: unknown host"
        # Debug only: scanners send unknown hosts all day.
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("DEBUG", f"request refused: host {host!r} not allowed")
        ]


def test_without_listed_hosts_no_host_check_is_installed() -> None:
    from authdemo.http.hosts import install_host_check

    app = _app(())
    install_host_check(app)
    assert app.registered == []
