from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta

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


def genuine(codec: TokenCodec, token: str, now: datetime, lifetime: timedelta) -> bool:
    return codec.recognise(token, now, lifetime) is not None


def minted_at(codec: TokenCodec, token: str, now: datetime, lifetime: timedelta) -> datetime | None:
    """When a genuine, unexpired token was minted (what ``recognise`` says); None else."""
    recognised = codec.recognise(token, now, lifetime)
    return None if recognised is None else recognised[1]


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
    assert genuine(codec, token, T0 + timedelta(hours=11), LIFETIME)
    assert not genuine(codec, token, T0 + LIFETIME, LIFETIME)


def test_a_token_is_the_documented_nonce_time_and_mac_so_cookies_outlive_upgrades() -> None:
    """nonce(32) || issued_at(4, big-endian) || HMAC-SHA-256(key, context || both)[:16],
    base64url without padding, checked with the standard library: a token minted by any
    version of this format stays genuine after an upgrade, and one we mint reads anywhere."""
    import base64
    import hmac

    key = b"k" * 32
    token = TokenCodec(key).mint(T0)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    body, mac = raw[:36], raw[36:]
    assert len(raw) == 52 and int.from_bytes(body[32:], "big") == int(T0.timestamp())
    assert mac == hmac.digest(key, b"authdemo session token v1\0" + body, "sha256")[:16]
    nonce = bytes(range(32))
    body = nonce + int(T0.timestamp()).to_bytes(4, "big")
    made = body + hmac.digest(key, b"authdemo session token v1\0" + body, "sha256")[:16]
    elsewhere = base64.urlsafe_b64encode(made).rstrip(b"=").decode()
    assert genuine(TokenCodec(key), elsewhere, T0, LIFETIME)


def test_a_token_from_another_key_is_not_genuine() -> None:
    token = TokenCodec(b"a" * 32).mint(T0)
    assert not genuine(TokenCodec(b"b" * 32), token, T0, LIFETIME)


@pytest.mark.parametrize("position", [0, 10, 45, TOKEN_LENGTH - 1])
def test_a_tampered_token_is_not_genuine(position: int) -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    flipped = "A" if token[position] != "A" else "B"
    forged = token[:position] + flipped + token[position + 1 :]
    assert not genuine(codec, forged, T0, LIFETIME)


@pytest.mark.parametrize(
    "value", ["", "x", "a" * TOKEN_LENGTH, "!" * TOKEN_LENGTH, "a" * (TOKEN_LENGTH + 1)]
)
def test_made_up_values_are_not_genuine(value: str) -> None:
    assert not genuine(TokenCodec(b"k" * 32), value, T0, LIFETIME)


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
    assert [v for v in variants if genuine(codec, v, T0, LIFETIME)] == []


@pytest.mark.parametrize(
    "key",
    [b"k" * 32, b"b" * 64, b"c" * 65, b"a much longer key than one block " * 3],
    ids=["short", "one block: padded", "longer: hashed first", "several blocks"],
)
def test_the_fast_hmac_equals_the_standard_one(key: bytes) -> None:
    import hashlib
    import hmac

    from authdemo.security import _HmacSha256

    for message in (b"", b"x", b"y" * 100):
        assert _HmacSha256(key).digest(message) == hmac.digest(key, message, "sha256")
        for prefix in (b"", b"context\0", b"z" * 70):
            expected = hmac.digest(key, prefix + message, "sha256")
            assert _HmacSha256(key).prefixed(prefix).digest(message) == expected
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


def test_sha256_takes_cpythons_builtin_implementation_not_openssls() -> None:
    import hashlib

    from authdemo.security import _builtin_sha256

    sha256 = _builtin_sha256()
    assert sha256 is not hashlib.sha256
    assert sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("failure", ["refused", "not linux"])
def test_a_refused_priority_change_does_not_stop_the_hashing_thread(
    monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    import os

    from authdemo.security import _lower_priority

    if failure == "refused":

        def refuse(*args: object) -> None:
            raise PermissionError("not allowed")

        monkeypatch.setattr(os, "setpriority", refuse)
    else:
        monkeypatch.delattr(os, "getpriority")
    _lower_priority()  # the thread hashes at its current priority instead


@pytest.mark.parametrize(
    "value", ["!" * TOKEN_LENGTH, "a" * (TOKEN_LENGTH - 1), "a" * (TOKEN_LENGTH + 1)]
)
def test_looks_like_token_needs_both_the_length_and_the_alphabet(value: str) -> None:
    assert looks_like_token("a" * TOKEN_LENGTH)
    assert not looks_like_token(value)


def test_a_ticket_is_32_random_bytes_in_base64url() -> None:
    from authdemo.security import new_ticket

    ticket = new_ticket()
    assert len(base64.urlsafe_b64decode(ticket + "=")) == 32
    assert new_ticket() != ticket


def test_issued_at_is_the_mint_time_of_a_genuine_token_only() -> None:
    codec = TokenCodec(b"k" * 32)
    assert codec.issued_at(codec.mint(T0)) == T0
    assert codec.issued_at(TokenCodec(b"o" * 32).mint(T0)) is None
    assert codec.issued_at("a" * TOKEN_LENGTH) is None


def test_a_token_from_a_clock_ahead_is_accepted_up_to_the_skew_allowance_inclusive() -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    assert minted_at(codec, token, T0 - timedelta(seconds=300), LIFETIME) == T0
    assert minted_at(codec, token, T0 - timedelta(seconds=301), LIFETIME) is None


async def test_argon2_hashes_carry_exactly_the_configured_parameters() -> None:
    # None of them passlib's defaults (t=3, p=1), so each must have been passed on.
    hasher = Argon2Hasher(Argon2Params(memory_kib=80, time_cost=4, parallelism=2), workers=1)
    try:
        hashed = await hasher.hash("correct horse")
    finally:
        hasher.close()
    assert hashed.startswith("$argon2id$v=19$m=80,t=4,p=2$")


def test_the_hashing_pool_has_the_workers_asked_for_or_one_per_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    params = Argon2Params(memory_kib=64, time_cost=1, parallelism=1)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    sizes = []
    for hasher in (Argon2Hasher(params, workers=3), Argon2Hasher(params)):
        sizes.append(hasher._pool._max_workers)
        hasher.close()
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one thread
    hasher = Argon2Hasher(params)
    sizes.append(hasher._pool._max_workers)
    hasher.close()
    assert sizes == [3, 5, 1]


class _SpyContext:
    """Wraps passlib's context: which thread ran each call, and with which arguments."""

    def __init__(self, context: object) -> None:
        self._context = context
        self.calls: list[tuple[str, str, tuple[object, ...]]] = []

    def _record(self, name: str, *args: object) -> object:
        import threading

        self.calls.append((name, threading.current_thread().name, args))
        return getattr(self._context, name)(*args)

    def hash(self, password: str) -> object:
        return self._record("hash", password)

    def verify_and_update(self, password: str, password_hash: str) -> object:
        return self._record("verify_and_update", password, password_hash)


async def test_hashes_and_verifies_run_on_the_named_hashing_threads() -> None:
    hasher = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1), workers=1)
    spy = _SpyContext(hasher._context)
    hasher._context = spy  # type: ignore[assignment]
    try:
        hashed = await hasher.hash("pw")
        await hasher.verify("pw", hashed)
    finally:
        hasher.close()
    assert [(name, thread.startswith("argon2_")) for name, thread, _ in spy.calls] == [
        ("hash", True),
        ("verify_and_update", True),
    ]


async def test_dummy_verify_spends_a_real_verify_of_the_guess_against_an_argon2_hash() -> None:
    hasher = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1), workers=1)
    spy = _SpyContext(hasher._context)
    hasher._context = spy  # type: ignore[assignment]
    try:
        await hasher.dummy_verify("guess")
        await hasher.dummy_verify("another guess")
    finally:
        hasher.close()
    verifies = [args for name, _, args in spy.calls if name == "verify_and_update"]
    hashes = [args for name, _, args in spy.calls if name == "hash"]
    assert len(hashes) == 1  # the dummy hash is made once, then reused
    dummy = hasher._dummy_hash
    assert dummy is not None and dummy.startswith("$argon2id$")
    assert verifies == [("guess", dummy), ("another guess", dummy)]


def test_closing_the_hasher_cancels_queued_hashes_without_waiting_for_the_running_one() -> None:
    import threading

    hasher = Argon2Hasher(Argon2Params(memory_kib=64, time_cost=1, parallelism=1), workers=1)
    running = threading.Event()
    release = threading.Event()
    safety = threading.Timer(5, release.set)  # a broken close() waits, then fails below
    safety.start()
    try:
        busy = hasher._pool.submit(lambda: (running.set(), release.wait()))
        running.wait()
        queued = hasher._pool.submit(lambda: None)
        hasher.close()
        assert not release.is_set(), "close() waited for the running hash"
        assert queued.cancelled()
    finally:
        release.set()
        safety.cancel()
    busy.result()


def test_a_token_key_shorter_than_32_bytes_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"^token key must be at least 32 bytes$"):
        TokenCodec(b"k" * 31)
    TokenCodec(b"k" * 32)  # the shortest key accepted


def test_tokens_minted_after_2038_keep_their_time() -> None:
    from datetime import UTC, datetime

    later = datetime(2040, 1, 1, tzinfo=UTC)  # past a signed 32-bit count of seconds
    codec = TokenCodec(b"k" * 32)
    assert minted_at(codec, codec.mint(later), later, LIFETIME) == later


def test_token_hashes_of_values_outside_ascii_are_hashes_not_errors() -> None:
    import hashlib

    # A forged cookie may hold anything; its lookup must not raise.
    assert hash_token("tok\u00e9n") == hashlib.sha256(b"tok?n").hexdigest()


def test_typed_names_are_digested_even_with_lone_surrogates() -> None:
    import hmac

    codec = TokenCodec(b"k" * 32)
    name = "caf\u00e9\ud800"  # what a browser may send for broken input
    expected = hmac.digest(
        b"k" * 32, b"authdemo typed name v1\0" + name.encode("utf-8", "surrogatepass"), "sha256"
    )
    assert codec.name_digest(name) == expected.hex()


def test_recovery_digests_are_keyed_bound_to_the_user_and_in_their_own_context() -> None:
    import hmac

    codec = TokenCodec(b"k" * 32)
    expected = hmac.digest(b"k" * 32, b"authdemo recovery code\x001:abcd-efgh", "sha256").hex()
    assert codec.recovery_digest(1, "abcd-efgh") == expected
    assert codec.recovery_digest(2, "abcd-efgh") != expected
    assert TokenCodec(b"o" * 32).recovery_digest(1, "abcd-efgh") != expected


def test_a_new_secret_key_is_32_random_bytes() -> None:
    from authdemo.security import new_secret_key

    key = new_secret_key()
    assert isinstance(key, bytes) and len(key) == 32
    assert new_secret_key() != key


def test_an_unreachable_token_hash_is_a_fresh_sha256_hex_each_time() -> None:
    import re

    from authdemo.security import unreachable_token_hash

    first = unreachable_token_hash()
    assert re.fullmatch("[0-9a-f]{64}", first)
    assert unreachable_token_hash() != first


def test_email_code_digests_are_keyed_bound_to_user_and_purpose_and_in_their_own_context() -> None:
    import hmac

    codec = TokenCodec(b"k" * 32)
    message = b"authdemo e-mail code v1\x001:reset:123456"
    expected = hmac.digest(b"k" * 32, message, "sha256").hex()
    assert codec.email_code_digest(1, "reset", "123456") == expected
    assert codec.email_code_digest(2, "reset", "123456") != expected
    assert codec.email_code_digest(1, "verify", "123456") != expected
    assert TokenCodec(b"o" * 32).email_code_digest(1, "reset", "123456") != expected
    assert codec.recovery_digest(1, "reset:123456") != expected


def test_recognise_gives_a_genuine_tokens_hash_and_mint_time_and_nothing_for_others() -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    for _ in range(2):  # first the MAC is checked; then the answer is remembered
        assert codec.recognise(token, T0 + timedelta(hours=11), LIFETIME) == (
            hash_token(token),
            T0,
        )
    assert codec.recognise(TokenCodec(b"o" * 32).mint(T0), T0, LIFETIME) is None
    assert codec.recognise("a" * TOKEN_LENGTH, T0, LIFETIME) is None
    assert codec.recognise(token[:-1] + "B", T0, LIFETIME) is None  # a non-canonical spelling


def test_a_remembered_token_still_expires_and_a_forged_one_is_never_remembered() -> None:
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    assert codec.recognise(token, T0, LIFETIME) is not None
    # Remembered, but its age is checked on every call: past its lifetime, or from a
    # clock too far ahead, it is nothing.
    assert codec.recognise(token, T0 + LIFETIME, LIFETIME) is None
    assert codec.recognise(token, T0 - timedelta(seconds=301), LIFETIME) is None
    assert codec.recognise(token, T0 + timedelta(hours=1), LIFETIME) is not None
    forged = TokenCodec(b"o" * 32).mint(T0)
    for _ in range(2):
        assert codec.recognise(forged, T0, LIFETIME) is None


def test_a_remembered_token_is_recognised_without_its_mac_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What remembering is for: a returning cookie costs no MAC and no hash."""
    codec = TokenCodec(b"k" * 32)
    token = codec.mint(T0)
    assert codec.recognise(token, T0, LIFETIME) == (hash_token(token), T0)

    def checked_again(_token: str) -> int | None:
        raise AssertionError("the MAC of a remembered token was checked again")

    monkeypatch.setattr(codec, "_seconds", checked_again)
    assert codec.recognise(token, T0 + timedelta(hours=1), LIFETIME) == (hash_token(token), T0)


def test_a_codec_remembers_a_bounded_number_of_tokens_the_oldest_forgotten_first() -> None:
    from authdemo import security

    codec = TokenCodec(b"k" * 32)
    tokens = [codec.mint(T0) for _ in range(security.KNOWN_TOKENS + 1)]
    for token in tokens:
        assert codec.recognise(token, T0, LIFETIME) == (hash_token(token), T0)
    remembered = codec._known
    assert len(remembered) == security.KNOWN_TOKENS
    assert tokens[0] not in remembered and tokens[1] in remembered and tokens[-1] in remembered
    assert codec.recognise(tokens[0], T0, LIFETIME) == (hash_token(tokens[0]), T0)  # again
