"""Two-factor values at their edges: what a stored secret must keep opening, the policy's
own step and digits, every character of a recovery code random, and the key's spellings."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pyotp
import pytest

from authdemo.mfa import (
    RECOVERY_LENGTH,
    SecondFactorPolicy,
    SecretBox,
    SecretUnreadable,
    WeakMfaKey,
    code_for_step,
    new_recovery_codes,
    normalize_recovery_code,
    otpauth_uri,
    parse_mfa_key,
)

KEY = bytes(range(7, 39))
# Sealed by this version for user 7 (secret JBSWY3DPEHPK3PXP): what a database holds.
SEALED = "v1:7abfb467bcc4:vSP3RbmEbdC8xnZBMzpNsBFUSV90q1jHOyr8qHBnR2tGQaBUv0Wwb3WqsQY="


def test_a_secret_sealed_by_this_version_keeps_opening_under_the_same_key() -> None:
    box = SecretBox((KEY,))
    assert box.key_id == "7abfb467bcc4"  # the id stored in every sealed secret
    assert box.open(7, SEALED) == "JBSWY3DPEHPK3PXP"
    assert box.sealed_by_current_key(SEALED)


def test_a_secret_box_without_keys_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^at least one key$"):
        SecretBox(())


def test_secrets_that_do_not_open_say_why() -> None:
    box = SecretBox((KEY,))
    with pytest.raises(SecretUnreadable, match=r"^sealed under a key this server does not have$"):
        SecretBox((bytes(range(100, 132)),)).open(7, SEALED)
    with pytest.raises(SecretUnreadable, match=r"^does not open \(tampered, or another user's\)$"):
        box.open(8, SEALED)


POLICY = SecondFactorPolicy(step=timedelta(seconds=60), digits=8)
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # 160 bits


def test_codes_follow_the_policys_step_and_digits() -> None:
    secret = TOTP_SECRET
    expected = pyotp.TOTP(secret, digits=8, interval=60).at(1000 * 60)
    assert code_for_step(secret, 1000, POLICY) == expected
    assert len(expected) == 8


def test_the_uri_carries_the_policys_step_and_digits() -> None:
    parsed = pyotp.parse_uri(otpauth_uri(TOTP_SECRET, "alice", "authdemo", POLICY))
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.digits, parsed.interval) == (8, 60)


def test_every_character_of_a_recovery_code_is_random() -> None:
    codes = [code.replace("-", "") for code in new_recovery_codes(200)]
    assert {len(code) for code in codes} == {RECOVERY_LENGTH}
    for position in range(RECOVERY_LENGTH):
        assert len({code[position] for code in codes}) > 10


def test_a_typed_recovery_code_may_be_padded_up_to_64_characters() -> None:
    code = "ABCD-EFGH-JKMN"
    assert normalize_recovery_code(code.ljust(64)) == "ABCDEFGHJKMN"
    assert normalize_recovery_code(code.ljust(65)) is None


def test_a_hex_key_is_read_in_either_case_and_only_from_hex_digits() -> None:
    assert parse_mfa_key(KEY.hex().upper()) == KEY
    assert parse_mfa_key(KEY.hex()) == KEY
    with pytest.raises(WeakMfaKey):
        parse_mfa_key(KEY.hex()[:-1] + "X")


def test_a_standard_base64_key_reads_like_its_url_safe_spelling() -> None:
    key = next(
        k
        for k in (hashlib.sha256(bytes([i])).digest() for i in range(256))
        if {"+", "/"} <= set(base64.b64encode(k).decode())
    )
    standard = base64.b64encode(key).decode()
    assert parse_mfa_key(standard) == key
    assert parse_mfa_key(standard.rstrip("=")) == key
    assert parse_mfa_key(base64.urlsafe_b64encode(key).decode()) == key


def test_a_key_needs_sixteen_distinct_byte_values() -> None:
    sixteen = bytes(range(16)) * 2
    assert parse_mfa_key(sixteen.hex()) == sixteen
    with pytest.raises(WeakMfaKey, match="not random enough"):
        parse_mfa_key((bytes(range(15)) * 3)[:32].hex())


def test_every_new_secret_is_32_base32_digits_whatever_digit_it_ends_in() -> None:
    from authdemo.mfa import new_totp_secret

    # 1 in 32 secrets ends in X (a base32 digit): 500 of them all but surely hold some.
    assert {len(new_totp_secret()) for _ in range(500)} == {32}
