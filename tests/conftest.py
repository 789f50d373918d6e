"""Fixtures shared by the store, API and runtime tests."""

import sys
from pathlib import Path

import pytest

# `support.*`: helpers only tests and benchmarks use, kept out of the installed package
sys.path.insert(0, str(Path(__file__).parent))

from support.databases import isolated_database, postgres_unavailable_reason  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty database URL: SQLite always, PostgreSQL when 127.0.0.1:5432 is reachable."""
    if request.param == "postgresql":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
    with isolated_database(request.param, tmp_path) as url:
        yield url


#: test directories by the time their files take, longest first (`make test` runs them in this order with
#: --no-loadscope-reorder): a worker that picks up a long file last keeps the whole suite waiting for it
LONGEST_FIRST = ("training", "dashboard", "runtime", "vision", "api", "sim", "store", "atspm", "envs")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        parts = Path(str(item.path)).relative_to(Path(__file__).parent).parts
        return LONGEST_FIRST.index(parts[0]) if len(parts) > 1 and parts[0] in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each directory keeps its own order
