import datetime as dt
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from signalwise.store import (
    bulk_insert_events,
    create_store_engine,
    current_revision,
    head_revision,
    revisions,
    upgrade,
)
from signalwise.store.engine import downgrade
from signalwise.store.tables import Base


def test_empty_database_upgrades_to_head_and_matches_the_tables(db_url):
    engine = create_store_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"migrations and tables.py disagree: {diff}"
    engine.dispose()


@pytest.mark.parametrize("start", revisions()[:-1])
@pytest.mark.slow
def test_upgrade_from_every_earlier_revision_keeps_data(db_url, start):
    engine = create_store_engine(db_url)
    upgrade(engine, start)
    assert current_revision(engine) == start
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (simulation_id, created_at) VALUES ('OLD', CURRENT_TIMESTAMP)"))
    bulk_insert_events(engine, [(dt.datetime(2025, 1, 6, 7), "D1", 1, 2)])
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT simulation_id FROM runs")).scalar_one() == "OLD"
        assert conn.execute(text("SELECT count(*) FROM hires_events")).scalar_one() == 1
    assert {"intersection_records", "signal_records", "run_metrics"} <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.slow
def test_downgrade_to_base_and_back(db_url):
    engine = create_store_engine(db_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()



#: a process that opens the database given (argv), says so, and migrates it when told to go (a line on
#: stdin), as `signalwise` commands do
OPEN_AT = """
import sys
from signalwise.store import create_store_engine, upgrade
engine = create_store_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
upgrade(engine)
"""


@pytest.mark.slow
def test_processes_opening_a_new_database_at_once_all_get_it_migrated(db_url):
    """A server and an ingest starting on a new database at the same moment: one migrates, the others
    wait for it and find the schema at head (unserialised, the others failed: table already exists)."""
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, db_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    # all three have imported the store and opened the engine: then go at once
    ready = [p.stdout.readline().strip() for p in procs]
    if ready != ["ready"] * 3:
        for p in procs:
            p.kill()
        pytest.fail(f"a process could not open the database: {[p.communicate()[1][-2000:] for p in procs]}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    failures = [err for p in procs for err in [p.communicate(timeout=120)[1]] if p.returncode != 0]
    assert failures == []
    engine = create_store_engine(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_quick_revision_readers_agree_with_alembics_own(db_url):
    """`head_revision` reads the migration files' names and `current_revision` one row, without importing
    alembic; both must say what alembic says, at every step: empty, each revision, back to base."""
    from alembic.script import ScriptDirectory

    from signalwise.store.engine import _alembic_config

    assert head_revision() == ScriptDirectory.from_config(_alembic_config()).get_current_head() == revisions()[-1]
    engine = create_store_engine(db_url)

    def alembics() -> str | None:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    assert current_revision(engine) is None is alembics()
    for rev in (revisions()[0], revisions()[len(revisions()) // 2], head_revision()):
        upgrade(engine, rev)
        assert current_revision(engine) == rev == alembics()
    downgrade(engine, "base")  # alembic's table stays, empty
    assert current_revision(engine) is None is alembics()
    engine.dispose()
