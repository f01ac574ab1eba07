from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from authdemo.bootstrap import runtime
from authdemo.cli import main
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.mfa import parse_mfa_key
from authdemo.security import hash_token
from tests.support.db import ROOT, sqlite_url


def invoke(db_url: str, *args: str, input: str | None = None, **env: str) -> Result:
    runner = CliRunner()
    return runner.invoke(
        main, list(args), input=input, env={"AUTHDEMO_DATABASE_URL": db_url, **env}
    )


def can_log_in(db_url: str, username: str, password: str) -> bool:
    async def attempt() -> bool:
        async with runtime(Settings(database_url=db_url)) as rt:
            try:
                await rt.service.login(
                    hash_token(rt.service.new_token()), username, password, ClientInfo()
                )
            except Exception:
                return False
            return True

    return asyncio.run(attempt())


def test_create_user_prompts_twice_without_echo(db_url: str) -> None:
    result = invoke(db_url, "create-user", "Alice", input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0, result.output
    assert "Created user 'Alice'." in result.output
    assert "correct horse" not in result.output
    assert result.output.count("Password") == 1 and "Repeat password" in result.output
    assert can_log_in(db_url, "alice", "correct horse")


def test_create_user_reads_the_password_from_stdin(db_url: str) -> None:
    result = invoke(db_url, "create-user", "bob", "--password-stdin", input="s3cret pass\n")
    assert result.exit_code == 0, result.output
    assert can_log_in(db_url, "bob", "s3cret pass")


def test_a_taken_username_is_refused_case_insensitively(db_url: str) -> None:
    invoke(db_url, "create-user", "alice", "--password-stdin", input="correct horse\n")
    result = invoke(db_url, "create-user", "ALICE", "--password-stdin", input="another one\n")
    assert result.exit_code == 1
    assert "The username 'ALICE' is already taken." in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("username", "message"),
    [("al ice", "letters, digits"), ("x" * 65, "at most 64"), (" alice", "whitespace")],
)
def test_an_invalid_username_is_refused_before_any_prompt(
    db_url: str, username: str, message: str
) -> None:
    result = invoke(db_url, "create-user", username, input="correct horse\ncorrect horse\n")
    assert result.exit_code == 1
    assert message in result.output
    assert "Password" not in result.output


def test_a_username_too_long_once_folded_is_refused_in_one_line(db_url: str) -> None:
    result = invoke(db_url, "create-user", "ß" * 40, "--password-stdin", input="correct horse\n")
    assert result.exit_code == 1, result.output
    assert result.output.strip().count("\n") == 0  # one line, no traceback
    assert "at most 64" in result.output
    assert not can_log_in(db_url, "ß" * 40, "correct horse")


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 8"), ("x" * 1025, "at most 1024"), ("with\x07bell", "control")],
)
def test_a_password_outside_the_policy_is_refused(db_url: str, password: str, message: str) -> None:
    result = invoke(db_url, "create-user", "alice", "--password-stdin", input=password + "\n")
    assert result.exit_code == 1
    assert message in result.output
    assert not can_log_in(db_url, "alice", password)


def test_a_short_prompted_password_is_refused_before_the_confirmation(db_url: str) -> None:
    result = invoke(db_url, "create-user", "alice", input="short\nshort\n")
    assert result.exit_code == 1
    assert "at least 8" in result.output and "Repeat password" not in result.output


def test_a_mismatched_confirmation_is_refused(db_url: str) -> None:
    result = invoke(db_url, "create-user", "alice", input="correct horse\ncorrect hose\n")
    assert result.exit_code == 1
    assert "do not match" in result.output
    assert not can_log_in(db_url, "alice", "correct horse")


def test_create_user_on_an_unmigrated_database_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    result = invoke(sqlite_url(path), "create-user", "alice", "--password-stdin", input="x" * 9)
    assert result.exit_code == 3
    assert "run `authdemo migrate`" in result.output
    assert "Traceback" not in result.output


def test_create_user_on_a_missing_database_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = invoke(sqlite_url(path), "create-user", "alice", "--password-stdin", input="x" * 9)
    assert result.exit_code == 3
    assert "does not exist" in result.output
    assert not path.exists()


@pytest.mark.parametrize("setup", ["missing", "unmigrated"])
def test_run_refuses_to_start_on_a_database_that_is_not_ready(tmp_path: Path, setup: str) -> None:
    path = tmp_path / "db.db"
    if setup == "unmigrated":
        path.touch()
    result = invoke(sqlite_url(path), "run", "--port", "0")
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "run `authdemo migrate`" in lines[0]


def test_a_bad_setting_is_a_usage_error_naming_the_variable(db_url: str) -> None:
    result = invoke(db_url, "run", AUTHDEMO_IDLE_TIMEOUT="soon")
    assert result.exit_code == 2
    assert "AUTHDEMO_IDLE_TIMEOUT" in result.output


def test_demo_accounts_are_created_once_and_their_passwords_kept(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = invoke(db_url, "demo-accounts")
    assert first.exit_code == 0, first.output
    second = invoke(db_url, "demo-accounts")
    assert first.output == second.output
    password = first.output.split("username: alice")[1].split("initial password:")[1].split()[0]
    assert can_log_in(db_url, "alice", password)
    assert "initial passwords" in first.output  # not the current ones once changed in the app
    assert (tmp_path / ".authdemo-demo-credentials").stat().st_mode & 0o777 == 0o600


def test_the_demo_mfa_key_is_made_once_kept_private_and_opens_secrets(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = invoke(db_url, "demo-mfa-key")
    assert first.exit_code == 0, first.output
    key = first.output.strip()
    parse_mfa_key(key)  # a key the server accepts as AUTHDEMO_MFA_KEY
    assert invoke(db_url, "demo-mfa-key").output.strip() == key
    path = tmp_path / ".authdemo-demo-mfa-key"
    assert path.read_text().strip() == key
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("not a key\n")  # a damaged file is replaced, not served
    again = invoke(db_url, "demo-mfa-key").output.strip()
    assert again != key
    parse_mfa_key(again)


def test_dev_sh_demo_serves_with_the_demo_mfa_key_and_without_the_test_tools() -> None:
    script = (ROOT / "dev.sh").read_text()
    demo = script.split("    demo)", 1)[1].split(";;", 1)[0]
    assert 'setup ""' in demo and "setup test" not in demo
    assert '$("$VENV/bin/authdemo" demo-mfa-key)' in demo and "export AUTHDEMO_MFA_KEY" in demo


def test_a_user_row_the_database_refuses_is_refused_in_one_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import DataError

    from authdemo.db.repositories import SqlUserRepository

    async def refused(*_: object) -> None:
        raise DataError("INSERT INTO authdemo_users …", None, Exception("value too long"))

    monkeypatch.setattr(SqlUserRepository, "add", refused)
    result = invoke(db_url, "create-user", "alice", "--password-stdin", input="correct horse\n")
    assert result.exit_code == 1, result.output
    assert result.output.strip() == "Error: The database refused this change; nothing was saved."


@pytest.mark.parametrize(
    ("host", "allowed", "warned"),
    [
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("203.0.113.5", None, True),
        ("app.internal", None, True),
        ("0.0.0.0", "app.example.com", False),
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
    ],
)
def test_run_on_a_public_address_without_allowed_hosts_warns_once_at_start(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host: str,
    allowed: str | None,
    warned: bool,
) -> None:
    served: list[str] = []
    monkeypatch.setattr("authdemo.cli.serve", lambda settings, **kw: served.append(kw["host"]))
    env = {"AUTHDEMO_ALLOWED_HOSTS": allowed} if allowed else {}
    result = invoke(db_url, "run", "--host", host, **env)
    assert result.exit_code == 0, result.output
    assert served == [host]
    warnings = [r for r in caplog.records if "AUTHDEMO_ALLOWED_HOSTS" in r.getMessage()]
    assert len(warnings) == (1 if warned else 0)
    assert all(r.levelname == "WARNING" for r in warnings)


@pytest.mark.parametrize(
    ("args", "env", "ui"),
    [
        ((), {}, "idom"),
        (("--ui", "reactpy"), {}, "reactpy"),
        (("--ui", "ReactPy"), {}, "reactpy"),
        ((), {"AUTHDEMO_UI": "reactpy"}, "reactpy"),
        (("--ui", "idom"), {"AUTHDEMO_UI": "reactpy"}, "idom"),
    ],
)
def test_run_serves_the_ui_library_chosen_by_flag_or_environment(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    ui: str,
) -> None:
    served: list[Settings] = []
    monkeypatch.setattr("authdemo.cli.serve", lambda settings, **kw: served.append(settings))
    result = invoke(db_url, "run", *args, **env)
    assert result.exit_code == 0, result.output
    assert [s.ui for s in served] == [ui]


def test_run_refuses_an_unknown_ui_library(db_url: str) -> None:
    result = invoke(db_url, "run", "--ui", "vue")
    assert result.exit_code == 2
    assert "'vue' is not one of 'idom', 'reactpy'" in result.output


def test_run_on_a_port_another_server_holds_says_so_in_one_line(db_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = invoke(db_url, "run", "--host", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"Error: Cannot listen on 127.0.0.1:{port}: address already in use"
        " (is another server running there? choose another --port)"
    )


def test_run_on_a_host_name_that_does_not_resolve_says_so_in_one_line(db_url: str) -> None:
    result = invoke(db_url, "run", "--host", "no-such-host.invalid", "--port", "8000")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: Cannot listen on no-such-host.invalid:8000: ")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
