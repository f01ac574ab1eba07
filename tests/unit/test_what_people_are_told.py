"""What a person reads when the service refuses: every refusal is a whole sentence that
says what went wrong and what to do, with no variable's name and no traceback; and what a
terminal or a log line shows of text a client sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from authdemo.domain import (
    AlreadySignedIn,
    AuthError,
    ClientInfo,
    CodeThrottled,
    CookieRequired,
    InvalidCode,
    InvalidCredentials,
    InvalidPassword,
    InvalidUsername,
    MfaUnavailable,
    NotSignedIn,
    SecondFactorRequired,
    SecondStepExpired,
    SessionDataTooLarge,
    StorageRefused,
    StorageUnavailable,
    Throttled,
    UnknownSession,
    UnknownUser,
    UsernameTaken,
    check_password_policy,
    describe_wait,
    normalize_username,
    printable,
)


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (InvalidCredentials, "Incorrect username or password."),
        (
            partial(Throttled, timedelta(seconds=1)),
            "Incorrect username or password. Too many attempts: try again in 1 second.",
        ),
        (
            partial(Throttled, timedelta(minutes=15)),
            "Incorrect username or password. Too many attempts: try again in 15 minutes.",
        ),
        (NotSignedIn, "You are not signed in."),
        (
            AlreadySignedIn,
            "You are already signed in. Sign out first to sign in as someone else.",
        ),
        (partial(UsernameTaken, "bob"), "The username 'bob' is already taken."),
        (partial(UnknownUser, "bob"), "There is no user named 'bob'."),
        (partial(UnknownSession, 42), "There is no live session 42 to end (ended already?)."),
        (
            CookieRequired,
            "This browser did not send its session cookie. Reload the page (with cookies "
            "allowed for this site) and try again.",
        ),
        (SecondFactorRequired, "Enter the 6-digit code from your authenticator app."),
        (
            InvalidCode,
            "That code is not valid. Enter the current code, or a recovery code.",
        ),
        (
            partial(CodeThrottled, timedelta(minutes=15)),
            "That code is not valid. Too many attempts: try again in 15 minutes.",
        ),
        (SecondStepExpired, "The sign-in took too long. Enter your password again."),
        (MfaUnavailable, "Two-factor sign-in is not available on this server."),
        (
            partial(MfaUnavailable, key_set=True),
            "Two-factor sign-in cannot be checked on this server right now; please tell its "
            "administrator.",
        ),
        (
            StorageUnavailable,
            "The service is temporarily unavailable. Please try again shortly.",
        ),
        (StorageRefused, "The database refused this change; nothing was saved."),
        (
            partial(SessionDataTooLarge, 70_000, 65_536),
            "Session data is limited to 64 KiB; this change would make it 69 KiB.",
        ),
        (
            partial(SessionDataTooLarge, 1_024, 1_023),
            "Session data is limited to 1023 bytes; this change would make it 1 KiB.",
        ),
        (
            partial(SessionDataTooLarge, 2_049, 2_048),
            "Session data is limited to 2 KiB; this change would make it 3 KiB.",
        ),
    ],
)
def test_every_refusal_is_a_sentence_for_the_person_in_front_of_the_page(
    make: Callable[[], AuthError], sentence: str
) -> None:
    # Made here, not in the list above: the list is built when the module is collected.
    assert str(make()) == sentence


def test_refusals_carry_what_a_caller_needs_to_act_on_them() -> None:
    """The wait (for a Retry-After), the name or id refused, the sizes; the challenge a
    code must be sent with; and, for the operator only, why two-factor is unavailable."""
    assert Throttled(timedelta(seconds=7)).retry_after == timedelta(seconds=7)
    assert CodeThrottled(timedelta(seconds=9)).retry_after == timedelta(seconds=9)
    assert isinstance(Throttled(timedelta(seconds=1)), InvalidCredentials)
    assert isinstance(CodeThrottled(timedelta(seconds=1)), InvalidCode)
    assert UsernameTaken("bob").username == "bob"
    assert UnknownUser("bob").username == "bob"
    assert UnknownSession(42).session_id == 42
    too_large = SessionDataTooLarge(70_000, 65_536)
    assert (too_large.size, too_large.limit) == (70_000, 65_536)
    until = datetime(2026, 1, 1, tzinfo=UTC)
    required = SecondFactorRequired("the challenge", until)
    assert (required.challenge, required.expires_at) == ("the challenge", until)
    assert SecondFactorRequired().challenge is None
    assert MfaUnavailable().detail == "no AUTHDEMO_MFA_KEY"
    assert MfaUnavailable(key_set=True).detail == (
        "its AUTHDEMO_MFA_KEY does not open this account's two-factor secret"
    )
    assert "AUTHDEMO" not in str(MfaUnavailable(key_set=True)) + str(MfaUnavailable())


@pytest.mark.parametrize(
    ("wait", "words"),
    [
        (timedelta(0), "1 second"),  # never "0 seconds": the block is still on
        (timedelta(milliseconds=200), "1 second"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(seconds=1, milliseconds=1), "2 seconds"),  # rounded up, never down
        (timedelta(seconds=2), "2 seconds"),
        (timedelta(seconds=119), "119 seconds"),
        (timedelta(seconds=120), "2 minutes"),
        (timedelta(seconds=121), "3 minutes"),
        (timedelta(minutes=15), "15 minutes"),
    ],
)
def test_a_wait_is_told_in_whole_seconds_or_minutes_rounded_up(wait: timedelta, words: str) -> None:
    assert describe_wait(wait) == words


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        ("", "Enter a username."),
        (" alice", "Usernames cannot start or end with whitespace."),
        ("alice ", "Usernames cannot start or end with whitespace."),
        ("a" * 65, "Usernames are at most 64 characters long."),
        ("a" * 257, "Usernames are at most 64 characters long."),
        (
            "al ice",
            "Usernames may contain letters, digits and . _ - @ + only (found SPACE).",
        ),
        (
            "al\x00ice",
            "Usernames may contain letters, digits and . _ - @ + only (found '\\x00').",
        ),
        (
            "ß" * 40,
            "Usernames are at most 64 characters long, counted in lower case (where, for "
            "example, ß counts as ss).",
        ),
    ],
)
def test_a_refused_username_is_told_why_in_a_sentence(raw: str, sentence: str) -> None:
    with pytest.raises(InvalidUsername) as refused:
        normalize_username(raw)
    assert str(refused.value) == sentence


def test_usernames_take_letters_digits_and_the_listed_punctuation() -> None:
    assert normalize_username("a.b_c-d@e+f9") == ("a.b_c-d@e+f9", "a.b_c-d@e+f9")
    assert normalize_username("a" * 64)[0] == "a" * 64  # exactly the limit


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        ("short", "Passwords must be at least 8 characters long."),
        ("x" * 1025, "Passwords are at most 1024 characters long."),
        ("password\x00x", "Passwords cannot contain control characters."),
        ("password\ud800x", "Passwords cannot contain unpaired surrogates."),
        # Normalising can lengthen a password past the limit (U+FDFA is 18 letters).
        ("\ufdfa" * 57, "Passwords are at most 1024 characters long."),
    ],
)
def test_a_refused_new_password_is_told_why_in_a_sentence(raw: str, sentence: str) -> None:
    with pytest.raises(InvalidPassword) as refused:
        check_password_policy(raw)
    assert str(refused.value) == sentence


def test_a_new_password_of_exactly_the_limits_is_accepted() -> None:
    assert check_password_policy("x" * 8) == "x" * 8
    assert check_password_policy("x" * 1024) == "x" * 1024


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, even ☃", "plain text, even ☃"),
        ("a\x1b[2Kb", "a\\x1b[2Kb"),
        ("line\r\nforged", "line\\x0d\\x0aforged"),
        ("\x7f\xad", "\\x7f\\xad"),  # DEL, soft hyphen (a format character)
        ("bidi \u202e override", "bidi \\u202e override"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("tag \U000e0041", "tag \\U000e0041"),
        ("lone \ud800", "lone \\ud800"),
    ],
)
def test_text_a_client_sent_cannot_start_a_line_or_move_the_cursor(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_what_a_client_sent_about_itself_is_clipped_to_what_the_audit_trail_keeps() -> None:
    clipped = ClientInfo("a" * 100, "u" * 1000).clipped()
    assert (clipped.addr, clipped.user_agent) == ("a" * 64, "u" * 512)
