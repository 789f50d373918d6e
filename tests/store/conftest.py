import pytest


@pytest.fixture
def engine(db_url):
    """The store behind `db_url`, at head, without every migration run again per test: a copy of a store migrated
    once per test process (support/migrated_databases.py); the migrations themselves are test_store_migrations.py's,
    which checks that they make the tables tables.py declares."""
    from support.migrated_databases import migrate_into

    from signalwise.store import get_engine

    migrate_into(db_url)
    return get_engine(db_url)
