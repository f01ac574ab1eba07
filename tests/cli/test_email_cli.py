"""Addresses from the command line: create-user --email, set-email, list-users, and
purge-expired for sign-ups never verified."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from tests.cli.test_cli import invoke
from tests.cli.test_operator_cli import data_rows
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock

PASSWORD = "correct horse"


def test_create_user_with_an_email_stores_it_verified(db_url: str) -> None:
    result = invoke(
        db_url,
        "create-user",
        "ann",
        "--email",
        "Ann@Example.ORG",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created user 'ann' with the address Ann@example.org." in result.output
    rows = data_rows(invoke(db_url, "list-users").output)
    assert rows[0].split()[0] == "ann" and rows[0].endswith("Ann@example.org")


def test_an_address_another_user_has_is_refused_and_nothing_is_created(db_url: str) -> None:
    invoke(
        db_url,
        "create-user",
        "ann",
        "--email",
        "a@x.org",
        "--password-stdin",
        input="correct horse\n",
    )
    result = invoke(
        db_url,
        "create-user",
        "bob",
        "--email",
        "A@X.org",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 1
    assert "Another account already uses this e-mail address." in result.output
    assert [r.split()[0] for r in data_rows(invoke(db_url, "list-users").output)] == ["ann"]


def test_an_invalid_address_is_refused_before_the_password_prompt(db_url: str) -> None:
    result = invoke(db_url, "create-user", "ann", "--email", "not an address")
    assert result.exit_code == 1
    assert "That is not an e-mail address" in result.output
    assert "Password" not in result.output


def test_set_email_sets_and_removes_an_address(db_url: str) -> None:
    invoke(db_url, "create-user", "ann", "--password-stdin", input=PASSWORD + "\n")
    assert data_rows(invoke(db_url, "list-users").output)[0].endswith(" -")
    result = invoke(db_url, "set-email", "ANN", "ann@example.org")
    assert result.exit_code == 0, result.output
    assert "Address of 'ann' set to ann@example.org." in result.output
    assert data_rows(invoke(db_url, "list-users").output)[0].endswith("ann@example.org")
    removed = invoke(db_url, "set-email", "ann", "--remove")
    assert "Address of 'ann' removed." in removed.output
    assert data_rows(invoke(db_url, "list-users").output)[0].endswith(" -")
    both = invoke(db_url, "set-email", "ann", "a@x.org", "--remove")
    assert both.exit_code == 1 and "Give either an ADDRESS or --remove." in both.output
    unknown = invoke(db_url, "set-email", "nobody", "a@x.org")
    assert unknown.exit_code == 1 and "There is no user named 'nobody'." in unknown.output


def test_list_users_marks_a_sign_up_not_yet_verified_and_purge_removes_it(db_url: str) -> None:
    clock = FakeClock()
    settings = replace(Settings(database_url=db_url), signup=True, mail_console=True)

    async def sign_up() -> None:
        async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
            rt.service.email = replace(rt.service.email, answer_floor=timedelta(0))
            await rt.service.sign_up("new@example.org", "newbie", PASSWORD, ClientInfo("::1"))

    asyncio.run(sign_up())
    (row,) = data_rows(invoke(db_url, "list-users").output)
    assert row.endswith("new@example.org (unverified)")
    # purge-expired runs on the real clock, years after the fake one: long expired.
    result = invoke(db_url, "purge-expired")
    assert result.exit_code == 0, result.output
    assert "1 unverified sign-up purged." in result.output
    assert "1 old mail purged." in result.output
    assert "No users yet" in invoke(db_url, "list-users").output
