"""`signalwise db copy`: a store filled by real commands copied whole (SQLite to SQLite, SQLite to PostgreSQL and
back), its rows, keys and answers the same, new rows stored after it, and what it refuses."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import JSON, create_engine, func, select, text
from support.cli import in_a_process, signalwise
from support.databases import DATABASE_KINDS, database_kind, isolated_database
from support.records import one_record

from signalwise.api import create_app
from signalwise.runtime.live.alerts import AlertEngine, AlertRule
from signalwise.store import Settings
from signalwise.store.copy import count_rows, store_tables
from signalwise.store.engine import create_store_engine, dispose_engines
from signalwise.store.keys import verify_key
from signalwise.store.live import LiveStoreWriter
from signalwise.store.violations import insert_violations

SHIPPED_MODEL = Path(__file__).parents[2] / "src/signalwise/control/learning/shipped/single"
LIVE_SIM = "live-copy"


def _ok(result) -> str:  # noqa: ANN001
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def violation(track_id: int) -> dict:
    return {"occurred_at": dt.datetime(2025, 1, 6, 7, tzinfo=dt.UTC), "camera_id": "cam1", "device_id": "C",
            "approach": "N", "kind": "red_light", "track_id": track_id, "track": []}


def fill(url: str, work: Path) -> str:
    """A store holding what the commands leave: a key (returned), an ingested record, a registered and deployed
    model (its file's bytes a blob), a live run's alert and runtime change, and a camera violation stored after
    another was removed (an id the store never gives again)."""
    key = _ok(signalwise("keys", "create", "--name", "ops", "--scopes", "read,admin", "--db", url)).split()[0]
    records = work / "records.jsonl"
    records.write_text(json.dumps(one_record("feed-1")) + "\n" + json.dumps(one_record("feed-1", "2025-01-06T07:01:00Z")) + "\n")
    _ok(signalwise("ingest", str(records), "--db", url))
    _ok(signalwise("models", "add", str(SHIPPED_MODEL), "--db", url))
    _ok(signalwise("models", "deploy", "v1", "--intersection", "C", "--db", url))
    rules = [AlertRule(name="fallback", metric="fallback_share", op=">", threshold=0.5, level="error")]
    with LiveStoreWriter(url, LIVE_SIM, work / "buffer", 10_000, retry_initial_s=0.05, retry_max_s=0.2) as writer:
        alerts = AlertEngine(rules, on_raise=writer.put_alert, on_clear=writer.put_alert,
                             on_acknowledge=writer.put_alert)
        alerts.evaluate(5.0, {"fallback_share": 1.0})
        writer.put_change({"at": "2025-09-10T10:00:01+02:00", "who": "local", "kind": "timing",
                           "payload": {"timing": {"n": 1}}, "result": "applied", "reason": "", "sim_time_s": 1.0})
        assert writer.flush(30), writer.stats()
    engine = create_store_engine(url)
    insert_violations(engine, [violation(1), violation(2)])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM violations WHERE track_id = 2"))
    engine.dispose()
    dispose_engines(url)
    return key


@pytest.fixture(scope="module")
def filled_sqlite(tmp_path_factory) -> tuple[Path, str]:
    """A SQLite store filled without SUMO (the fast tests copy it, never change it)."""
    work = tmp_path_factory.mktemp("filled")
    path = work / "src.db"
    key = fill(f"sqlite:///{path}", work)
    return path, key


def source_copy(filled: tuple[Path, str], directory: Path) -> tuple[str, str]:
    path, key = filled
    directory.mkdir(exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:  # the file and its WAL as one: SQLite's own backup
        conn.exec_driver_sql(f"VACUUM INTO '{directory / 'src.db'}'")
    engine.dispose()
    url = f"sqlite:///{directory / 'src.db'}"
    create_store_engine(url).dispose()  # in WAL mode, as every store is (reading it then changes no byte of it)
    return url, key


def rows_of(url: str) -> dict[str, list]:
    """Every row of every store table, in key order, as the store's types read them."""
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                    for t in store_tables()}
    finally:
        engine.dispose()


def json_nulls(url: str) -> dict[str, int]:
    """SQL NULLs per JSON column (JSON null reads back as None too: these tell them apart)."""
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            return {f"{t.name}.{c.name}": conn.execute(select(func.count()).select_from(t).where(c.is_(None))).scalar_one()
                    for t in store_tables() for c in t.columns if isinstance(c.type, JSON)}
    finally:
        engine.dispose()


def counts(url: str) -> dict[str, int]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            return count_rows(conn)
    finally:
        engine.dispose()


def digest(path: Path) -> str:
    """The bytes SQLite keeps a store's data in: the file and its WAL (the -shm index is any reader's to write)."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())).hexdigest()


def test_a_sqlite_store_is_copied_whole_and_the_source_left_untouched(filled_sqlite, tmp_path):
    src, key = source_copy(filled_sqlite, tmp_path / "a")
    src_path = Path(src.removeprefix("sqlite:///"))
    dst_path = tmp_path / "b" / "copy.db"
    dst_path.parent.mkdir()
    dst = f"sqlite:///{dst_path}"
    source_counts = counts(src)  # (a store's first reader after its creation settles its header)
    before = digest(src_path)

    dry = signalwise("db", "copy", "--from", src, "--to", dst, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert not dst_path.exists()  # a dry run creates nothing
    assert f"would copy {sum(source_counts.values())} rows" in dry.stdout

    out = _ok(signalwise("db", "copy", "--from", src, "--to", dst))
    assert digest(src_path) == before  # opened read-only
    assert counts(dst) == source_counts
    for table in ("runs", "intersection_records", "signal_records", "api_keys", "alerts", "runtime_changes",
                  "model_versions", "model_files", "model_blobs", "model_deployments"):
        assert source_counts[table] > 0, table
        assert any(line.split()[:5] == [table, str(source_counts[table]), "0", str(source_counts[table]), "ok"]
                   for line in out.splitlines()), out
    assert rows_of(dst) == rows_of(src)
    assert json_nulls(dst) == json_nulls(src)
    # the key's digest is the key's plain SHA-256: a key made on the source is accepted by the copy
    copy = create_store_engine(dst)
    assert verify_key(copy, key, touch=False).name == "ops"
    # a violation stored on the copy takes an id past the one the source removed, as it would on the source
    insert_violations(copy, [violation(3)])
    with copy.connect() as conn:
        assert conn.execute(text("SELECT id FROM violations ORDER BY track_id")).scalars().all() == [1, 3]
    copy.dispose()


@pytest.mark.slow  # four commands
def test_a_destination_holding_rows_is_refused_and_left_as_it_was(filled_sqlite, tmp_path):
    src, _key = source_copy(filled_sqlite, tmp_path / "a")
    dst = f"sqlite:///{tmp_path / 'copy.db'}"
    _ok(signalwise("db", "copy", "--from", src, "--to", dst))
    held = rows_of(dst)

    again = signalwise("db", "copy", "--from", src, "--to", dst)
    assert again.returncode == 2
    assert "error: the destination holds rows already: alerts (1), api_keys (1)," in again.stderr
    assert "--into-nonempty" in again.stderr
    into = signalwise("db", "copy", "--from", src, "--to", dst, "--into-nonempty")
    assert into.returncode == 1 and "UNIQUE constraint failed" in into.stderr and "(nothing was written)" in into.stderr
    assert rows_of(dst) == held  # never a duplicate, nothing half-written

    same = signalwise("db", "copy", "--from", src, "--to", src)
    assert same.returncode == 2 and "the same database" in same.stderr


@pytest.mark.slow  # the downgrade: alembic
def test_a_source_at_another_schema_revision_is_refused_with_what_to_run(filled_sqlite, tmp_path):
    src, _key = source_copy(filled_sqlite, tmp_path / "a")
    _ok(signalwise("db", "downgrade", "0023", "--yes", "--db", src))
    src_path = Path(src.removeprefix("sqlite:///"))
    counts(src)
    before = digest(src_path)
    dst_path = tmp_path / "copy.db"
    refused = signalwise("db", "copy", "--from", src, "--to", f"sqlite:///{dst_path}")
    assert refused.returncode == 1
    assert f"is at schema revision 0023, this release copies stores at 0024: back it up, then signalwise db " \
           f"upgrade --db {src}" in refused.stderr
    assert not dst_path.exists() and digest(src_path) == before


@pytest.fixture(params=DATABASE_KINDS[1:])
def destination(request, tmp_path):
    """A PostgreSQL schema of its own (dropped after); SQLite to SQLite is the tests' above."""
    directory = tmp_path / "destination"
    directory.mkdir()
    with isolated_database(database_kind(request), directory) as url:
        yield url


def served(url: str, key: str, paths: list[str]) -> list:
    """What the API on the store at `url` answers to `paths`, with `key`."""
    app = create_app(Settings(database_url=url, cache_ttl_s=0))
    with TestClient(app, headers={"X-API-Key": key}) as client:
        answers = []
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            answers.append(response.json())
    dispose_engines(url)
    return answers


@pytest.mark.slow
def test_a_published_run_copied_to_postgresql_answers_the_same_and_new_rows_follow(destination, tmp_path):
    src_path = tmp_path / "src.db"
    src = f"sqlite:///{src_path}"
    _ok(in_a_process("run", "-s", "single", "-c", "fixed", "--duration", "120", "--out", str(tmp_path / "runs"),
                     "--db", src))
    key = fill(src, tmp_path)
    engine = create_store_engine(src)
    with engine.connect() as conn:
        sim = conn.execute(text("SELECT simulation_id FROM runs WHERE source = 'run'")).scalar_one()
    engine.dispose()

    copied = signalwise("db", "copy", "--from", src, "--to", destination)
    assert copied.returncode == 0, copied.stderr
    assert counts(destination) == counts(src)
    assert rows_of(destination) == rows_of(src) and json_nulls(destination) == json_nulls(src)
    # and back to a new SQLite file: the same rows again
    back = f"sqlite:///{tmp_path / 'back.db'}"
    _ok(signalwise("db", "copy", "--from", destination, "--to", back))
    assert rows_of(back) == rows_of(src)

    paths = [f"/api/v1/analytics/simulation/{sim}/summary", f"/api/v1/analytics/time-series/{sim}",
             f"/api/v1/analytics/alerts?simulation_id={LIVE_SIM}", f"/api/v1/analytics/changes?simulation_id={LIVE_SIM}",
             "/api/v1/analytics/simulations"]
    assert served(destination, key, paths) == served(src, key, paths)  # the source's key works on the copy

    # new rows after the copy take ids past the copied ones (PostgreSQL: the sequences moved)
    top = {t: max(r[0] for r in rows) for t, rows in rows_of(destination).items()
           if t in ("runs", "intersection_records", "runtime_changes")}
    records = tmp_path / "later.jsonl"
    records.write_text(json.dumps(one_record("after-copy")) + "\n")
    _ok(signalwise("ingest", str(records), "--db", destination))
    with LiveStoreWriter(destination, LIVE_SIM, tmp_path / "later-buffer", 10_000, retry_initial_s=0.05) as writer:
        writer.put_change({"at": "2025-09-10T10:00:02+02:00", "who": "local", "kind": "timing",
                           "payload": {"timing": {"n": 2}}, "result": "applied", "reason": "", "sim_time_s": 2.0})
        assert writer.flush(30), writer.stats()
    engine = create_store_engine(destination)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM runs WHERE simulation_id = 'after-copy'")).scalar_one() > top["runs"]
        assert conn.execute(text("SELECT max(id) FROM intersection_records")).scalar_one() > top["intersection_records"]
        assert conn.execute(text("SELECT max(id) FROM runtime_changes")).scalar_one() > top["runtime_changes"]
    insert_violations(engine, [violation(3)])
    with engine.connect() as conn:  # past the id the source removed: the sequence moved past its high-water mark
        assert conn.execute(text("SELECT id FROM violations ORDER BY track_id")).scalars().all() == [1, 3]
    engine.dispose()
    dispose_engines(destination)
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
