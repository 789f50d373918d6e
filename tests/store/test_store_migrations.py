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


def test_an_empty_database_migrated_from_the_first_revision_matches_the_tables(db_url):
    engine = create_store_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine, revisions()[0])
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"migrations and tables.py disagree: {diff}"
    engine.dispose()


def _schema(url: str) -> dict[str, dict]:
    """What a store holds, read back from the database: each table's columns in order and its constraints and
    indexes by name, and the triggers and their functions. compare_metadata leaves check constraints and
    triggers out, and a later migration that drops one by name needs the name to be the same on every store."""
    engine = create_store_engine(url)
    found = inspect(engine)
    schema: dict[str, dict] = {
        table: {
            "columns": [(c["name"], c["nullable"], str(c["type"]), _default(c["default"]))
                        for c in found.get_columns(table)],
            "checks": {(c["name"], " ".join(c["sqltext"].split())) for c in found.get_check_constraints(table)},
            "uniques": {(u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)},
            "indexes": {(i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)},
            "foreign_keys": {(f["name"], tuple(f["constrained_columns"]), f["referred_table"],
                              f["options"].get("ondelete")) for f in found.get_foreign_keys(table)},
            "primary_key": (found.get_pk_constraint(table)["name"],
                            tuple(found.get_pk_constraint(table)["constrained_columns"])),
        }
        for table in found.get_table_names()
    }
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            triggers = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all()
            functions = []
        else:
            triggers = conn.exec_driver_sql(
                "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace").all()
            functions = conn.exec_driver_sql(
                "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace").all()
            own = conn.exec_driver_sql("SELECT current_schema()").scalar_one()  # each test's own: not compared
            triggers = [(n, t.replace(f"{own}.", "")) for n, t in triggers]
    schema["(triggers)"] = {"triggers": {(n, " ".join(t.split())) for n, t in triggers},
                            "functions": {(n, " ".join(t.split())) for n, t in functions}}
    engine.dispose()
    return schema


def _default(text: str | None) -> str | None:
    """A column's server default as the database reports it, without the quoting and casts that tell nothing."""
    if text is None:
        return None
    return text.split("::")[0].strip("()'\"")


def test_a_new_store_is_made_as_every_migration_from_the_first_would_make_it(db_url, tmp_path):
    """A new store is made from tables.py at once; a store taken through every revision must end up the same:
    the same tables, columns in the same order, checks, keys and indexes of the same names, the same triggers."""
    migrated_engine = create_store_engine(db_url)
    upgrade(migrated_engine, revisions()[0])
    upgrade(migrated_engine)  # from 0001 on: alembic runs every migration
    assert current_revision(migrated_engine) == head_revision()
    made = tmp_path / "made"
    made.mkdir()
    with isolated_database("sqlite" if db_url.startswith("sqlite") else "postgresql", made) as made_url:
        made_engine = create_store_engine(made_url)
        assert upgrade(made_engine) == (None, head_revision())  # made at once, not migrated
        with made_engine.connect() as conn:  # alembic reads it as at the newest revision
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
        from_tables = _schema(made_url)
    migrated = _schema(db_url)
    assert migrated.keys() == from_tables.keys()
    assert sum(len(t["checks"]) for n, t in from_tables.items() if n != "(triggers)") >= 6
    assert len(from_tables["(triggers)"]["triggers"]) == 2  # the comparison below compares something
    assert {c[3] for t in from_tables.values() for c in t.get("columns", ())} - {None}  # server defaults too
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


def test_a_new_store_is_made_beside_other_tables_and_never_over_one_of_its_own_names(db_url):
    """A database shared with other software gets the store beside that software's tables; one holding a table
    named as one of the store's is refused (the database's error) and left as it was."""
    engine = create_store_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (x INTEGER)"))
        conn.execute(text("INSERT INTO someone_elses VALUES (7)"))
    assert upgrade(engine) == (None, head_revision())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM someone_elses")).scalar_one() == 7
    assert {"runs", "someone_elses"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    clash = create_store_engine(db_url)
    downgrade(clash, "base")
    with clash.begin() as conn:
        conn.execute(text("CREATE TABLE runs (x INTEGER)"))
    with pytest.raises(Exception, match="runs"):
        upgrade(clash)
    assert current_revision(clash) is None
    assert set(inspect(clash).get_table_names()) <= {"runs", "someone_elses", "alembic_version"}
    clash.dispose()
