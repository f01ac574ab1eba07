from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sanic import Sanic

from authdemo.config import Argon2Params, Settings
from authdemo.domain import SessionPolicy
from authdemo.security import Argon2Hasher, TokenCodec
from authdemo.service import AuthService
from tests.support.db import copy_database, migrate, sqlite_url
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus

Sanic.test_mode = True  # lets the test suite build many apps in one process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: the fast suites report first, and Playwright's event loop
    never shares the process with the async tests."""
    items.sort(key=lambda item: "/browser/" in str(item.path))


CHEAP_ARGON2 = Argon2Params(memory_kib=64, time_cost=1, parallelism=1)


def cheap_hasher(_: Settings) -> Argon2Hasher:
    """Real argon2id, at a cost that keeps the suite fast."""
    return Argon2Hasher(CHEAP_ARGON2, workers=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def policy() -> SessionPolicy:
    return SessionPolicy()


@pytest.fixture
def tokens() -> TokenCodec:
    return TokenCodec(b"k" * 32)


@pytest.fixture
def service(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
) -> AuthService:
    return AuthService(store, hasher, tokens, clock, policy, bus)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture
def db_url(migrated_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite file at the alembic head."""
    return copy_database(migrated_template, tmp_path / "authdemo.db")


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url)


@pytest.fixture
async def sql_uow(db_url: str) -> AsyncIterator[object]:
    from authdemo.db.engine import create_engine
    from authdemo.db.uow import SqlUnitOfWorkFactory

    engine = create_engine(db_url)
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        await engine.dispose()
