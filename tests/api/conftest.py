import pytest
from fastapi.testclient import TestClient
from support.databases import DATABASE_KINDS, database_kind
from support.migrated_databases import migrated_database

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


@pytest.fixture(params=DATABASE_KINDS)
def db_url(request, tmp_path):
    """As tests/conftest.py's `db_url`, but at the newest schema already (a copy of one migrated once per test
    process: support/migrated_databases.py): the API's tests are about what a store serves, not how it is
    created. A test that needs an empty store takes `isolated_database` (test_violation_judged_with.py)."""
    with migrated_database(database_kind(request), tmp_path) as url:
        yield url


@pytest.fixture
def client(db_url):
    """A client holding a real key with every scope but `evidence` (auth itself: tests/api/test_auth.py)."""
    app = create_app(Settings(database_url=db_url, max_batch_records=50, cache_ttl_s=60))
    _info, key = create_key(get_engine(db_url), "tests", ["read", "ingest", "operate", "admin"])
    with TestClient(app, headers={"X-API-Key": key}) as c:
        yield c
