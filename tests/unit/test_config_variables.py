"""Every ``AUTHDEMO_*`` variable reaches its setting, unset ones keep the documented
defaults, and a value that cannot be used is refused with a sentence naming the
variable (the operator's only clue)."""

from __future__ import annotations

import base64
import ipaddress
from datetime import timedelta

import pytest

from authdemo.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_POOL,
    Argon2Params,
    ConfigError,
    Settings,
    db_pool,
    ipaddress_networks,
    parse_duration,
)

MFA_KEY = bytes(range(32))
MFA_KEY_TEXT = base64.urlsafe_b64encode(MFA_KEY).decode().rstrip("=")


def test_unset_variables_give_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///authdemo.db"
    assert settings.argon2 == Argon2Params(19456, 2, 1)
    assert (settings.login_workers, settings.ws_per_address, settings.ws_events_per_second) == (
        0,
        50,
        20,
    )
    assert settings.session_data_max_bytes == 64 * 1024
    assert settings.session_cache_ttl == timedelta(seconds=10)
    assert (settings.throttle_account_failures, settings.throttle_address_failures) == (5, 20)
    assert settings.db_pool == DEFAULT_POOL and settings.listen_url is None
    assert settings.secret_key is None and settings.mfa_keys == ()
    assert settings.ui == "idom" and settings.stylesheet is True


def test_empty_variables_count_as_unset() -> None:
    every = [
        "AUTHDEMO_DATABASE_URL",
        "AUTHDEMO_LISTEN_URL",
        "AUTHDEMO_DB_POOL",
        "AUTHDEMO_SECRET_KEY",
        "AUTHDEMO_ARGON2_MEMORY_KIB",
        "AUTHDEMO_SESSION_DATA_MAX",
        "AUTHDEMO_SESSION_CACHE_TTL",
        "AUTHDEMO_ALLOWED_HOSTS",
        "AUTHDEMO_MFA_KEY",
        "AUTHDEMO_UI",
        "AUTHDEMO_COOKIE_NAME",
        "AUTHDEMO_STYLESHEET",
        "AUTHDEMO_PAGE_TITLE",
        "AUTHDEMO_IDLE_TIMEOUT",
    ]
    assert Settings.from_env(dict.fromkeys(every, "")) == Settings()


def test_every_variable_reaches_its_setting() -> None:
    env = {
        "AUTHDEMO_DATABASE_URL": "postgres://u@db/app",
        "AUTHDEMO_LISTEN_URL": "postgresql://u@direct/app",
        "AUTHDEMO_DB_POOL": "7",
        "AUTHDEMO_IDLE_TIMEOUT": "20m",
        "AUTHDEMO_ABSOLUTE_TIMEOUT": "8h",
        "AUTHDEMO_TICKET_TTL": "20s",
        "AUTHDEMO_ALLOWED_ORIGINS": "https://App.Example/",
        "AUTHDEMO_ALLOWED_HOSTS": "app.example",
        "AUTHDEMO_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
        "AUTHDEMO_SECRET_KEY": "s" * 32,
        "AUTHDEMO_ARGON2_MEMORY_KIB": "65536",
        "AUTHDEMO_ARGON2_TIME_COST": "3",
        "AUTHDEMO_ARGON2_PARALLELISM": "4",
        "AUTHDEMO_LOGIN_WORKERS": "6",
        "AUTHDEMO_DB_TIMEOUT": "3s",
        "AUTHDEMO_BROADCAST_POLL": "100ms",
        "AUTHDEMO_BROADCAST_POLL_LISTENING": "2s",
        "AUTHDEMO_WS_PING_INTERVAL": "15s",
        "AUTHDEMO_WS_PING_TIMEOUT": "25s",
        "AUTHDEMO_WS_EVENTS_PER_SECOND": "30",
        "AUTHDEMO_WS_PER_ADDRESS": "40",
        "AUTHDEMO_SESSION_DATA_MAX": "32KiB",
        "AUTHDEMO_SESSION_CACHE_TTL": "30s",
        "AUTHDEMO_THROTTLE_ACCOUNT_FAILURES": "4",
        "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": "30",
        "AUTHDEMO_THROTTLE_MAX_BLOCK": "10m",
        "AUTHDEMO_AUDIT_RETENTION": "30d",
        "AUTHDEMO_CSP_EXTRA": "img-src https://cdn.example",
        "AUTHDEMO_PAGE_TITLE": "Shop",
        "AUTHDEMO_STYLESHEET": "off",
        "AUTHDEMO_COOKIE_NAME": "shop_session",
        "AUTHDEMO_UI": " ReactPy ",
        "AUTHDEMO_MFA_KEY": MFA_KEY_TEXT,
    }
    assert Settings.from_env(env) == Settings(
        database_url="postgresql+asyncpg://u@db/app",
        listen_url="postgresql+asyncpg://u@direct/app",
        db_pool=7,
        idle_timeout=timedelta(minutes=20),
        absolute_timeout=timedelta(hours=8),
        ticket_ttl=timedelta(seconds=20),
        allowed_origins=("https://app.example",),
        allowed_hosts=("app.example",),
        trusted_proxies="10.0.0.0/8, 192.0.2.1",
        secret_key=b"s" * 32,
        argon2=Argon2Params(65536, 3, 4),
        login_workers=6,
        db_timeout=timedelta(seconds=3),
        broadcast_poll=timedelta(milliseconds=100),
        broadcast_poll_listening=timedelta(seconds=2),
        ws_ping_interval=timedelta(seconds=15),
        ws_ping_timeout=timedelta(seconds=25),
        ws_per_address=40,
        ws_events_per_second=30,
        session_cache_ttl=timedelta(seconds=30),
        session_data_max_bytes=32 * 1024,
        throttle_account_failures=4,
        throttle_address_failures=30,
        throttle_max_block=timedelta(minutes=10),
        audit_retention=timedelta(days=30),
        csp_extra="img-src https://cdn.example",
        page_title="Shop",
        stylesheet=False,
        cookie_name="__Host-shop_session",
        ui="reactpy",
        mfa_keys=(MFA_KEY,),
    )


def test_a_session_cache_ttl_of_zero_turns_the_cache_off() -> None:
    for raw in ("0", " 0 "):
        assert Settings.from_env({"AUTHDEMO_SESSION_CACHE_TTL": raw}).session_cache_ttl == (
            timedelta(0)
        )
    with pytest.raises(ConfigError, match="AUTHDEMO_SESSION_CACHE_TTL"):
        Settings.from_env({"AUTHDEMO_SESSION_CACHE_TTL": "0s"})  # a duration must be > 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("65536b", 65536),
        ("2K", 2048),
        ("2kb", 2048),
        ("2 KiB", 2048),
        ("1m", 1024 * 1024),
        ("1MB", 1024 * 1024),
        (" 512 ", 512),
    ],
)
def test_sizes_take_bytes_and_binary_units_in_any_case(raw: str, expected: int) -> None:
    assert Settings.from_env({"AUTHDEMO_SESSION_DATA_MAX": raw}).session_data_max_bytes == expected


@pytest.mark.parametrize("raw", ["0", "0KiB", "1GiB", "lots", "-1"])
def test_a_size_that_is_none_is_refused_with_examples(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"AUTHDEMO_SESSION_DATA_MAX": raw})
    assert str(refused.value) == (
        f"AUTHDEMO_SESSION_DATA_MAX={raw!r} is not a size (examples: 65536, 64KiB, 1MiB)"
    )


@pytest.mark.parametrize(
    ("variable", "raw", "sentence"),
    [
        ("AUTHDEMO_WS_PER_ADDRESS", "many", "AUTHDEMO_WS_PER_ADDRESS='many' is not an integer"),
        ("AUTHDEMO_WS_PER_ADDRESS", "0", "AUTHDEMO_WS_PER_ADDRESS must be at least 1"),
        ("AUTHDEMO_LOGIN_WORKERS", "-1", "AUTHDEMO_LOGIN_WORKERS must be at least 0"),
        (
            "AUTHDEMO_ARGON2_MEMORY_KIB",
            "19455",
            "AUTHDEMO_ARGON2_MEMORY_KIB must be at least 19456",
        ),
        ("AUTHDEMO_ARGON2_TIME_COST", "1", "AUTHDEMO_ARGON2_TIME_COST must be at least 2"),
        ("AUTHDEMO_ARGON2_PARALLELISM", "0", "AUTHDEMO_ARGON2_PARALLELISM must be at least 1"),
        (
            "AUTHDEMO_WS_EVENTS_PER_SECOND",
            "0",
            "AUTHDEMO_WS_EVENTS_PER_SECOND must be at least 1",
        ),
        (
            "AUTHDEMO_THROTTLE_ACCOUNT_FAILURES",
            "0",
            "AUTHDEMO_THROTTLE_ACCOUNT_FAILURES must be at least 1",
        ),
        (
            "AUTHDEMO_THROTTLE_ADDRESS_FAILURES",
            "0",
            "AUTHDEMO_THROTTLE_ADDRESS_FAILURES must be at least 1",
        ),
        (
            "AUTHDEMO_SECRET_KEY",
            "s" * 31,
            "AUTHDEMO_SECRET_KEY must be at least 32 characters long",
        ),
        (
            "AUTHDEMO_ALLOWED_ORIGINS",
            "app.example",
            "AUTHDEMO_ALLOWED_ORIGINS: 'app.example' is not an origin like "
            "https://example.com:8443",
        ),
        ("AUTHDEMO_UI", "vue", "AUTHDEMO_UI='vue': use one of idom, reactpy"),
        (
            "AUTHDEMO_STYLESHEET",
            "maybe",
            "AUTHDEMO_STYLESHEET='maybe' is not a boolean (use 1 or 0)",
        ),
        (
            "AUTHDEMO_DB_POOL",
            "lots",
            "AUTHDEMO_DB_POOL='lots' is neither null nor a number of connections",
        ),
        ("AUTHDEMO_DB_POOL", "0", "AUTHDEMO_DB_POOL must be null or at least 1"),
        (
            "AUTHDEMO_LISTEN_URL",
            "sqlite:///x.db",
            "AUTHDEMO_LISTEN_URL must be a postgresql:// URL",
        ),
        (
            "AUTHDEMO_IDLE_TIMEOUT",
            "soon",
            "AUTHDEMO_IDLE_TIMEOUT='soon' is not a duration (examples: 1800, 30m, 12h)",
        ),
        ("AUTHDEMO_IDLE_TIMEOUT", "0m", "AUTHDEMO_IDLE_TIMEOUT must be greater than zero"),
        (
            "AUTHDEMO_IDLE_TIMEOUT",
            "13h",
            "AUTHDEMO_IDLE_TIMEOUT must not be longer than AUTHDEMO_ABSOLUTE_TIMEOUT",
        ),
        ("AUTHDEMO_TICKET_TTL", "31s", "AUTHDEMO_TICKET_TTL must be 30 seconds or less"),
        ("AUTHDEMO_BROADCAST_POLL", "251ms", "AUTHDEMO_BROADCAST_POLL must be 250ms or less"),
        (
            "AUTHDEMO_BROADCAST_POLL_LISTENING",
            "249ms",
            "AUTHDEMO_BROADCAST_POLL_LISTENING must not be shorter than AUTHDEMO_BROADCAST_POLL",
        ),
        (
            "AUTHDEMO_AUDIT_RETENTION",
            "23h",
            "AUTHDEMO_AUDIT_RETENTION must be at least 1d (a bare number means seconds)",
        ),
        (
            "AUTHDEMO_ALLOWED_HOSTS",
            ",",
            "AUTHDEMO_ALLOWED_HOSTS lists no host (leave it unset for any)",
        ),
        (
            "AUTHDEMO_PAGE_TITLE",
            " ",
            "AUTHDEMO_PAGE_TITLE: the page title must be 1 to 200 characters without control "
            "characters",
        ),
    ],
)
def test_an_unusable_value_is_refused_in_a_sentence_naming_its_variable(
    variable: str, raw: str, sentence: str
) -> None:
    env = {variable: raw}
    if variable == "AUTHDEMO_BROADCAST_POLL_LISTENING":
        env["AUTHDEMO_BROADCAST_POLL"] = "250ms"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == sentence


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("AUTHDEMO_TICKET_TTL", "30s"),
        ("AUTHDEMO_BROADCAST_POLL", "250ms"),
        ("AUTHDEMO_AUDIT_RETENTION", "1d"),
        ("AUTHDEMO_IDLE_TIMEOUT", "12h"),
        ("AUTHDEMO_ARGON2_MEMORY_KIB", "19456"),
        ("AUTHDEMO_LOGIN_WORKERS", "0"),
        ("AUTHDEMO_SECRET_KEY", "s" * 32),
        ("AUTHDEMO_PAGE_TITLE", "t" * 200),
    ],
)
def test_a_value_exactly_at_its_limit_is_accepted(variable: str, raw: str) -> None:
    Settings.from_env({variable: raw})


def test_a_poll_while_listening_equal_to_the_poll_is_accepted() -> None:
    env = {"AUTHDEMO_BROADCAST_POLL": "200ms", "AUTHDEMO_BROADCAST_POLL_LISTENING": "200ms"}
    assert Settings.from_env(env).broadcast_poll_listening == timedelta(milliseconds=200)


def test_trusted_proxies_that_are_not_networks_are_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"AUTHDEMO_TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"})
    assert str(refused.value).startswith("AUTHDEMO_TRUSTED_PROXIES: ")
    assert "proxy.example" in str(refused.value)
    assert ipaddress_networks(" 10.0.0.1 ,, 2001:db8::/32 ") == [
        ipaddress.ip_network("10.0.0.1"),
        ipaddress.ip_network("2001:db8::/32"),
    ]


def test_a_weak_two_factor_key_is_refused_in_the_key_parsers_words() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"AUTHDEMO_MFA_KEY": "short"})
    assert "AUTHDEMO_MFA_KEY" in str(refused.value)
    assert "Traceback" not in str(refused.value)


@pytest.mark.parametrize(("raw", "seconds"), [(" 90 ", 90), ("90 s", 90), ("2 d", 172800)])
def test_durations_allow_spaces_around_and_between(raw: str, seconds: int) -> None:
    assert parse_duration("X", raw) == timedelta(seconds=seconds)


def test_the_pool_unset_is_sqlalchemys_default() -> None:
    assert db_pool(None) == DEFAULT_POOL == -1
    assert db_pool(" Null ") is None


@pytest.mark.parametrize(
    ("env", "source"),
    [
        (
            {"AUTHDEMO_DATABASE_URL": "sqlite:///x.db"},
            "from AUTHDEMO_DATABASE_URL",
        ),
        ({}, "the default: AUTHDEMO_DATABASE_URL is not set"),
        ({"AUTHDEMO_DATABASE_URL": ""}, "the default: AUTHDEMO_DATABASE_URL is not set"),
    ],
)
def test_a_message_about_the_database_says_where_its_url_came_from(
    env: dict[str, str], source: str
) -> None:
    assert Settings.from_env(env).database_url_source(env) == source


def test_a_database_url_given_in_code_is_said_to_come_from_the_code() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///other.db")
    assert settings.database_url_source({}) == "as given to Settings(database_url=...)"
    env = {"AUTHDEMO_DATABASE_URL": "sqlite:///x.db"}
    assert settings.database_url_source(env) == "as given to Settings(database_url=...)"


def test_migrations_run_past_the_pooler_on_the_direct_url() -> None:
    direct = "postgresql+asyncpg://u@direct/app"
    pooled = Settings(database_url="postgresql+asyncpg://u@pool/app", listen_url=direct)
    assert pooled.migration_url == direct
    plain = Settings(database_url="postgresql+asyncpg://u@db/app")
    assert plain.migration_url == "postgresql+asyncpg://u@db/app"
    same = Settings(database_url=direct, listen_url=direct)
    assert same.migration_url == direct and not same.behind_pooler
