from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sanic import Sanic
from sanic.router import Router
from sqlalchemy.engine import make_url

from authdemo.config import Argon2Params, Settings
from authdemo.domain import SessionPolicy
from authdemo.mfa import SecretBox
from authdemo.permissions import PermissionRegistry
from authdemo.security import Argon2Hasher, TokenCodec
from authdemo.service import AuthService
from tests.support.db import copy_database, migrate, sqlite_url
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus
from tests.support.pg import SKIP_REASON as PG_SKIP_REASON
from tests.support.pg import PostgresDatabases, admin_url
from tests.support.pg import app_url as pg_app_url
from tests.support.pgbouncer import SKIP_REASON as PGBOUNCER_SKIP_REASON
from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import binary as pgbouncer_binary

Sanic.test_mode = True  # lets the test suite build many apps in one process

# Full garbage collections between tests, never during one (see the module).
pytest_plugins = ["tests.support.collector"]


# Suites that run against every backend; the others (unit, cli) use SQLite only.
BOTH_BACKENDS = ("/integration/", "/web/", "/browser/", "/scale/", "/packaging/")
# PostgreSQL suites that run a third time through PgBouncer in transaction mode: sign-in,
# revocation and throttling under races, session data, views signed out elsewhere, and
# the writes that wait for the next statement (sent together, one statement).
THROUGH_PGBOUNCER = (
    "/integration/test_deferred_writes.py",
    "/web/test_login_flow.py",
    "/integration/test_revocation_races.py",
    "/web/test_session_data.py",
    "/web/test_lifecycle.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: checks something only SQLite has (pragmas, file locks)"
    )
    config.addinivalue_line(
        "markers", "postgresql_only: checks something only a database server has"
    )


# Suites whose UI-touching tests (those that ask for ``ui_name``, directly or through a
# fixture such as the web suite's ``app``) run on both UI libraries.
BOTH_UI_LIBRARIES = ("/web/", "/browser/", "/scale/")
UI_LIBRARIES = ("idom", "reactpy")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ui_name" in metafunc.fixturenames:
        path = str(metafunc.definition.path)
        both = any(part in path for part in BOTH_UI_LIBRARIES)
        metafunc.parametrize("ui_name", UI_LIBRARIES if both else ("idom",), indirect=True)
    if "db_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("postgresql_only"):
        metafunc.parametrize("db_backend", ["postgresql"], indirect=True)
        return
    backends = ["sqlite"]
    path = str(metafunc.definition.path)
    if any(part in path for part in BOTH_BACKENDS) and not metafunc.definition.get_closest_marker(
        "sqlite_only"
    ):
        backends.append("postgresql")
        if any(part in path for part in THROUGH_PGBOUNCER):
            backends.append("pgbouncer")
    metafunc.parametrize("db_backend", backends, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: the fast suites report first, and Playwright's event loop
    never shares the process with the async tests."""
    items.sort(key=lambda item: "/browser/" in str(item.path))


# pytest-xdist (``-n auto`` in pyproject.toml's addopts) hands out single tests, except
# the modules below, each run whole by one worker: a browser module launches Chromium once
# (its module fixture) and keeps Playwright's event loop away from async tests of other
# modules; the others build something costly once per module (the wheel and a virtualenv,
# a server fed Hypothesis examples, a mypy cache).
ONE_WORKER_PER_MODULE = (
    "tests/browser/",
    "tests/packaging/test_wheel.py",
    "tests/scale/test_hostile_input.py",
    "tests/test_public_api.py",
)


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs as a whole: the module of ``nodeid`` when it is one of
    ``ONE_WORKER_PER_MODULE``, else the test alone."""
    module = nodeid.split("::", 1)[0]
    return module if module.startswith(ONE_WORKER_PER_MODULE) else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """xdist's ``loadscope`` with our units (its own ``xdist_group`` markers with
    ``--dist loadgroup`` did not keep a group together under pytest 9). Modules first,
    the largest first (loadscope's reordering), then single tests in collection order.
    An explicit ``--dist`` other than the default ``load`` is left to xdist."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)  # type: ignore[arg-type]


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
def mfa_box() -> SecretBox | None:
    """No two-factor key. A module that needs one imports ``tests.support.mfa.mfa_box``,
    which overrides this for its tests."""
    return None


@pytest.fixture
def permissions() -> PermissionRegistry | None:
    """The built-in ``authdemo:admin`` only. A module whose tests check an app's own
    permissions overrides this with what that app declares."""
    return None


@pytest.fixture
def service(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
    mfa_box: SecretBox | None,
    permissions: PermissionRegistry | None,
) -> AuthService:
    return AuthService(
        store, hasher, tokens, clock, policy, bus, mfa_box=mfa_box, permissions=permissions
    )


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases | None]:
    if admin_url() is None:
        yield None
        return
    databases = PostgresDatabases()
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """One PgBouncer (transaction mode) for the run, in front of the test PostgreSQL."""
    url = admin_url()
    assert url is not None
    bouncer = PgBouncer(url).start()
    yield bouncer
    bouncer.close()


@pytest.fixture
def ui_name(request: pytest.FixtureRequest) -> str:
    """The UI library the test's app renders with: "idom" or "reactpy"."""
    return str(getattr(request, "param", "idom"))


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    backend = str(getattr(request, "param", "sqlite"))
    if backend in ("postgresql", "pgbouncer") and admin_url() is None:
        pytest.skip(PG_SKIP_REASON)
    if backend == "pgbouncer" and pgbouncer_binary() is None:
        pytest.skip(PGBOUNCER_SKIP_REASON)
    return backend


@pytest.fixture
def db_url(
    db_backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres: PostgresDatabases | None,
) -> Iterator[str]:
    """A fresh database at the alembic head: a SQLite file, or a PostgreSQL database."""
    if db_backend == "sqlite":
        template = request.getfixturevalue("migrated_template")
        yield copy_database(template, tmp_path / "authdemo.db")
        return
    assert postgres is not None
    name = postgres.fresh()
    if db_backend == "pgbouncer":
        yield request.getfixturevalue("pgbouncer").url(name)
    else:
        yield pg_app_url(name)
    postgres.drop(name)


@pytest.fixture
def empty_db_url(
    db_backend: str, tmp_path: Path, postgres: PostgresDatabases | None
) -> Iterator[str]:
    """A database with no tables at all (for migration tests)."""
    if db_backend == "sqlite":
        yield sqlite_url(tmp_path / "empty.db")
        return
    assert postgres is not None
    name = postgres.fresh(migrated=False)
    yield pg_app_url(name)
    postgres.drop(name)


@pytest.fixture
def settings(db_url: str, db_backend: str) -> Settings:
    if db_backend == "pgbouncer":
        # Queries through PgBouncer, a connection per unit of work; the listener direct.
        direct = pg_app_url(make_url(db_url).database or "")
        return Settings(database_url=db_url, listen_url=direct, db_pool=None)
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


@pytest.fixture(autouse=True)
def _apps_released() -> Iterator[None]:
    """Let every Sanic app a test built be freed when it ends.

    Sanic keeps each app in a class-wide registry, and its router's ``lru_cache``s (on
    the class, keyed by the router) keep up to 1,024 more. A worker builds thousands of
    apps over the suite; kept, they grew its heap to 3.2 million objects, and a full
    garbage collection of it stopped the worker for up to 2.4 s (see
    ``tests/support/collector.py``).
    """
    before = set(Sanic._app_registry)
    yield
    for name in set(Sanic._app_registry) - before:
        del Sanic._app_registry[name]
    Router.get.cache_clear()
    Router.find_route_by_view_name.cache_clear()
