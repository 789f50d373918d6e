import pytest


@pytest.fixture
def engine(db_url):
    from signalwise.store import get_engine

    return get_engine(db_url)
