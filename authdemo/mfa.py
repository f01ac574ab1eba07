"""Two-factor sign-in values: TOTP steps and codes, recovery codes, and the sealed secret.

No I/O lives here. What is kept, and why:
- A code names a *time step* (RFC 6238: 30 s, 6 digits); the service accepts a step at
  most once per user by one conditional write (``last_step < :step``), so this module
  only says which step a code belongs to (``matching_step``), within ±``drift`` steps.
- Secrets are stored sealed with AES-GCM under a key that never comes from the
  database (``AUTHDEMO_MFA_KEY``), with the user id as associated data: a ciphertext
  copied onto another user's row does not open.
- Recovery codes are random (60 bits), shown once, and stored only as keyed digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_BYTES = 20
"""160 bits, RFC 4226's recommended length for HMAC-SHA-1 keys."""
RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U, so nothing is mistaken when typed from paper."""
RECOVERY_LENGTH = 12
"""12 characters of 5 bits: 60 bits per code."""
_TYPED_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEAL_VERSION = "v1"


@dataclass(frozen=True)
class SecondFactorPolicy:
    """The knobs of two-factor sign-in (the defaults are the issue's numbers)."""

    step: timedelta = timedelta(seconds=30)
    digits: int = 6
    drift: int = 1
    """Steps either side of the current one that are accepted (clock skew, slow typing)."""
    challenge_ttl: timedelta = timedelta(minutes=5)
    """How long a correct password waits for its code (the pending second step)."""
    enrol_ttl: timedelta = timedelta(minutes=10)
    """How long a new secret waits for its confirming code before it is void."""
    account_threshold: int = 5
    """Wrong codes for one account before its second step locks."""
    address_threshold: int = 20
    """Wrong codes from one client network (any accounts) before it is locked out."""
    lock: timedelta = timedelta(minutes=15)
    recovery_codes: int = 10

    def current_step(self, now: datetime) -> int:
        return int(now.timestamp() // self.step.total_seconds())


@dataclass(frozen=True)
class MfaRecord:
    """A user's row: ``confirmed_at`` None while the enrolment waits for its first code."""

    user_id: int
    sealed_secret: str
    created_at: datetime
    confirmed_at: datetime | None
    pending_expires_at: datetime | None
    last_step: int

    def is_pending(self, now: datetime) -> bool:
        return (
            self.confirmed_at is None
            and self.pending_expires_at is not None
            and now < self.pending_expires_at
        )


@dataclass(frozen=True)
class Challenge:
    """A correct password waiting for its second factor."""

    user_id: int
    user_epoch: int
    bound_token_hash: str
    carry_from: int | None
    expires_at: datetime


def new_totp_secret() -> str:
    """A fresh 160-bit secret, base32 without padding (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def grouped(secret: str) -> str:
    """``ABCD EFGH …``: the secret as people type it in by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def otpauth_uri(secret: str, username: str, issuer: str, policy: SecondFactorPolicy) -> str:
    return pyotp.TOTP(
        secret, digits=policy.digits, interval=int(policy.step.total_seconds())
    ).provisioning_uri(name=username, issuer_name=issuer)


def code_for_step(secret: str, step: int, policy: SecondFactorPolicy) -> str:
    interval = int(policy.step.total_seconds())
    return pyotp.TOTP(secret, digits=policy.digits, interval=interval).at(step * interval)


def typed_code(raw: str, policy: SecondFactorPolicy) -> str | None:
    """The digits of a typed TOTP code (spaces allowed), or None if it is not one."""
    code = "".join(raw.split())
    if len(code) != policy.digits or not code.isascii() or not code.isdigit():
        return None
    return code


def matching_step(secret: str, code: str, now: datetime, policy: SecondFactorPolicy) -> int | None:
    """The time step within ±``drift`` of now whose code is ``code`` (the latest, should
    two match), or None. Compares in constant time; whether the step was used already
    is the caller's conditional write to decide."""
    current = policy.current_step(now)
    found = None
    for step in range(current - policy.drift, current + policy.drift + 1):
        if hmac.compare_digest(code_for_step(secret, step, policy), code):
            found = step
    return found


def new_recovery_codes(count: int) -> list[str]:
    """``count`` codes of 60 random bits, shown as ``XXXX-XXXX-XXXX``."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4)))
    return codes


def normalize_recovery_code(raw: str) -> str | None:
    """A typed recovery code in its one stored form (upper case, no spaces or dashes,
    O/I/L read as 0/1), or None when it cannot be one."""
    if len(raw) > 64:
        return None
    code = "".join(c for c in raw.upper() if c not in " -\t").translate(_TYPED_ALIASES)
    if len(code) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in code):
        return None
    return code


# --- the key and the sealed secret ------------------------------------------------------


class WeakMfaKey(ValueError):
    """``AUTHDEMO_MFA_KEY`` is not 32 random bytes; the message says how to make one."""


MFA_KEY_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def parse_mfa_key(raw: str) -> bytes:
    """32 bytes from a base64/base64url (43-44 characters) or hex (64) value; refuses
    anything shorter, malformed, or obviously not random."""
    value = raw.strip()
    key: bytes | None = None
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        key = bytes.fromhex(value)
    elif len(value) in (43, 44):
        try:
            key = base64.urlsafe_b64decode(
                value.replace("+", "-").replace("/", "_").rstrip("=") + "="
            )
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise WeakMfaKey(f"AUTHDEMO_MFA_KEY must be 32 random bytes, base64 or hex; {MFA_KEY_HINT}")
    if len(set(key)) < 16:  # 32 random bytes have ~28 distinct values; 16 is astronomically rare
        raise WeakMfaKey(f"AUTHDEMO_MFA_KEY is not random enough; {MFA_KEY_HINT}")
    return key


def parse_mfa_keys(raw: str) -> tuple[bytes, ...]:
    """``NEW[,OLD…]``: the first key seals, every one opens (for rotating keys)."""
    keys = tuple(parse_mfa_key(part) for part in raw.split(",") if part.strip())
    if not keys:
        raise WeakMfaKey(f"AUTHDEMO_MFA_KEY is empty; {MFA_KEY_HINT}")
    return keys


class SecretUnreadable(Exception):
    """A sealed secret that none of the configured keys opens (wrong key, or tampered)."""


class SecretBox:
    """Seals TOTP secrets with AES-256-GCM: ``v1:<key id>:<base64(nonce || ciphertext)>``.

    The user id is the associated data, so a sealed secret only opens on its own row.
    The key id (a digest of the key, never the key) tells which key sealed a secret,
    so a rotation can re-seal exactly those sealed under an older one."""

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._keys = {_key_id(k): AESGCM(k) for k in keys}
        self.key_id = _key_id(keys[0])

    def seal(self, user_id: int, secret: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._keys[self.key_id].encrypt(nonce, secret.encode("ascii"), _aad(user_id))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_SEAL_VERSION}:{self.key_id}:{payload}"

    def open(self, user_id: int, sealed: str) -> str:
        version, key_id, payload = [*sealed.split(":", 2), "", ""][:3]
        cipher = self._keys.get(key_id)
        if version != _SEAL_VERSION or cipher is None:
            raise SecretUnreadable("sealed under a key this server does not have")
        try:
            raw = base64.urlsafe_b64decode(payload)
            return cipher.decrypt(raw[:12], raw[12:], _aad(user_id)).decode("ascii")
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretUnreadable("does not open (tampered, or another user's)") from None

    def sealed_by_current_key(self, sealed: str) -> bool:
        return sealed.split(":", 2)[1:2] == [self.key_id]


def _aad(user_id: int) -> bytes:
    return f"authdemo totp secret of user {user_id}".encode("ascii")


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"authdemo mfa key id\x00" + key).hexdigest()[:12]
