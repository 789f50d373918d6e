import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings


@pytest.fixture
def client(db_url):
    app = create_app(Settings(database_url=db_url, max_batch_records=50, cache_ttl_s=60))
    with TestClient(app) as c:
        yield c
