"""The connection budget ``authdemo run`` checks at start: does one more host fit?"""

from __future__ import annotations

from authdemo.config import DEFAULT_POOL
from authdemo.db.budget import ConnectionBudget, pool_limit


def budget(**overrides: object) -> ConnectionBudget:
    values: dict[str, object] = {
        "workers": 4,
        "pool": pool_limit(DEFAULT_POOL),
        "pooler": False,
        "hosts": 1,
        "pooled": 0,
        "others": 0,
        "max_connections": 100,
        "reserved": 3,
    }
    values.update(overrides)
    return ConnectionBudget(**values)  # type: ignore[arg-type]


def test_a_host_straight_to_postgresql_counts_its_listener_and_full_pools() -> None:
    assert pool_limit(DEFAULT_POOL) == 15  # SQLAlchemy: 5, and 10 more in a burst
    one = budget()
    assert one.per_host == 1 + 4 * 15
    assert one.needed == 61 and one.available == 97
    assert one.warning() is None


def test_the_second_default_host_does_not_fit_a_default_postgresql() -> None:
    line = budget(hosts=2).warning()
    assert line is not None and "\n" not in line
    assert "does not fit" in line and "122" in line and "97" in line


def test_other_applications_count_too() -> None:
    assert budget(others=36).warning() is None
    assert budget(others=37).warning() is not None


def test_behind_pgbouncer_a_host_costs_postgresql_only_its_listener() -> None:
    hundred = budget(pooler=True, pool=None, hosts=100, pooled=20, max_connections=200)
    assert hundred.per_host == 1
    assert hundred.needed == 120 and hundred.warning() is None
    line = budget(pooler=True, pool=None, hosts=100, pooled=20).warning()
    assert line is not None and "100 listener(s) + 20 PgBouncer" in line


def test_a_null_pool_straight_to_postgresql_has_no_limit_to_promise() -> None:
    line = budget(pool=None).warning()
    assert line is not None and "AUTHDEMO_DB_POOL=null" in line


def test_a_pool_size_is_a_hard_limit() -> None:
    assert budget(pool=pool_limit(5)).per_host == 21
