"""The operator commands: passwords, enabling/disabling, sessions, purging, the audit trail."""

from __future__ import annotations

import asyncio
import sqlite3
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import AuditEvent, AuditKind, ClientInfo, InvalidCredentials
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.cli.test_cli import can_log_in, invoke
from tests.conftest import cheap_hasher
from tests.support.db import sqlite_url
from tests.support.fakes import FakeClock

T = TypeVar("T")

PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple"
CLIENT = ClientInfo("10.0.0.1", "pytest")


# --- helpers ------------------------------------------------------------------------------


def with_service(
    db_url: str,
    action: Callable[[AuthService], Awaitable[T]],
    clock: FakeClock | None = None,
) -> T:
    async def main() -> T:
        async with runtime(
            Settings(database_url=db_url), clock=clock, hasher_factory=cheap_hasher
        ) as rt:
            return await action(rt.service)

    return asyncio.run(main())


def add_user(db_url: str, username: str, password: str = PASSWORD) -> None:
    async def create(service: AuthService) -> None:
        await service.create_user(username, password)

    with_service(db_url, create)


def sign_in(
    db_url: str,
    username: str,
    password: str = PASSWORD,
    clock: FakeClock | None = None,
    client: ClientInfo = CLIENT,
) -> str:
    """Sign in through the service as a browser would; the signed-in cookie token."""

    async def login(service: AuthService) -> str:
        anon = service.new_token()
        result = await service.login(hash_token(anon), username, password, client)
        return (await service.redeem_ticket(result.ticket, anon)).token

    return with_service(db_url, login, clock)


def fail_login(db_url: str, username: str, clock: FakeClock | None = None) -> None:
    async def attempt(service: AuthService) -> None:
        with pytest.raises(InvalidCredentials):
            await service.login(
                hash_token(service.new_token()), username, "not the password", CLIENT
            )

    with_service(db_url, attempt, clock)


def is_revoked(db_url: str, token: str) -> bool:
    async def resolve(service: AuthService) -> bool:
        return (await service.resolve(token)).needs_new_token

    return with_service(db_url, resolve)


def short_id(token: str) -> str:
    return hash_token(token)[:8]


def row_counts(db_url: str) -> dict[str, int]:
    path = db_url.split("///", 1)[1]
    tables = ("sessions", "auth_tickets", "login_throttle", "session_broadcasts")
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT count(*) FROM authdemo_{t}").fetchone()[0] for t in tables}


def data_rows(output: str) -> list[str]:
    """The rows of a printed table, without its header and rule."""
    lines = output.splitlines()
    assert set(lines[1]) <= {"-", " "}, output
    return lines[2:]


def past_clock() -> FakeClock:
    """Two days ago: every session, ticket and throttle row made then is dead today."""
    return FakeClock(datetime.now(UTC) - timedelta(days=2))


@pytest.fixture
def unmigrated_url(tmp_path: Path) -> str:
    path = tmp_path / "empty.db"
    path.touch()
    return sqlite_url(path)


# --- errors shared by every operator command -----------------------------------------------

USER_COMMANDS = [
    pytest.param(("set-password", "ghost", "--password-stdin"), id="set-password"),
    pytest.param(("disable-user", "ghost"), id="disable-user"),
    pytest.param(("enable-user", "ghost"), id="enable-user"),
    pytest.param(("sessions", "ghost"), id="sessions"),
    pytest.param(("revoke-sessions", "ghost"), id="revoke-sessions"),
    pytest.param(("events", "--user", "ghost"), id="events"),
]

ALL_COMMANDS = [
    *USER_COMMANDS,
    pytest.param(("list-users",), id="list-users"),
    pytest.param(("sessions",), id="sessions-all"),
    pytest.param(("purge-expired",), id="purge-expired"),
    pytest.param(("events",), id="events-all"),
]


@pytest.mark.parametrize("args", USER_COMMANDS)
def test_an_unknown_user_is_refused_with_a_clear_message(db_url: str, args: tuple[str]) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, *args, input=NEW_PASSWORD + "\n")
    assert result.exit_code == 1, result.output
    assert "There is no user named 'ghost'." in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", ALL_COMMANDS)
def test_an_unmigrated_database_exits_3_naming_the_fix(
    unmigrated_url: str, args: tuple[str]
) -> None:
    result = invoke(unmigrated_url, *args, input=NEW_PASSWORD + "\n")
    assert result.exit_code == 3, result.output
    assert "run `authdemo migrate`" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", ALL_COMMANDS)
def test_a_missing_database_exits_3_and_is_not_created(tmp_path: Path, args: tuple[str]) -> None:
    path = tmp_path / "missing.db"
    result = invoke(sqlite_url(path), *args, input=NEW_PASSWORD + "\n")
    assert result.exit_code == 3, result.output
    assert "does not exist" in result.output
    assert not path.exists()


# --- set-password --------------------------------------------------------------------------


def test_set_password_from_stdin_replaces_the_old_password(db_url: str) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "set-password", "alice", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert not can_log_in(db_url, "alice", PASSWORD)
    assert can_log_in(db_url, "alice", NEW_PASSWORD)


def test_set_password_ends_every_session_of_the_user_and_says_how_many(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    tokens = [sign_in(db_url, "alice"), sign_in(db_url, "alice")]
    bobs = sign_in(db_url, "bob")
    result = invoke(db_url, "set-password", "alice", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Password of 'alice' changed; 2 sessions ended." in result.output
    assert all(is_revoked(db_url, token) for token in tokens)
    assert not is_revoked(db_url, bobs)


def test_set_password_with_no_sessions_reports_zero_ended(db_url: str) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "set-password", "alice", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "0 sessions ended." in result.output


def test_set_password_prompts_twice_without_echo(db_url: str) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "set-password", "alice", input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat password" in result.output
    assert NEW_PASSWORD not in result.output
    assert can_log_in(db_url, "alice", NEW_PASSWORD)


def test_set_password_refuses_a_short_password_and_keeps_the_old_one(db_url: str) -> None:
    add_user(db_url, "alice")
    token = sign_in(db_url, "alice")
    result = invoke(db_url, "set-password", "alice", "--password-stdin", input="short\n")
    assert result.exit_code == 1
    assert "at least 8" in result.output
    assert "Traceback" not in result.output
    assert can_log_in(db_url, "alice", PASSWORD)
    assert not is_revoked(db_url, token)


def test_set_password_refuses_a_short_prompted_password_before_the_confirmation(
    db_url: str,
) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "set-password", "alice", input="short\nshort\n")
    assert result.exit_code == 1
    assert "at least 8" in result.output
    assert "Repeat password" not in result.output
    assert can_log_in(db_url, "alice", PASSWORD)


def test_set_password_refuses_a_mismatched_confirmation_and_changes_nothing(
    db_url: str,
) -> None:
    add_user(db_url, "alice")
    token = sign_in(db_url, "alice")
    result = invoke(db_url, "set-password", "alice", input=f"{NEW_PASSWORD}\nbattery stapler\n")
    assert result.exit_code == 1
    assert "do not match" in result.output
    assert "Traceback" not in result.output
    assert can_log_in(db_url, "alice", PASSWORD)
    assert not can_log_in(db_url, "alice", NEW_PASSWORD)
    assert not is_revoked(db_url, token)


def test_set_password_finds_the_user_case_insensitively(db_url: str) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "set-password", "ALICE", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert can_log_in(db_url, "alice", NEW_PASSWORD)


# --- disable-user / enable-user ------------------------------------------------------------


def test_disable_user_refuses_further_sign_ins(db_url: str) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "disable-user", "alice")
    assert result.exit_code == 0, result.output
    assert not can_log_in(db_url, "alice", PASSWORD)


def test_disable_user_ends_the_users_sessions_and_says_how_many(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    token = sign_in(db_url, "alice")
    bobs = sign_in(db_url, "bob")
    result = invoke(db_url, "disable-user", "alice")
    assert result.exit_code == 0, result.output
    assert "Disabled 'alice'; 1 session ended." in result.output
    assert is_revoked(db_url, token)
    assert not is_revoked(db_url, bobs)


def test_enable_user_lets_a_disabled_user_sign_in_again(db_url: str) -> None:
    add_user(db_url, "alice")
    invoke(db_url, "disable-user", "alice")
    assert not can_log_in(db_url, "alice", PASSWORD)
    result = invoke(db_url, "enable-user", "alice")
    assert result.exit_code == 0, result.output
    assert "Enabled 'alice'." in result.output
    assert can_log_in(db_url, "alice", PASSWORD)


def test_enable_user_does_not_bring_back_sessions_ended_by_disabling(db_url: str) -> None:
    add_user(db_url, "alice")
    token = sign_in(db_url, "alice")
    invoke(db_url, "disable-user", "alice")
    invoke(db_url, "enable-user", "alice")
    assert is_revoked(db_url, token)


# --- list-users ----------------------------------------------------------------------------


def test_list_users_with_no_users_hints_at_create_user(db_url: str) -> None:
    result = invoke(db_url, "list-users")
    assert result.exit_code == 0, result.output
    assert "No users yet" in result.output
    assert "authdemo create-user USERNAME" in result.output


def test_list_users_prints_an_aligned_table_under_a_header(db_url: str) -> None:
    add_user(db_url, "al")
    add_user(db_url, "bartholomew")
    result = invoke(db_url, "list-users")
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    assert header.split()[:3] == ["USER", "STATUS", "SESSIONS"]
    assert "CREATED (UTC)" in header and "PASSWORD SET (UTC)" in header
    rows = data_rows(result.output)
    assert [row.split()[0] for row in rows] == ["al", "bartholomew"]
    for row in rows:
        assert row.index("active") == header.index("STATUS")
        assert row[header.index("SESSIONS")] == "0"


def test_list_users_shows_disabled_users_as_disabled(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    invoke(db_url, "disable-user", "bob")
    rows = data_rows(invoke(db_url, "list-users").output)
    statuses = {row.split()[0]: row.split()[1] for row in rows}
    assert statuses == {"alice": "active", "bob": "disabled"}


def test_list_users_counts_only_live_sessions(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    add_user(db_url, "carol")
    sign_in(db_url, "alice")
    sign_in(db_url, "alice")
    sign_in(db_url, "bob")
    invoke(db_url, "revoke-sessions", "bob")
    sign_in(db_url, "carol", clock=past_clock())  # long expired
    rows = data_rows(invoke(db_url, "list-users").output)
    counts = {row.split()[0]: row.split()[2] for row in rows}
    assert counts == {"alice": "2", "bob": "0", "carol": "0"}


# --- sessions ------------------------------------------------------------------------------


def test_sessions_with_none_live_says_so(db_url: str) -> None:
    add_user(db_url, "alice")
    result = invoke(db_url, "sessions")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "No live sessions."


def test_sessions_lists_every_live_session_by_short_id(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    alices = sign_in(db_url, "alice")
    bobs = sign_in(db_url, "bob")
    result = invoke(db_url, "sessions")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[:3] == ["SESSION", "USER", "CLIENT"]
    rows = data_rows(result.output)
    listed = {row.split()[0]: row.split()[1:3] for row in rows}
    assert listed == {
        short_id(alices): ["alice", "10.0.0.1"],
        short_id(bobs): ["bob", "10.0.0.1"],
    }


def test_sessions_of_one_user_leaves_out_the_others(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    alices = [sign_in(db_url, "alice"), sign_in(db_url, "alice")]
    bobs = sign_in(db_url, "bob")
    result = invoke(db_url, "sessions", "alice")
    assert result.exit_code == 0, result.output
    shown = sorted(row.split()[0] for row in data_rows(result.output))
    assert shown == sorted(short_id(t) for t in alices)
    assert short_id(bobs) not in result.output


def test_sessions_leaves_out_revoked_and_expired_sessions(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice", clock=past_clock())
    revoked = sign_in(db_url, "alice")
    with_service(db_url, lambda s: s.revoke_user_sessions("alice"))
    assert is_revoked(db_url, revoked)
    assert invoke(db_url, "sessions", "alice").output.strip() == "No live sessions."


def test_sessions_shortens_a_long_user_agent(db_url: str) -> None:
    add_user(db_url, "alice")
    agent = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"
    sign_in(db_url, "alice", client=ClientInfo("10.0.0.1", agent))
    result = invoke(db_url, "sessions")
    assert agent[:40] + "…" in result.output
    assert agent not in result.output


# --- revoke-sessions -----------------------------------------------------------------------


def test_revoke_sessions_ends_every_session_of_the_user_and_says_how_many(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    tokens = [sign_in(db_url, "alice"), sign_in(db_url, "alice")]
    bobs = sign_in(db_url, "bob")
    result = invoke(db_url, "revoke-sessions", "alice")
    assert result.exit_code == 0, result.output
    assert "Revoked 2 sessions of 'alice'." in result.output
    assert all(is_revoked(db_url, token) for token in tokens)
    assert not is_revoked(db_url, bobs)
    assert can_log_in(db_url, "alice", PASSWORD)  # revoking is not disabling


def test_revoke_sessions_of_a_single_session_says_session(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice")
    result = invoke(db_url, "revoke-sessions", "alice")
    assert "Revoked 1 session of 'alice'." in result.output


def test_revoke_sessions_twice_revokes_nothing_the_second_time(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice")
    invoke(db_url, "revoke-sessions", "alice")
    result = invoke(db_url, "revoke-sessions", "alice")
    assert result.exit_code == 0, result.output
    assert "Revoked 0 sessions of 'alice'." in result.output


# --- purge-expired -------------------------------------------------------------------------


def test_purge_expired_deletes_dead_rows_and_reports_the_counts(db_url: str) -> None:
    add_user(db_url, "alice")
    # Now: a session (plus the revoked row of its pre-login cookie), its ticket and the
    # three broadcasts of its sign-in (session opened, new cookie attached, old one
    # retired), all still needed.
    # (First: a success clears throttle rows.)
    live = sign_in(db_url, "alice")
    # Two days ago: the same, all dead, and a failed sign-in's account and address rows.
    sign_in(db_url, "alice", clock=past_clock())
    fail_login(db_url, "alice", clock=past_clock())
    before = row_counts(db_url)
    result = invoke(db_url, "purge-expired")
    assert result.exit_code == 0, result.output
    assert "Purged 2 sessions, 1 ticket, 2 throttle rows, 3 delivered broadcasts." in result.output
    after = row_counts(db_url)
    assert {t: before[t] - after[t] for t in before} == {
        "sessions": 2,
        "auth_tickets": 1,
        "login_throttle": 2,
        "session_broadcasts": 3,
    }
    assert after["login_throttle"] == 0
    assert not is_revoked(db_url, live)


def test_purge_expired_deletes_audit_rows_past_their_retention_and_says_so(db_url: str) -> None:
    add_user(db_url, "alice")  # user_created, today
    long_ago = FakeClock(datetime.now(UTC) - timedelta(days=91))
    for _ in range(2):
        fail_login(db_url, "alice", clock=long_ago)
    fail_login(db_url, "alice")
    result = invoke(db_url, "purge-expired")
    assert result.exit_code == 0, result.output
    assert "Audit trail: 2 events older than 90 days purged." in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert event_kinds(invoke(db_url, "events").output) == ["login_failed", "user_created"]
    week = invoke(db_url, "purge-expired", AUTHDEMO_AUDIT_RETENTION="7d")
    assert "Audit trail: 0 events older than 7 days purged." in week.output


def test_purge_expired_a_second_time_purges_nothing(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice", clock=past_clock())
    fail_login(db_url, "alice", clock=past_clock())
    first = invoke(db_url, "purge-expired")
    assert "Purged 0" not in first.output
    second = invoke(db_url, "purge-expired")
    assert second.exit_code == 0, second.output
    assert "Purged 0 sessions, 0 tickets, 0 throttle rows, 0 delivered broadcasts." in second.output


def test_purge_expired_in_batches_of_one_still_deletes_everything(db_url: str) -> None:
    add_user(db_url, "alice")
    for _ in range(3):
        sign_in(db_url, "alice", clock=past_clock())
    result = invoke(db_url, "purge-expired", "--batch", "1")
    assert result.exit_code == 0, result.output
    # The two throttle rows are the account's and the address's, left with no failures
    # by the successful sign-ins: nothing to remember, so the purge's.
    assert "Purged 6 sessions, 3 tickets, 2 throttle rows, 9 delivered broadcasts." in result.output
    assert row_counts(db_url) == {
        "sessions": 0,
        "auth_tickets": 0,
        "login_throttle": 0,
        "session_broadcasts": 0,
    }


def test_purge_expired_keeps_a_revoked_session_until_its_absolute_expiry(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice")
    invoke(db_url, "revoke-sessions", "alice")
    before = row_counts(db_url)["sessions"]
    result = invoke(db_url, "purge-expired")
    assert "Purged 0 sessions" in result.output
    assert row_counts(db_url)["sessions"] == before


@pytest.mark.parametrize("batch", ["0", "-1", "many"])
def test_purge_expired_refuses_a_bad_batch_size_as_a_usage_error(db_url: str, batch: str) -> None:
    result = invoke(db_url, "purge-expired", "--batch", batch)
    assert result.exit_code == 2
    assert "--batch" in result.output


# --- events --------------------------------------------------------------------------------


def event_kinds(output: str) -> list[str]:
    """EVENT is the column after the two-word timestamp."""
    return [row.split()[2] for row in data_rows(output)]


def event_users(output: str) -> list[str]:
    return [row.split()[3] for row in data_rows(output)]


def test_events_on_a_fresh_database_says_there_are_none(db_url: str) -> None:
    result = invoke(db_url, "events")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "No events."


def test_events_lists_the_audit_trail_newest_first(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice")
    fail_login(db_url, "alice")
    result = invoke(db_url, "events")
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    assert header.split()[:4] == ["TIME", "(UTC)", "EVENT", "USER"]
    assert event_kinds(result.output) == ["login_failed", "rotated", "login_ok", "user_created"]
    assert set(event_users(result.output)) == {"alice"}
    assert "wrong password" in result.output


def test_events_of_one_user_leaves_out_the_others(db_url: str) -> None:
    add_user(db_url, "alice")
    add_user(db_url, "bob")
    sign_in(db_url, "bob")
    fail_login(db_url, "alice")
    result = invoke(db_url, "events", "--user", "bob")
    assert result.exit_code == 0, result.output
    assert event_kinds(result.output) == ["rotated", "login_ok", "user_created"]
    assert set(event_users(result.output)) == {"bob"}


def test_events_limit_keeps_only_the_newest(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice")
    fail_login(db_url, "alice")
    result = invoke(db_url, "events", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert event_kinds(result.output) == ["login_failed", "rotated"]


def test_events_records_the_operator_commands(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice")
    invoke(db_url, "revoke-sessions", "alice")
    invoke(db_url, "disable-user", "alice")
    invoke(db_url, "enable-user", "alice")
    invoke(db_url, "set-password", "alice", "--password-stdin", input=NEW_PASSWORD + "\n")
    result = invoke(db_url, "events", "--user", "alice", "--limit", "4")
    assert event_kinds(result.output) == [
        "password_changed",
        "user_enabled",
        "user_disabled",
        "revoked",
    ]


@pytest.mark.parametrize("limit", ["0", "ten"])
def test_events_refuses_a_bad_limit_as_a_usage_error(db_url: str, limit: str) -> None:
    result = invoke(db_url, "events", "--limit", limit)
    assert result.exit_code == 2
    assert "--limit" in result.output


# --- nothing a client sent can drive the operator's terminal ---------------------------------

FORGED = "x\x1b[2K\r2026-01-01 00:00:00  login_ok      alice"
"""Clears the terminal line and writes a fake row over it, when printed raw."""


def raw_controls(output: str) -> list[str]:
    """Characters a terminal acts on instead of showing (line breaks between rows aside)."""
    return [
        c for c in output if c != "\n" and unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
    ]


def add_legacy_event(db_url: str, text: str) -> None:
    """An audit row holding raw client text in every column, as rows written before usernames
    were kept as digests hold it (and as any row would, should one slip through)."""

    async def write(service: AuthService) -> None:
        async with service._uow(write=True) as tx:
            await tx.audit.add(
                AuditEvent(
                    at=datetime.now(UTC),
                    kind=AuditKind.LOGIN_FAILED,
                    username=text[:64],
                    client_addr=text[:64],
                    user_agent=text,
                    detail=text,
                )
            )
            await tx.commit()

    with_service(db_url, write)


def test_events_output_never_contains_a_raw_control_character(db_url: str) -> None:
    add_user(db_url, "alice")
    fail_login(db_url, FORGED)
    fail_login(db_url, "bob\u202eecilA\u2028")  # a bidi override and a line separator
    add_legacy_event(db_url, FORGED + "\u200b\x85\x9b31m")
    result = invoke(db_url, "events")
    assert result.exit_code == 0, result.output
    assert raw_controls(result.output) == []
    assert len(data_rows(result.output)) == 4  # no row was split into a forged one
    assert "\\x1b[2K\\x0d" in result.output  # the legacy row, shown escaped


def test_failed_sign_ins_on_unknown_names_show_a_digest_not_the_typed_text(db_url: str) -> None:
    fail_login(db_url, "hunter2-my-password")
    fail_login(db_url, "HUNTER2-my-password")
    result = invoke(db_url, "events")
    assert "hunter2" not in result.output.lower()
    users = event_users(result.output)
    assert len(users) == 2 and users[0] == users[1] and users[0].startswith("unknown:")


def test_sessions_escape_what_the_client_sent(db_url: str) -> None:
    add_user(db_url, "alice")
    sign_in(db_url, "alice", client=ClientInfo("10.0.0.1", "Mozilla\x1b]0;pwned\x07\r\n"))
    result = invoke(db_url, "sessions")
    assert result.exit_code == 0, result.output
    assert raw_controls(result.output) == []
    assert len(data_rows(result.output)) == 1


def test_list_users_escapes_a_stored_name(db_url: str) -> None:
    async def write(service: AuthService) -> None:
        async with service._uow(write=True) as tx:  # past the username rules, as a
            await tx.users.add("mallory\x1b[8m", "mallory", "h", datetime.now(UTC))  # bug might
            await tx.commit()

    with_service(db_url, write)
    result = invoke(db_url, "list-users")
    assert result.exit_code == 0, result.output
    assert raw_controls(result.output) == []
    assert "mallory\\x1b[8m" in result.output
