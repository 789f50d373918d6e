import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


@pytest.fixture
def client(db_url):
    """A client holding a real key with every scope but `evidence` (auth itself: tests/api/test_auth.py)."""
    app = create_app(Settings(database_url=db_url, max_batch_records=50, cache_ttl_s=60))
    _info, key = create_key(get_engine(db_url), "tests", ["read", "ingest", "operate", "admin"])
    with TestClient(app, headers={"X-API-Key": key}) as c:
        yield c
