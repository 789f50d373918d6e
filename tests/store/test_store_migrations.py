import datetime as dt
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from support.databases import isolated_database

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


def _schema(url: str) -> dict[str, dict]:
    """What a store's tables hold, read back from the database: each table's column names (as a set: the
    migrations add columns at the end where tables.py may declare them elsewhere) and its constraints and
    indexes, by name. compare_metadata leaves check constraints out, and a later migration that drops one by
    name needs the name to be the same on every store."""
    engine = create_store_engine(url)
    found = inspect(engine)
    schema = {
        table: {
            "columns": {(c["name"], c["nullable"]) for c in found.get_columns(table)},
            "checks": {(c["name"], " ".join(c["sqltext"].split())) for c in found.get_check_constraints(table)},
            "uniques": {(u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)},
            "indexes": {(i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)},
            "foreign_keys": {(f["name"], tuple(f["constrained_columns"]), f["referred_table"],
                              f["options"].get("ondelete")) for f in found.get_foreign_keys(table)},
            "primary_key": (found.get_pk_constraint(table)["name"],
                            tuple(found.get_pk_constraint(table)["constrained_columns"])),
        }
        for table in found.get_table_names() if table != "alembic_version"
    }
    engine.dispose()
    return schema


def test_a_migrated_store_has_the_constraints_of_tables_py_by_name(db_url, tmp_path):
    upgrade(create_store_engine(db_url))
    made = tmp_path / "made"
    made.mkdir()
    with isolated_database("sqlite" if db_url.startswith("sqlite") else "postgresql", made) as made_url:
        Base.metadata.create_all(create_store_engine(made_url))
        from_tables = _schema(made_url)
    migrated = _schema(db_url)
    assert migrated.keys() == from_tables.keys()
    assert sum(len(t["checks"]) for t in from_tables.values()) >= 6  # the comparison below compares something
    for table in from_tables:
        assert migrated[table] == from_tables[table], table


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


def test_the_check_renames_keep_rows_and_checks_and_go_back(db_url):
    """0020 renames the checks (on SQLite by rewriting the stored CREATE statement): the rows stay, the checks
    still refuse, a connection opened before the upgrade sees the new names, and a downgrade restores 0019's."""
    engine = create_store_engine(db_url)
    upgrade(engine, "0019")
    insert_alert = text("INSERT INTO alerts (id, simulation_id, rule, level, metric, value, threshold, raised_at, "
                        "message) VALUES (:id, 'S', 'r', :level, 'm', 1, 1, CURRENT_TIMESTAMP, '')")
    with engine.begin() as conn:
        conn.execute(insert_alert, {"id": "a1", "level": "warning"})
    reader = engine.connect()  # open across the upgrade
    reader.execute(text("SELECT 1")).scalar_one()
    reader.commit()
    upgrade(engine)
    assert {c["name"] for c in inspect(reader).get_check_constraints("alerts")} == {"ck_alerts_level"}
    reader.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT level FROM alerts")).scalar_one() == "warning"
    with pytest.raises(IntegrityError, match="ck_alerts_level|CHECK"), engine.begin() as conn:
        conn.execute(insert_alert, {"id": "a2", "level": "loud"})
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert "AUTOINCREMENT" in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'violations'").scalar_one()
    downgrade(engine, "0019")
    assert {c["name"] for c in inspect(engine).get_check_constraints("violations")} == {
        "ck_violations_ck_violations_kind"}
    upgrade(engine)
    assert {c["name"] for c in inspect(engine).get_check_constraints("violations")} == {"ck_violations_kind"}
    engine.dispose()
