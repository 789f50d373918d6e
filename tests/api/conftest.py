import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings
from signalwise.store.testing import isolated_database, postgres_unavailable_reason


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "postgresql":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
    with isolated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def client(db_url):
    app = create_app(Settings(database_url=db_url, max_batch_records=50, cache_ttl_s=60))
    with TestClient(app) as c:
        yield c
