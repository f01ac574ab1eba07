from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest

from authdemo.config import Argon2Params
from authdemo.security import (
    TOKEN_LENGTH,
    Argon2Hasher,
    TokenCodec,
    hash_token,
    looks_like_token,
)
from tests.support.fakes import T0

LIFETIME = timedelta(hours=12)


def test_tokens_carry_at_least_256_random_bits_and_are_cookie_safe() -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    assert len(token) == TOKEN_LENGTH
    assert looks_like_token(token)
    assert len(base64.urlsafe_b64decode(token + "==")) * 8 >= 256 + 128
    assert codec.mint(T0) != token


def test_a_minted_token_is_genuine_within_its_lifetime_only() -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    assert codec.is_genuine(token, T0 + timedelta(hours=11), LIFETIME)
    assert not codec.is_genuine(token, T0 + LIFETIME, LIFETIME)


def test_a_token_from_another_key_is_not_genuine() -> None:
    token = TokenCodec(b"a" * 32).mint(T0)
    assert not TokenCodec(b"b" * 32).is_genuine(token, T0, LIFETIME)


@pytest.mark.parametrize("position", [0, 10, 45, TOKEN_LENGTH - 1])
def test_a_tampered_token_is_not_genuine(position: int) -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    flipped = "A" if token[position] != "A" else "B"
    forged = token[:position] + flipped + token[position + 1 :]
    assert not codec.is_genuine(forged, T0, LIFETIME)


@pytest.mark.parametrize(
    "value", ["", "x", "a" * TOKEN_LENGTH, "!" * TOKEN_LENGTH, "a" * (TOKEN_LENGTH + 1)]
)
def test_made_up_values_are_not_genuine(value: str) -> None:
    assert not TokenCodec(b"k" * 32).is_genuine(value, T0, LIFETIME)


def test_token_hashes_are_sha256_hex_and_never_the_token() -> None:
    token = TokenCodec(b"k" * 32).mint(T0)
    digest = hash_token(token)
    assert len(digest) == 64 and token not in digest
    assert digest == hash_token(token)


async def test_argon2id_hashes_verify_and_flag_outdated_parameters() -> None:
    weak = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1))
    strong = Argon2Hasher(Argon2Params(memory_kib=128, time_cost=1, parallelism=1))
    try:
        hashed = await weak.hash("correct horse")
        assert hashed.startswith("$argon2id$")
        assert await weak.verify("correct horse", hashed) == (True, None)
        assert (await weak.verify("wrong", hashed))[0] is False
        ok, upgraded = await strong.verify("correct horse", hashed)
        assert ok and upgraded is not None and "m=128" in upgraded
    finally:
        weak.close()
        strong.close()


async def test_an_unparseable_stored_hash_never_matches() -> None:
    hasher = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1))
    try:
        assert await hasher.verify("anything", "not a hash") == (False, None)
    finally:
        hasher.close()


def test_the_default_argon2_parameters_meet_owasp_minimum() -> None:
    params = Argon2Params()
    assert (params.memory_kib, params.time_cost, params.parallelism) >= (19456, 2, 1)
    assert params.memory_kib >= 19456 and params.time_cost >= 2


def test_only_the_canonical_spelling_of_a_token_is_genuine() -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [token[:-1] + c for c in alphabet if c != token[-1]]
    assert [v for v in variants if codec.is_genuine(v, T0, LIFETIME)] == []


@pytest.mark.parametrize("key", [b"k" * 32, b"a much longer key than one block " * 3])
def test_the_fast_hmac_equals_the_standard_one(key: bytes) -> None:
    import hashlib
    import hmac

    from authdemo.security import _HmacSha256

    for message in (b"", b"x", b"y" * 100):
        assert _HmacSha256(key).digest(message) == hmac.digest(key, message, "sha256")
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


async def test_hashing_threads_run_at_a_lower_priority_than_the_event_loop() -> None:
    import os
    import threading

    from authdemo.security import HASHING_NICENESS, MAX_NICENESS

    hasher = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1), workers=1)
    try:
        loop = asyncio.get_running_loop()
        niceness = await loop.run_in_executor(
            hasher._pool, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        )
    finally:
        hasher.close()
    assert niceness == min(os.getpriority(os.PRIO_PROCESS, 0) + HASHING_NICENESS, MAX_NICENESS)


async def test_hashing_threads_stay_below_the_event_loop_when_the_server_runs_niced() -> None:
    """Relative, not absolute: a server started under `nice` keeps hashing below its loop."""
    import os
    import threading

    from authdemo.security import HASHING_NICENESS, MAX_NICENESS

    loop_niceness = os.getpriority(os.PRIO_PROCESS, 0)
    if loop_niceness + 1 > MAX_NICENESS:
        pytest.skip("already at the lowest priority")
    result: list[int] = []

    def in_a_niced_thread() -> None:
        # A thread of a process started one step nicer than this one creates the pool.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), loop_niceness + 1)
        hasher = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1), workers=1)
        try:
            result.append(
                hasher._pool.submit(
                    lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
                ).result()
            )
        finally:
            hasher.close()

    thread = threading.Thread(target=in_a_niced_thread)
    thread.start()
    thread.join()
    assert result == [min(loop_niceness + 1 + HASHING_NICENESS, MAX_NICENESS)]
