"""Two-factor values: steps and drift, recovery codes, the sealed secret, the key."""

from __future__ import annotations

import base64
from datetime import timedelta

import pyotp
import pytest

from authdemo.config import ConfigError, Settings
from authdemo.mfa import (
    RECOVERY_ALPHABET,
    SecondFactorPolicy,
    SecretBox,
    SecretUnreadable,
    WeakMfaKey,
    grouped,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    otpauth_uri,
    parse_mfa_key,
    parse_mfa_keys,
    typed_code,
)
from tests.support.fakes import T0
from tests.support.mfa import MFA_KEY, MFA_KEY_TEXT, OTHER_KEY, code_at

POLICY = SecondFactorPolicy()


def test_a_secret_is_160_random_bits_in_base32() -> None:
    secret = new_totp_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    assert new_totp_secret() != secret
    assert grouped("ABCDEFGHIJ") == "ABCD EFGH IJ"


def test_the_uri_is_what_authenticator_apps_read() -> None:
    secret = new_totp_secret()
    uri = otpauth_uri(secret, "alice", "authdemo", POLICY)
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert uri.startswith("otpauth://totp/authdemo:alice?")


@pytest.mark.parametrize(
    ("steps", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_codes_one_step_either_side_are_accepted_two_are_not(steps: int, accepted: bool) -> None:
    secret = new_totp_secret()
    found = matching_step(secret, code_at(secret, T0, steps), T0, POLICY)
    current = POLICY.current_step(T0)
    assert found == (current + steps if accepted else None)


@pytest.mark.parametrize(("ahead", "accepted"), [(45, True), (75, False)])
def test_a_phone_clock_45_s_off_works_and_75_s_off_does_not(ahead: int, accepted: bool) -> None:
    secret = new_totp_secret()
    phone = pyotp.TOTP(secret).at(T0 + timedelta(seconds=ahead))
    # T0 is the start of a step: 45 s ahead is the next step, 75 s the one after.
    assert (matching_step(secret, phone, T0, POLICY) is not None) is accepted


def test_only_six_ascii_digits_are_a_code() -> None:
    assert typed_code(" 123 456 ", POLICY) == "123456"
    for bad in ("12345", "1234567", "12345a", "١٢٣٤٥٦", ""):
        assert typed_code(bad, POLICY) is None


def test_recovery_codes_are_60_bits_distinct_and_typed_forgivingly() -> None:
    codes = new_recovery_codes(10)
    assert len(set(codes)) == 10
    for code in codes:
        plain = code.replace("-", "")
        assert len(plain) == 12 and set(plain) <= set(RECOVERY_ALPHABET)  # 12 x 5 bits
    code = codes[0]
    assert normalize_recovery_code(code.lower().replace("-", " ")) == code.replace("-", "")
    assert normalize_recovery_code("0000-1111-2222") == normalize_recovery_code("oooo-iiii-2222")
    assert normalize_recovery_code("ABCD-EFGH-JKM") is None
    assert normalize_recovery_code("UUUU-UUUU-UUUU") is None


def test_a_sealed_secret_opens_only_for_its_user_and_key() -> None:
    box = SecretBox((MFA_KEY,))
    sealed = box.seal(7, "JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(7, sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretUnreadable):
        box.open(8, sealed)  # the user id is the associated data: no copying rows
    with pytest.raises(SecretUnreadable):
        SecretBox((OTHER_KEY,)).open(7, sealed)
    prefix, payload = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[-1] ^= 1
    with pytest.raises(SecretUnreadable):
        box.open(7, f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode()}")
    assert box.seal(7, "JBSWY3DPEHPK3PXP") != sealed  # a fresh nonce each time


def test_a_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old = SecretBox((MFA_KEY,))
    sealed = old.seal(1, "JBSWY3DPEHPK3PXP")
    both = SecretBox((OTHER_KEY, MFA_KEY))
    assert both.open(1, sealed) == "JBSWY3DPEHPK3PXP"
    assert not both.sealed_by_current_key(sealed)
    assert both.sealed_by_current_key(both.seal(1, "JBSWY3DPEHPK3PXP"))


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "short",
        "a" * 43,
        "0" * 64,
        base64.b64encode(b"x" * 31).decode(),
        "not base64 at all!" * 3,
    ],
)
def test_missing_short_or_weak_keys_are_refused_with_a_clear_line(raw: str) -> None:
    with pytest.raises(WeakMfaKey, match="AUTHDEMO_MFA_KEY"):
        parse_mfa_keys(raw)


def test_keys_are_read_as_base64_or_hex() -> None:
    assert parse_mfa_key(MFA_KEY_TEXT) == MFA_KEY
    assert parse_mfa_key(MFA_KEY.hex()) == MFA_KEY
    assert parse_mfa_key(base64.b64encode(MFA_KEY).decode()) == MFA_KEY


def test_settings_read_the_key_and_refuse_a_weak_one() -> None:
    settings = Settings.from_env({"AUTHDEMO_MFA_KEY": f"{MFA_KEY_TEXT},{OTHER_KEY.hex()}"})
    assert settings.mfa_keys == (MFA_KEY, OTHER_KEY)
    assert Settings.from_env({}).mfa_keys == ()
    with pytest.raises(ConfigError, match="AUTHDEMO_MFA_KEY"):
        Settings.from_env({"AUTHDEMO_MFA_KEY": "password123"})
