"""Session tokens and password hashing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import importlib
import os
import re
import secrets
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from passlib.context import CryptContext

from .config import Argon2Params

_NONCE_BYTES = 32  # 256 bits from the operating system's CSPRNG (os.urandom)
_SECONDS = struct.Struct(">I")
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64 → base64url
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_MAC_BYTES = 16
_TOKEN_BYTES = _NONCE_BYTES + 4 + _MAC_BYTES
TOKEN_LENGTH = len(base64.urlsafe_b64encode(b"\0" * _TOKEN_BYTES).rstrip(b"="))
_TOKEN_RE = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")
_MAC_CONTEXT = b"authdemo session token v1\0"
_NAME_CONTEXT = b"authdemo typed name v1\0"
_RECOVERY_CONTEXT = b"authdemo recovery code\x00"
_EMAIL_CODE_CONTEXT = b"authdemo e-mail code v1\0"
_PADDING = b"=" * (-TOKEN_LENGTH % 4)
_CANONICAL_LAST = frozenset("AQgw")  # base64url digits whose low 4 bits are zero
_CLOCK_SKEW = 300.0


# SHA-256 runs on every page view (a new token's MAC, a returning cookie's hash). Through
# OpenSSL 3 (hashlib's default) each call cost 5-13 µs under load on our benchmark
# machine (provider look-ups and locking) against ~1 µs for CPython's built-in
# implementation, so the hot path uses the latter where it exists.
def _builtin_sha256() -> Callable[..., Any]:
    for module in ("_sha2", "_sha256"):  # CPython 3.12+, 3.11
        try:
            return importlib.import_module(module).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256  # pragma: no cover - a Python without the built-in module


_sha256 = _builtin_sha256()


class _HmacSha256:
    """HMAC-SHA-256 (RFC 2104) with the key's pads hashed once; same bytes as hmac.digest."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = _sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = _sha256(bytes(b ^ 0x36 for b in key))
        self._outer = _sha256(bytes(b ^ 0x5C for b in key))

    def prefixed(self, prefix: bytes) -> _HmacSha256:
        """The same key with ``prefix`` hashed in once: ``prefixed(p).digest(m)`` equals
        ``digest(p + m)``, without hashing ``p`` or building ``p + m`` on each call."""
        twin = object.__new__(_HmacSha256)
        twin._inner = self._inner.copy()
        twin._inner.update(prefix)
        twin._outer = self._outer
        return twin

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return bytes(outer.digest())


def hash_token(token: str) -> str:
    """SHA-256 of a cookie token or ticket, hex; the only form that is stored."""
    return str(_sha256(token.encode("ascii", "replace")).hexdigest())


def looks_like_token(value: str) -> bool:
    """Shape check only: right length and alphabet."""
    return len(value) == TOKEN_LENGTH and _TOKEN_RE.match(value) is not None


KNOWN_TOKENS = 4096
"""Genuine tokens a ``TokenCodec`` remembers (about 1 MiB): a returning browser's cookie
is recognised without its MAC and hash being computed again."""


def _unexpired(seconds: int | None, now: datetime, lifetime: timedelta) -> datetime | None:
    """The mint time of a token minted at ``seconds`` if it is not older than
    ``lifetime`` (nor from the future, beyond a small skew); else None."""
    if seconds is None:
        return None
    age = now.timestamp() - seconds
    # A small allowance for clocks of several hosts that disagree a little.
    if -_CLOCK_SKEW <= age < lifetime.total_seconds():
        return datetime.fromtimestamp(seconds, UTC)
    return None


class TokenCodec:
    """Mints session tokens and recognises the ones this deployment minted.

    A token is ``nonce(32) || issued_at(4) || HMAC(key, nonce || issued_at)[:16]``,
    base64url. The MAC lets a server tell "an anonymous visitor we issued a token to"
    from "a value somebody made up" without a database row per anonymous visitor.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("token key must be at least 32 bytes")
        self._hmac = _HmacSha256(key)
        self._token_mac = self._hmac.prefixed(_MAC_CONTEXT)
        self._known: dict[str, tuple[str, int]] = {}
        """Tokens whose MAC checked out: token → (its hash, its mint time)."""

    def mint(self, now: datetime) -> str:
        # Every first visit mints one, so no helper calls beyond the MAC's: os.urandom is
        # what `secrets.token_bytes` calls.
        body = os.urandom(_NONCE_BYTES) + _SECONDS.pack(int(now.timestamp()))
        raw = body + self._token_mac.digest(body)[:_MAC_BYTES]
        return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()

    def _seconds(self, token: str) -> int | None:
        """The mint time (Unix seconds) of a genuine token; None for anything else."""
        # Canonical form only: the last character carries 4 unused bits that must be 0,
        # so that no variant spelling of a token decodes to the same bytes.
        if not looks_like_token(token) or token[-1] not in _CANONICAL_LAST:
            return None
        try:  # base64url → base64, then binascii (what base64.urlsafe_b64decode does)
            raw = binascii.a2b_base64(token.encode("ascii").translate(_FROM_URLSAFE) + _PADDING)
        except (binascii.Error, ValueError):
            return None
        body = raw[:-_MAC_BYTES]
        if len(raw) != _TOKEN_BYTES or not hmac.compare_digest(raw[-_MAC_BYTES:], self._mac(body)):
            return None
        return int.from_bytes(body[_NONCE_BYTES:], "big")

    def issued_at(self, token: str) -> datetime | None:
        """When a genuine token was minted, or None for anything we did not mint."""
        seconds = self._seconds(token)
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)

    def recognise(
        self, token: str, now: datetime, lifetime: timedelta
    ) -> tuple[str, datetime] | None:
        """``(hash_token(token), mint time)`` of a genuine, unexpired token; None for
        anything else. What a page view or a connect asks of its cookie.

        A returning browser presents the same cookie on every request, so the answer for
        a token whose MAC checked out is kept (``KNOWN_TOKENS`` of them, the oldest
        forgotten first). Only what the token itself determines is kept: its hash and
        its mint time, never whether it is still usable. Its age is checked on every
        call, and a value that fails the MAC is never kept.
        """
        known = self._known.get(token)
        if known is None:
            seconds = self._seconds(token)
            if seconds is None:
                return None
            known = (hash_token(token), seconds)
            if len(self._known) >= KNOWN_TOKENS:
                del self._known[next(iter(self._known))]
            self._known[token] = known
        issued = _unexpired(known[1], now, lifetime)
        return None if issued is None else (known[0], issued)

    def _mac(self, body: bytes) -> bytes:
        return self._token_mac.digest(body)[:_MAC_BYTES]

    def name_digest(self, name: str) -> str:
        """HMAC-SHA-256 (hex) of a name somebody typed, under this deployment's key.

        What is kept instead of text that may be a password typed into the wrong box:
        the same name always gives the same digest (repeated guesses group together),
        and without the key nobody can test guesses against it. Its own context keeps
        it from ever standing in for a token's MAC.
        """
        message = _NAME_CONTEXT + name.encode("utf-8", "surrogatepass")
        return self._hmac.digest(message).hex()

    def recovery_digest(self, user_id: int, code: str) -> str:
        """HMAC-SHA-256 (hex) of a normalised recovery code of ``user_id``: what is stored
        instead of the code. Bound to the user, and its own context."""
        message = _RECOVERY_CONTEXT + f"{user_id}:{code}".encode("ascii")
        return self._hmac.digest(message).hex()

    def email_code_digest(self, user_id: int, purpose: str, code: str) -> str:
        """HMAC-SHA-256 (hex) of a mailed code: what is stored instead of it. Bound to
        the user and the purpose (a reset code never verifies an address), its own
        context."""
        message = _EMAIL_CODE_CONTEXT + f"{user_id}:{purpose}:{code}".encode("ascii")
        return self._hmac.digest(message).hex()


def new_ticket() -> str:
    return secrets.token_urlsafe(32)


def new_secret_key() -> bytes:
    return secrets.token_bytes(32)


def unreachable_token_hash() -> str:
    """A token hash nobody holds the token for: a session waiting for its cookie."""
    return hash_token(secrets.token_urlsafe(32))


HASHING_NICENESS = 10
MAX_NICENESS = 19  # Linux's lowest priority; setpriority clamps higher values to it


def _lower_priority() -> None:
    """Hash at a lower CPU priority than the event loop (Linux schedules threads one by
    one): sign-ins use every core that page views leave idle, without slowing them."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        # Relative to the thread's own niceness: under `nice` (or a service manager's
        # Nice=) an absolute value could put hashing *above* the event loop.
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness, MAX_NICENESS))


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
            max_workers=workers or os.cpu_count() or 1,
            thread_name_prefix="argon2",
            initializer=_lower_priority,
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
