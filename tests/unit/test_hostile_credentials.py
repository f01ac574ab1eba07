"""Property-based: any username and password give a result or a clear, expected error."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from authdemo.domain import (
    PASSWORD_MAX,
    ClientInfo,
    InvalidCredentials,
    InvalidPassword,
    InvalidUsername,
    SessionPolicy,
    UsernameTaken,
    username_key,
)
from authdemo.security import TokenCodec
from authdemo.service import AuthService
from tests.support.fakes import BROWSER, FakeClock, FakeHasher, FakeStore, RecordingBus

TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=80),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            " alice ",
            "\uff21\uff2c\uff29\uff23\uff25",
            "\u200b",
            "x" * 1_000_000,
        ]
    ),
)


def fresh() -> tuple[AuthService, FakeHasher]:
    hasher = FakeHasher()
    service = AuthService(
        FakeStore(), hasher, TokenCodec(b"k" * 32), FakeClock(), SessionPolicy(), RecordingBus()
    )
    return service, hasher


@settings(max_examples=300, deadline=None)
@given(username=TEXT, password=TEXT)
def test_creating_a_user_succeeds_or_says_clearly_why_not(username: str, password: str) -> None:
    service, hasher = fresh()

    async def attempt() -> None:
        try:
            user = await service.create_user(username, password)
        except (InvalidUsername, InvalidPassword) as refused:
            assert str(refused) and len(str(refused)) < 200
            if len(password) > PASSWORD_MAX:
                assert hasher.hash_calls == 0  # refused before any hashing
            return
        except UsernameTaken:  # pragma: no cover - a fresh store has no users
            raise
        assert user.username == user.username.strip()

    asyncio.run(attempt())


@settings(max_examples=300, deadline=None)
@given(username=TEXT, password=TEXT)
def test_signing_in_with_anything_is_the_generic_refusal(username: str, password: str) -> None:
    service, hasher = fresh()

    async def attempt() -> None:
        await service.create_user("alice", "correct horse")
        try:
            await service.login(BROWSER, username, password, ClientInfo("203.0.113.7", "x"))
        except InvalidCredentials as refused:
            assert str(refused).startswith("Incorrect username or password.")
            if len(password) > PASSWORD_MAX or not password:
                assert hasher.verify_calls + hasher.dummy_calls == 0
        else:
            assert username_key(username) == "alice" and password == "correct horse"

    asyncio.run(attempt())
