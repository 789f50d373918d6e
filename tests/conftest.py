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
