"""Addresses, codes, the e-mail policy, back-off and the mail settings, as values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authdemo.config import ConfigError, Settings
from authdemo.mail import (
    EmailPolicy,
    InvalidEmail,
    OutgoingMail,
    backoff,
    clean_code,
    compose,
    email_key,
    message_id,
    new_email_code,
    normalize_email,
)
from authdemo.security import TokenCodec


def test_an_address_keeps_its_local_part_and_is_found_by_its_folded_form() -> None:
    assert normalize_email("  Ann.Lee@Example.ORG ") == (
        "Ann.Lee@example.org",
        "ann.lee@example.org",
    )
    assert email_key("ANN.LEE@example.org") == email_key("ann.lee@EXAMPLE.org")
    assert email_key("not an address") is None


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter an e-mail address."),
        ("ann", "That is not an e-mail address"),
        ("a@b@c.org", "That is not an e-mail address"),
        ("a" * 250 + "@example.org", "at most 254 characters"),
    ],
)
def test_what_is_no_address_is_refused_in_words(typed: str, says: str) -> None:
    with pytest.raises(InvalidEmail) as refused:
        normalize_email(typed)
    assert says in str(refused.value)


def test_codes_are_eight_random_digits_and_typed_ones_may_have_spaces() -> None:
    codes = {new_email_code() for _ in range(200)}
    assert all(len(c) == 8 and c.isdigit() for c in codes) and len(codes) > 190
    assert clean_code(" 1234 5678 ") == "12345678"
    assert clean_code("1234-5678") == "12345678"
    assert clean_code("1234567") is None
    full_width = "".join(chr(0xFF10 + int(d)) for d in "12345678")
    assert clean_code(full_width) is None  # digits, but not ASCII ones
    assert clean_code("abcdefgh") is None


def test_a_code_digest_is_keyed_and_bound_to_the_user_and_the_purpose() -> None:
    codec, other = TokenCodec(b"k" * 32), TokenCodec(b"o" * 32)
    digest = codec.email_code_digest(1, "reset", "12345678")
    assert digest == codec.email_code_digest(1, "reset", "12345678")
    assert digest != codec.email_code_digest(2, "reset", "12345678")
    assert digest != codec.email_code_digest(1, "verify", "12345678")
    assert digest != other.email_code_digest(1, "reset", "12345678")
    assert "12345678" not in digest and len(digest) == 64


def test_the_policy_keeps_codes_short_lived_and_tries_few() -> None:
    with pytest.raises(ValueError, match="at most 15 minutes"):
        EmailPolicy(code_ttl=timedelta(minutes=16))
    with pytest.raises(ValueError, match="between 1 and 5"):
        EmailPolicy(code_tries=6)
    policy = EmailPolicy()
    assert (policy.code_ttl, policy.code_tries, policy.signup_open) == (
        timedelta(minutes=15),
        5,
        False,
    )


def test_back_off_doubles_from_two_seconds_up_to_five_minutes() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 8, 9, 20)] == [2, 4, 8, 256, 300, 300]


def test_a_mail_has_a_text_and_an_html_part_and_a_stable_message_id() -> None:
    mail = OutgoingMail("a@example.org", "Subject", "Hello\n\n12345678\n", "<p>Hi</p>", "x")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first = message_id(7, at, "Accounts <no@example.org>")
    assert first == message_id(7, at, "Accounts <no@example.org>")
    assert first.endswith(".1767225600@example.org>")
    assert first != message_id(8, at, "no@example.org")
    message = compose(mail, "no@example.org", first)
    assert message["Message-ID"] == first and message["Auto-Submitted"] == "auto-generated"
    assert message.get_body(preferencelist=("plain",)) is not None
    assert message.get_body(preferencelist=("html",)) is not None


def test_the_mail_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "AUTHDEMO_SIGNUP": "open",
            "AUTHDEMO_SMTP_URL": "smtp://mail.example.org",
            "AUTHDEMO_MAIL_FROM": "Accounts <no@example.org>",
        }
    )
    assert settings.signup and settings.mail_available
    assert not Settings.from_env({}).signup and not Settings.from_env({}).mail_available
    with pytest.raises(ConfigError, match="AUTHDEMO_SIGNUP='yes': use open or closed"):
        Settings.from_env({"AUTHDEMO_SIGNUP": "yes"})
    for wrong in ("nobody", "Name no@example.org", "<>"):
        with pytest.raises(ConfigError, match="AUTHDEMO_MAIL_FROM"):
            Settings.from_env({"AUTHDEMO_MAIL_FROM": wrong})
