import pytest

from signalwise.store.testing import isolated_database, postgres_unavailable_reason


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty database URL; every store test runs on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
    with isolated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url):
    from signalwise.store import get_engine

    return get_engine(db_url)
