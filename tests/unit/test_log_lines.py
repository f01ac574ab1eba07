"""Issue 13: log lines cannot be forged by what a client sends."""

from __future__ import annotations

import logging
import sys

from authdemo.cli import LOG_FORMAT, EscapingFormatter


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("authdemo.test", logging.INFO, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def test_control_characters_in_a_log_line_are_escaped() -> None:
    line = EscapingFormatter(LOG_FORMAT).format(
        record("login failed user=%s", "x\x1b[2K\r\nINFO authdemo.auth: login ok user=alice")
    )
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.endswith("user=x\\x1b[2K\\x0d\\x0aINFO authdemo.auth: login ok user=alice")


def test_a_traceback_after_the_line_keeps_its_lines() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failure = sys.exc_info()
    text = EscapingFormatter(LOG_FORMAT).format(record("it failed", exc_info=failure))
    assert text.splitlines()[1] == "Traceback (most recent call last):"
    assert text.splitlines()[-1] == "RuntimeError: boom"


def test_the_command_lines_logging_escapes_its_lines() -> None:
    """What ``authdemo run`` and the other commands set up (in a fresh process: here the
    test runner's own handlers are in place)."""
    import subprocess

    script = (
        "import logging; from authdemo.cli import configure_logging; configure_logging(20); "
        "logging.getLogger('authdemo.auth').info('user=%s', 'x\\x1b[31m\\nforged')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stderr.count("\n") == 1
    assert "user=x\\x1b[31m\\x0aforged" in done.stderr
