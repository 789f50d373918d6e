"""Fixtures shared by the store, API and runtime tests."""

import pytest

from signalwise.store.testing import isolated_database, postgres_unavailable_reason


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty database URL: SQLite always, PostgreSQL when 127.0.0.1:5432 is reachable."""
    if request.param == "postgresql":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
    with isolated_database(request.param, tmp_path) as url:
        yield url
