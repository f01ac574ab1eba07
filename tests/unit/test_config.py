from __future__ import annotations

import re
from datetime import timedelta

import pytest

from authdemo.config import DEFAULT_DATABASE_URL, ConfigError, Settings, parse_duration


def test_defaults_are_sqlite_file_and_owasp_timeouts() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.idle_timeout == timedelta(minutes=30)
    assert settings.absolute_timeout == timedelta(hours=12)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200), ("2d", 172800), ("500ms", 0.5)],
)
def test_durations_accept_plain_seconds_and_units(raw: str, expected: float) -> None:
    assert parse_duration("X", raw).total_seconds() == expected


@pytest.mark.parametrize("raw", ["", "soon", "-5", "0", "5 minutes"])
def test_bad_durations_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="X"):
        parse_duration("X", raw)


def test_plain_database_urls_get_the_async_driver() -> None:
    env = {"AUTHDEMO_DATABASE_URL": "postgresql://u@h/db"}
    assert Settings.from_env(env).database_url == "postgresql+asyncpg://u@h/db"
    env = {"AUTHDEMO_DATABASE_URL": "sqlite:///x.db"}
    assert Settings.from_env(env).database_url == "sqlite+aiosqlite:///x.db"


def test_allowed_origins_are_parsed_and_validated() -> None:
    env = {"AUTHDEMO_ALLOWED_ORIGINS": "https://a.example, http://b.example:8080/"}
    assert Settings.from_env(env).allowed_origins == ("https://a.example", "http://b.example:8080")
    with pytest.raises(ConfigError, match="not an origin"):
        Settings.from_env({"AUTHDEMO_ALLOWED_ORIGINS": "a.example/path"})


def test_idle_timeout_longer_than_absolute_is_refused() -> None:
    with pytest.raises(ConfigError, match="IDLE"):
        Settings.from_env({"AUTHDEMO_IDLE_TIMEOUT": "2h", "AUTHDEMO_ABSOLUTE_TIMEOUT": "1h"})


def test_argon2_cost_below_owasp_minimum_is_refused() -> None:
    with pytest.raises(ConfigError, match="MEMORY"):
        Settings.from_env({"AUTHDEMO_ARGON2_MEMORY_KIB": "1024"})


def test_short_secret_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="32"):
        Settings.from_env({"AUTHDEMO_SECRET_KEY": "short"})


def test_throttle_knobs_reach_the_policy() -> None:
    from authdemo.bootstrap import throttle_policy

    settings = Settings.from_env(
        {
            "AUTHDEMO_THROTTLE_ACCOUNT_FAILURES": "3",
            "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": "50",
            "AUTHDEMO_THROTTLE_MAX_BLOCK": "5m",
        }
    )
    policy = throttle_policy(settings)
    assert (policy.account_threshold, policy.address_threshold, policy.cap) == (
        3,
        50,
        timedelta(minutes=5),
    )


def test_broadcast_polling_slower_than_250ms_is_refused() -> None:
    with pytest.raises(ConfigError, match="250ms"):
        Settings.from_env({"AUTHDEMO_BROADCAST_POLL": "1s"})


@pytest.mark.parametrize(
    ("raw", "expected"), [("65536", 65536), ("64KiB", 65536), ("1MiB", 1048576), ("2k", 2048)]
)
def test_session_data_cap_accepts_bytes_and_units(raw: str, expected: int) -> None:
    assert Settings.from_env({"AUTHDEMO_SESSION_DATA_MAX": raw}).session_data_max_bytes == expected


def test_a_bad_session_data_cap_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AUTHDEMO_SESSION_DATA_MAX"):
        Settings.from_env({"AUTHDEMO_SESSION_DATA_MAX": "lots"})


def test_allowed_hosts_are_parsed_like_djangos() -> None:
    env = {"AUTHDEMO_ALLOWED_HOSTS": "App.Example.com, .example.org, 192.0.2.10, [2001:DB8::1]"}
    assert Settings.from_env(env).allowed_hosts == (
        "app.example.com",
        ".example.org",
        "192.0.2.10",
        "2001:db8::1",
    )
    assert Settings.from_env({}).allowed_hosts == ()  # unset: any host, as before


def test_an_international_allowed_host_is_kept_as_the_punycode_browsers_send() -> None:
    env = {"AUTHDEMO_ALLOWED_HOSTS": "Bücher.example"}
    assert Settings.from_env(env).allowed_hosts == ("xn--bcher-kva.example",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://app.example.com", "is a URL"),
        ("app.example.com:8443", "without ports"),
        ("*", "not a host name"),
        ("app..example.com", "not a host name"),
        ("app example.com", "not a host name"),
        (" , ", "lists no host"),
    ],
)
def test_a_bad_allowed_host_is_refused_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        Settings.from_env({"AUTHDEMO_ALLOWED_HOSTS": raw})
    assert "AUTHDEMO_ALLOWED_HOSTS" in str(refused.value)


def test_the_audit_retention_defaults_to_90_days_and_reaches_the_service() -> None:
    assert Settings.from_env({}).audit_retention == timedelta(days=90)
    assert Settings.from_env({"AUTHDEMO_AUDIT_RETENTION": "400d"}).audit_retention == timedelta(
        days=400
    )


@pytest.mark.parametrize("raw", ["90", "12h", "forever"])
def test_an_audit_retention_under_a_day_or_unreadable_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="AUTHDEMO_AUDIT_RETENTION"):
        Settings.from_env({"AUTHDEMO_AUDIT_RETENTION": raw})


# --- page and cookie knobs (issue 18) ---------------------------------------------------


def test_the_default_policy_is_exactly_as_strict_as_before() -> None:
    from authdemo.http.headers import SecurityHeaders

    expected = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    settings = Settings.from_env({})
    assert settings.csp_extra == "" and settings.page_title == "authdemo"
    assert settings.stylesheet is True and settings.cookie_name == "__Host-authdemo_session"
    assert SecurityHeaders.from_settings(settings).plain["content-security-policy"] == expected


def test_csp_extra_sources_merge_into_their_directives_once() -> None:
    from authdemo.http.headers import content_security_policy

    env = {
        "AUTHDEMO_CSP_EXTRA": "img-src https://cdn.example 'self'; font-src https://fonts.example;"
        " IMG-SRC https://cdn.example *.pics.example; media-src https://video.example"
    }
    extra = Settings.from_env(env).csp_sources()
    assert extra == {
        "img-src": ("https://cdn.example", "'self'", "*.pics.example"),
        "font-src": ("https://fonts.example",),
        "media-src": ("https://video.example",),
    }
    directives = {
        d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in content_security_policy(extra).split("; ")
    }
    assert directives["img-src"] == "'self' data: https://cdn.example *.pics.example"
    assert directives["font-src"] == "'self' https://fonts.example"
    # A directive the base policy leaves to default-src keeps what default-src allowed.
    assert directives["media-src"] == "'self' https://video.example"
    assert directives["script-src"] == "'self'"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("script-src 'unsafe-inline'", "'unsafe-inline' in script-src"),
        ("script-src https://ok.example 'unsafe-eval'", "'unsafe-eval' in script-src"),
        ("script-src *", r"\* in script-src"),
        ("script-src data:", "data: in script-src"),
        ("img-src 'unsafe-inline'", "not allowed in img-src"),
        ("style-src 'nonce-abc'", "not allowed in style-src"),
        ("img-scr https://cdn.example", "unknown directive 'img-scr'"),
        ("require-trusted-types-for 'script'", "unknown directive"),
        ("object-src https://plugins.example", "object-src cannot be extended"),
        ("frame-ancestors https://embedder.example", "frame-ancestors cannot be extended"),
        ("img-src", "lists no source"),
        ("img-src https://cdn.example'", "not a CSP source"),
        ('img-src "https://cdn.example"', "not a CSP source"),
        ("img-src https://a.example,https://b.example", "not a CSP source"),
        ("img-src https://cdn.example\nscript-src 'unsafe-inline'", "line breaks"),
        ("img-src https://cdn.example\r\nx-evil: 1", "line breaks"),
        ("img-src https://cdn.example/a;b", "unknown directive 'b'"),
    ],
)
def test_csp_extra_refuses_what_would_weaken_or_break_the_header(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        Settings.from_env({"AUTHDEMO_CSP_EXTRA": raw})
    assert "AUTHDEMO_CSP_EXTRA" in str(refused.value)


# Every spelling of "beyond named hosts": any host, a whole top-level domain, a scheme
# alone, any port — in any case. (source, what the refusal says it allows)
WIDENING_SOURCES = [
    ("*", "allows any host"),
    ("*/", "allows any host"),
    ("*/js/app.js", "allows any host"),
    ("https://*", "allows any host"),
    ("HTTPS://*", "allows any host"),
    ("https://*/", "allows any host"),
    ("wss://*", "allows any host"),
    ("*:*", "allows any host"),
    ("*:443", "allows any host"),
    ("https://*:443/", "allows any host"),
    ("*.com", "allows every host under .com"),
    ("https://*.COM", "allows every host under .com"),
    ("https:", "allows every https URL"),
    ("HTTPS:", "allows every https URL"),
    ("http:", "allows every http URL"),
    ("Http:", "allows every http URL"),
    ("ws:", "allows every ws URL"),
    ("wss:", "allows every wss URL"),
    ("filesystem:", "allows every filesystem URL"),
    ("javascript:", "allows every javascript URL"),
    ("chrome-extension:", "allows every chrome-extension URL"),
    ("data:", "would run code written into data: URLs"),
    ("DATA:", "would run code written into data: URLs"),
    ("Data:", "would run code written into data: URLs"),
    ("blob:", "would run code built in the page"),
    ("Blob:", "would run code built in the page"),
    ("BLOB:", "would run code built in the page"),
    ("cdn.example.com:*", "allows any port"),
    ("https://cdn.example.com:*", "allows any port"),
    ("HTTPS://CDN.EXAMPLE.COM:*/js/", "allows any port"),
    ("https://*.example.com:*", "allows any port"),
]
CODE_DIRECTIVES = ["default-src", "script-src", "object-src", "SCRIPT-SRC", "Default-Src"]


@pytest.mark.parametrize("directive", CODE_DIRECTIVES)
@pytest.mark.parametrize(("source", "allows"), WIDENING_SOURCES)
def test_csp_extra_refuses_sources_beyond_named_hosts_where_code_comes_from(
    directive: str, source: str, allows: str
) -> None:
    raw = f"img-src https://cdn.example; {directive} https://ok.example {source}"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"AUTHDEMO_CSP_EXTRA": raw})
    message = str(refused.value)
    assert message.startswith(f"AUTHDEMO_CSP_EXTRA: {source} in {directive.lower()} {allows}")
    assert "\n" not in message
    with pytest.raises(ConfigError, match=re.escape(f"{source} in {directive.lower()}")):
        Settings(csp_extra=raw).validate()  # built in code: the same


@pytest.mark.parametrize("directive", CODE_DIRECTIVES)
@pytest.mark.parametrize(
    "source",
    [
        "'unsafe-inline'",
        "'UNSAFE-INLINE'",
        "'Unsafe-Eval'",
        "'unsafe-hashes'",
        "'strict-dynamic'",
        "'wasm-unsafe-eval'",
        "'none'",
        "'nonce-abc'",
        "*.",
        "https://*.",
        "//cdn.example.com",
    ],
)
def test_csp_extra_refuses_keywords_and_malformed_sources_where_code_comes_from(
    directive: str, source: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"AUTHDEMO_CSP_EXTRA": f"{directive} {source}"})
    message = str(refused.value)
    assert source in message and directive.lower() in message
    assert message.startswith("AUTHDEMO_CSP_EXTRA: ") and "\n" not in message


@pytest.mark.parametrize("directive", ["default-src", "script-src", "Script-Src"])
@pytest.mark.parametrize(
    "source",
    [
        "https://cdn.example.com",
        "HTTPS://CDN.EXAMPLE.COM",
        "cdn.example.com",
        "https://cdn.example.com:8443/js/",
        "https://*.example.com",
        "*.example.com",
        "https://*.cdn.example.co.uk:443",
        "https://[2001:db8::1]:8443",
        "wss://live.example.com/socket",
        "'self'",
        "'SELF'",
        "'sha256-B2yPHKaXnvFWtRChIbabYmUBFZdVfKKXHbWtWidDVF8='",
    ],
)
def test_csp_extra_accepts_named_hosts_and_families_of_them_where_code_comes_from(
    directive: str, source: str
) -> None:
    extra = Settings.from_env({"AUTHDEMO_CSP_EXTRA": f"{directive} {source}"}).csp_sources()
    assert extra == {directive.lower(): (source,)}


def test_sources_beyond_named_hosts_stay_fine_where_no_code_comes_from() -> None:
    raw = "img-src * https: blob:; media-src data: *:*; connect-src wss: https://*:*"
    extra = Settings.from_env({"AUTHDEMO_CSP_EXTRA": raw}).csp_sources()
    assert extra["img-src"] == ("*", "https:", "blob:")
    assert extra["connect-src"] == ("wss:", "https://*:*")


def test_csp_extra_accepts_inline_styles_hashes_and_schemes() -> None:
    raw = (
        "style-src 'unsafe-inline' https://fonts.googleapis.com; "
        "script-src 'sha256-B2yPHKaXnvFWtRChIbabYmUBFZdVfKKXHbWtWidDVF8=' https://js.example:8443; "
        "img-src https: blob:; connect-src wss://live.example/socket"
    )
    assert Settings.from_env({"AUTHDEMO_CSP_EXTRA": raw}).csp_sources()["style-src"] == (
        "'unsafe-inline'",
        "https://fonts.googleapis.com",
    )


def test_settings_built_in_code_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="script-src"):
        Settings(csp_extra="script-src 'unsafe-inline'").validate()
    with pytest.raises(ConfigError, match="__Host-"):
        Settings(cookie_name="myapp_session").validate()
    with pytest.raises(ConfigError, match="control characters"):
        Settings(page_title="a\nb").validate()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("myapp_session", "__Host-myapp_session"),
        ("__Host-myapp_session", "__Host-myapp_session"),
        ("  shop.v2  ", "__Host-shop.v2"),
    ],
)
def test_the_cookie_name_keeps_the_host_prefix(raw: str, expected: str) -> None:
    assert Settings.from_env({"AUTHDEMO_COOKIE_NAME": raw}).cookie_name == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("__Secure-myapp", "__Secure- prefix"),
        ("__host-myapp", "write the prefix"),
        ("my app", "not a cookie name"),
        ("my=app", "not a cookie name"),
        ("my;app", "not a cookie name"),
        ('my"app', "not a cookie name"),
        ("mÿapp", "not a cookie name"),
        ("__Host-", "followed by a name"),
        ("a" * 130, "not a cookie name"),
    ],
)
def test_cookie_names_are_tokens(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"AUTHDEMO_COOKIE_NAME": raw})


def test_page_title_and_stylesheet_are_read() -> None:
    env = {"AUTHDEMO_PAGE_TITLE": "Shop <& Co>", "AUTHDEMO_STYLESHEET": "0"}
    settings = Settings.from_env(env)
    assert settings.page_title == "Shop <& Co>" and settings.stylesheet is False
    assert Settings.from_env({"AUTHDEMO_STYLESHEET": "yes"}).stylesheet is True
    with pytest.raises(ConfigError, match="AUTHDEMO_STYLESHEET"):
        Settings.from_env({"AUTHDEMO_STYLESHEET": "maybe"})
    with pytest.raises(ConfigError, match="AUTHDEMO_PAGE_TITLE"):
        Settings.from_env({"AUTHDEMO_PAGE_TITLE": "x" * 201})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"idle_timeout": 600},
            "Settings(idle_timeout=600): idle_timeout must be a timedelta, not int "
            "(e.g. idle_timeout=timedelta(minutes=10))",
        ),
        ({"allowed_hosts": ["a.example"]}, "allowed_hosts must be a tuple of str, not list"),
        ({"ws_per_address": True}, "ws_per_address must be an int, not bool"),
        ({"db_pool": "5"}, "db_pool must be an int or None, not str"),
        ({"database_url": None}, "database_url must be a str, not NoneType"),
        ({"mfa_keys": ("text",)}, "mfa_keys must be a tuple of bytes, not tuple"),
        ({"ui": "vue"}, "ui must be one of 'idom', 'reactpy', not str"),
        ({"argon2": 3}, "argon2 must be an Argon2Params, not int"),
    ],
)
def test_settings_built_in_code_are_type_checked_naming_the_field(
    given: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(**given)  # type: ignore[arg-type]
    assert message in str(refused.value)


def test_settings_of_the_right_types_are_accepted_as_given() -> None:
    settings = Settings(
        idle_timeout=timedelta(minutes=10),
        db_pool=None,
        allowed_hosts=("a.example",),
        secret_key=b"k" * 32,
        ui="reactpy",
    )
    assert settings.db_pool is None and settings.allowed_hosts == ("a.example",)


# A pattern that ends in ``$`` also matches before a final line break (``re.match``);
# every check below must refuse a value that ends in one (``fullmatch``).


def test_a_cookie_name_built_in_code_with_a_trailing_line_break_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a cookie name"):
        Settings(cookie_name="__Host-app\n").validate()


def test_an_allowed_origin_with_a_line_break_before_its_slash_is_refused() -> None:
    # Stripped, then its trailing slash dropped: "https://app.example\n" is left.
    with pytest.raises(ConfigError, match="AUTHDEMO_ALLOWED_ORIGINS"):
        Settings.from_env({"AUTHDEMO_ALLOWED_ORIGINS": "https://app.example\n/"})


def test_an_allowed_host_with_a_line_break_before_its_dot_is_refused() -> None:
    # Stripped, then its trailing dot dropped: "app.example\n" is left.
    with pytest.raises(ConfigError, match="not a host name"):
        Settings.from_env({"AUTHDEMO_ALLOWED_HOSTS": "app.example\n."})


# --- every spelling and bound of the small parsers; errors that name their variable ---------


def test_booleans_take_each_spelling_in_any_case() -> None:
    from authdemo.config import boolean

    for raw in ("1", "true", "yes", "on", " TRUE ", "On"):
        assert boolean("X", raw) is True, raw
    for raw in ("0", "false", "no", "off", "FALSE", " No "):
        assert boolean("X", raw) is False, raw


def test_signup_mode_is_open_or_closed_in_any_case() -> None:
    from authdemo.config import signup_mode

    assert signup_mode("X", " OPEN ") is True
    assert signup_mode("X", "open") is True
    assert signup_mode("X", "Closed") is False
    with pytest.raises(ConfigError) as refused:
        signup_mode("X", "maybe")
    assert str(refused.value) == "X='maybe': use open or closed"


def test_a_cookie_name_is_at_most_128_characters_and_needs_a_name_after_its_prefix() -> None:
    from authdemo.config import check_cookie_name, cookie_name

    longest = "__Host-" + "a" * 121
    check_cookie_name("X", longest)
    with pytest.raises(ConfigError) as too_long:
        check_cookie_name("X", longest + "a")
    assert str(too_long.value) == (
        f"X: {longest + 'a'!r} is not a cookie name (letters, digits and "
        "!#$%&'*+-.^_`|~ only, at most 128 characters)"
    )
    with pytest.raises(ConfigError, match="followed by a name"):
        check_cookie_name("X", "__Host-")
    with pytest.raises(ConfigError) as bad:
        cookie_name("AUTHDEMO_COOKIE_NAME", "my session")
    assert str(bad.value).startswith("AUTHDEMO_COOKIE_NAME: '__Host-my session' is not a cookie")
    with pytest.raises(ConfigError) as case:
        cookie_name("X", "__host-mine")
    assert str(case.value) == "X: write the prefix as '__Host-', not '__host-'"


def test_settings_errors_name_their_variable() -> None:
    def refused(**values: object) -> str:
        with pytest.raises(ConfigError) as error:
            Settings(**values).validate()  # type: ignore[arg-type]
        return str(error.value)

    assert refused(cookie_name="__Host-my session").startswith("AUTHDEMO_COOKIE_NAME: ")
    assert refused(mail_from="not an address").startswith("AUTHDEMO_MAIL_FROM: ")
    assert refused(smtp_url="ftp://mail.example.com").startswith("AUTHDEMO_SMTP_URL")
    Settings(mail_from="App <app@example.com>").validate()
    target = Settings(smtp_url="smtp://mail.example.com:2525").smtp_target()
    assert target is not None and target.port == 2525


def test_a_pool_of_one_connection_is_allowed() -> None:
    from authdemo.config import db_pool

    assert db_pool("1") == 1
    with pytest.raises(ConfigError, match="at least 1"):
        db_pool("0")


def test_host_patterns_refuse_paths_and_half_brackets_and_bound_names_at_253() -> None:
    from authdemo.config import host_pattern

    with pytest.raises(ConfigError) as path:
        host_pattern("H", "app.example.com/x")
    assert str(path.value) == (
        "H: 'app.example.com/x' is a URL or a path; list host names "
        "(examples: app.example.com, .example.com, 192.0.2.10, [2001:db8::1])"
    )
    with pytest.raises(ConfigError, match="not an address"):
        host_pattern("H", "[2001:db8::1")
    assert host_pattern("H", "App.Example.com.") == "app.example.com"
    assert host_pattern("H", ".example.com.") == ".example.com"
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert host_pattern("H", longest) == longest
    for too_long in (longest + "b", longest + ".c"):
        with pytest.raises(ConfigError, match="is not a host name"):
            host_pattern("H", too_long)
    with pytest.raises(ConfigError) as idna:
        host_pattern("H", "ü" * 70 + ".example")  # a label IDNA cannot encode
    assert str(idna.value).startswith(f"H: {'ü' * 70 + '.example'!r} is not a host name")


def test_csp_refusals_are_told_in_full() -> None:
    from authdemo.config import csp_extra

    def refused(raw: str) -> str:
        with pytest.raises(ConfigError) as error:
            csp_extra("X", raw)
        return str(error.value)

    assert refused("object-src https://a.example https://b.example") == (
        "X: object-src cannot be extended (authdemo keeps it at 'none'); "
        "refused: https://a.example https://b.example"
    )
    assert refused("base-uri") == "X: base-uri cannot be extended (authdemo keeps it at 'none')"
    assert refused("sandbox allow-forms") == (
        "X: unknown directive 'sandbox' (extendable: default-src, script-src, style-src, "
        "img-src, connect-src, font-src, media-src, frame-src, worker-src, manifest-src, "
        "form-action)"
    )
    assert refused("script-src 'unsafe-eval'") == (
        "X: 'unsafe-eval' in script-src would let scripts turn strings into code; authdemo's "
        "page needs none of that (serve scripts from a host you list instead)"
    )
    assert refused("img-src 'none'") == (
        "X: 'none' is not allowed in img-src (quoted keywords: 'self', 'sha256-…' hashes, "
        "and 'unsafe-inline' in style-src only)"
    )
    assert refused("img-src a,b") == (
        "X: 'a,b' in img-src is not a CSP source (examples: https://cdn.example.com, "
        "*.example.com, https:, data:)"
    )
    assert refused("script-src https://*") == (
        "X: https://* in script-src allows any host; name the hosts instead "
        "(https://cdn.example.com, https://*.example.com)"
    )


def test_an_empty_part_between_csp_directives_is_skipped_not_the_end() -> None:
    from authdemo.config import csp_extra

    assert csp_extra("X", "img-src https://a.example;; font-src https://b.example") == {
        "img-src": ("https://a.example",),
        "font-src": ("https://b.example",),
    }


def test_the_database_urls_source_is_read_from_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTHDEMO_DATABASE_URL", raising=False)
    assert Settings().database_url_source() == "the default: AUTHDEMO_DATABASE_URL is not set"


def test_from_env_reads_the_process_environment_by_default_and_passes_every_value_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHDEMO_SIGNUP", "open")
    monkeypatch.setenv("AUTHDEMO_SMTP_URL", "smtp://mail.example.com:2525")
    settings = Settings.from_env()
    assert settings.signup is True
    assert settings.smtp_url == "smtp://mail.example.com:2525"
    with pytest.raises(ConfigError, match=r"^AUTHDEMO_ALLOWED_HOSTS: 'https://app\.example'"):
        Settings.from_env({"AUTHDEMO_ALLOWED_HOSTS": "https://app.example"})


def test_trusted_networks_may_be_written_with_host_bits() -> None:
    from authdemo.config import ipaddress_networks

    assert [str(n) for n in ipaddress_networks("10.1.2.3/8, 2001:db8::1/64")] == [
        "10.0.0.0/8",
        "2001:db8::/64",
    ]


def test_an_allowed_origin_loses_its_trailing_slash_and_case_only() -> None:
    settings = Settings.from_env({"AUTHDEMO_ALLOWED_ORIGINS": "https://APP.EXAMPLE.BOX/"})
    assert list(settings.allowed_origins) == ["https://app.example.box"]


def test_from_env_errors_name_their_variable_and_mail_from_is_passed_on() -> None:
    with pytest.raises(ConfigError, match=r"^AUTHDEMO_COOKIE_NAME: '__Host-my session'"):
        Settings.from_env({"AUTHDEMO_COOKIE_NAME": "my session"})
    with pytest.raises(ConfigError) as signup:
        Settings.from_env({"AUTHDEMO_SIGNUP": "maybe"})
    assert str(signup.value) == "AUTHDEMO_SIGNUP='maybe': use open or closed"
    mail_from = "App <app@example.com>"
    assert Settings.from_env({"AUTHDEMO_MAIL_FROM": mail_from}).mail_from == mail_from


def test_a_wrong_type_without_an_example_is_told_without_one() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(ui="vue")  # type: ignore[arg-type]
    assert str(refused.value) == "Settings(ui='vue'): ui must be one of 'idom', 'reactpy', not str"
