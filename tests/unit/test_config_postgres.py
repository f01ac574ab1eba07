"""Settings for PostgreSQL at many hosts: the listener's URL, the pool, the quiet poll."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authdemo.config import DEFAULT_POOL, ConfigError, Settings

PG = "postgresql://u@pgbouncer:6432/db"


def test_the_listener_connects_where_the_queries_go_unless_told_otherwise() -> None:
    settings = Settings.from_env({"AUTHDEMO_DATABASE_URL": PG})
    assert settings.listener_url == "postgresql+asyncpg://u@pgbouncer:6432/db"
    assert not settings.behind_pooler
    assert settings.db_pool == DEFAULT_POOL


def test_a_listen_url_of_its_own_means_the_queries_go_through_a_pooler() -> None:
    env = {"AUTHDEMO_DATABASE_URL": PG, "AUTHDEMO_LISTEN_URL": "postgresql://u@pg:5432/db"}
    settings = Settings.from_env(env)
    assert settings.listener_url == "postgresql+asyncpg://u@pg:5432/db"
    assert settings.behind_pooler


def test_a_listen_url_equal_to_the_database_url_is_no_pooler() -> None:
    env = {"AUTHDEMO_DATABASE_URL": PG, "AUTHDEMO_LISTEN_URL": PG}
    assert not Settings.from_env(env).behind_pooler


def test_the_listen_url_must_be_postgresql() -> None:
    with pytest.raises(ConfigError, match="AUTHDEMO_LISTEN_URL"):
        Settings.from_env({"AUTHDEMO_LISTEN_URL": "sqlite:///x.db"})


@pytest.mark.parametrize(("raw", "expected"), [("null", None), ("NULL", None), ("8", 8)])
def test_the_pool_is_null_or_a_size(raw: str, expected: int | None) -> None:
    assert Settings.from_env({"AUTHDEMO_DB_POOL": raw}).db_pool == expected


@pytest.mark.parametrize("raw", ["0", "-2", "none", "5+10"])
def test_a_pool_that_is_neither_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ConfigError, match="AUTHDEMO_DB_POOL"):
        Settings.from_env({"AUTHDEMO_DB_POOL": raw})


def test_the_quiet_poll_defaults_to_five_seconds_and_is_never_the_faster_one() -> None:
    assert Settings.from_env({}).broadcast_poll_listening == timedelta(seconds=5)
    env = {"AUTHDEMO_BROADCAST_POLL": "200ms", "AUTHDEMO_BROADCAST_POLL_LISTENING": "100ms"}
    with pytest.raises(ConfigError, match="AUTHDEMO_BROADCAST_POLL_LISTENING"):
        Settings.from_env(env)
