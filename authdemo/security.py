"""Session tokens and password hashing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

from passlib.context import CryptContext

from .config import Argon2Params

_NONCE_BYTES = 32  # 256 bits from `secrets`
_MAC_BYTES = 16
_TOKEN_BYTES = _NONCE_BYTES + 4 + _MAC_BYTES
TOKEN_LENGTH = len(base64.urlsafe_b64encode(b"\0" * _TOKEN_BYTES).rstrip(b"="))
_TOKEN_RE = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")
_MAC_CONTEXT = b"authdemo session token v1\0"


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hash_token(token: str) -> str:
    """SHA-256 of a cookie token or ticket, hex; the only form that is stored."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def looks_like_token(value: str) -> bool:
    """Shape check only: right length and alphabet."""
    return len(value) == TOKEN_LENGTH and _TOKEN_RE.match(value) is not None


class TokenCodec:
    """Mints session tokens and recognises the ones this deployment minted.

    A token is ``nonce(32) || issued_at(4) || HMAC(key, nonce || issued_at)[:16]``,
    base64url. The MAC lets a server tell "an anonymous visitor we issued a token to"
    from "a value somebody made up" without a database row per anonymous visitor.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("token key must be at least 32 bytes")
        self._key = key

    def mint(self, now: datetime) -> str:
        body = secrets.token_bytes(_NONCE_BYTES) + struct.pack(">I", int(now.timestamp()))
        return _encode(body + self._mac(body))

    def issued_at(self, token: str) -> datetime | None:
        """When a genuine token was minted, or None for anything we did not mint."""
        if not looks_like_token(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        # Canonical form only: the last character carries 2 unused bits, and a variant
        # that decodes to the same bytes must not count as a second, distinct token.
        if len(raw) != _TOKEN_BYTES or _encode(raw) != token:
            return None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        (seconds,) = struct.unpack(">I", body[_NONCE_BYTES:])
        return datetime.fromtimestamp(seconds, UTC)

    def valid_since(self, token: str, now: datetime, lifetime: timedelta) -> datetime | None:
        """When a genuine, unexpired token was minted; None for anything else."""
        issued = self.issued_at(token)
        # A small allowance for clocks of several hosts that disagree a little.
        if issued is not None and issued - timedelta(minutes=5) <= now < issued + lifetime:
            return issued
        return None

    def is_genuine(self, token: str, now: datetime, lifetime: timedelta) -> bool:
        return self.valid_since(token, now, lifetime) is not None

    def _mac(self, body: bytes) -> bytes:
        return hmac.digest(self._key, _MAC_CONTEXT + body, "sha256")[:_MAC_BYTES]


def new_ticket() -> str:
    return secrets.token_urlsafe(32)


def new_secret_key() -> bytes:
    return secrets.token_bytes(32)


def unreachable_token_hash() -> str:
    """A token hash nobody holds the token for: a session waiting for its cookie."""
    return hash_token(secrets.token_urlsafe(32))


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Return (matches, new hash when the stored one uses outdated parameters)."""
        ...

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of a verify on a user that does not exist."""
        ...

    def close(self) -> None: ...


class Argon2Hasher:
    """argon2id through passlib's CryptContext, run on a small pool of threads.

    argon2-cffi releases the GIL while hashing, so the pool's threads hash in parallel
    and the event loop keeps serving requests.
    """

    def __init__(self, params: Argon2Params, workers: int = 0) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=params.memory_kib,
            argon2__rounds=params.time_cost,
            argon2__parallelism=params.parallelism,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="argon2"
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        result: str = await loop.run_in_executor(self._pool, self._context.hash, password)
        return result

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        loop = asyncio.get_running_loop()
        try:
            ok, new_hash = await loop.run_in_executor(
                self._pool, self._context.verify_and_update, password, password_hash
            )
        except (ValueError, TypeError):  # unparseable stored hash: never a match
            return False, None
        return bool(ok), new_hash

    async def dummy_verify(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
