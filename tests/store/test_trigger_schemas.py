"""Two stores in two schemas of one PostgreSQL database: a delete in one (of records, of runs) removes that store's
signal rows and buckets, never the other's, whatever the deleting session's search path (the trigger functions name
their tables in the schema of the table they fire on, 0023). Stores made at head and stores migrated to 0023 from an
older revision alike."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from support.databases import POSTGRES_URL, isolated_database, postgres_unavailable_reason
from support.records import one_record

from signalwise.store import get_engine, ingest_records
from signalwise.store.engine import downgrade, upgrade

pytestmark = pytest.mark.postgres

COUNTED = ("intersection_records", "signal_records", "bucket_rollups_15min")


@pytest.fixture
def two_stores(tmp_path):
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with isolated_database("postgresql", tmp_path / "a") as a, isolated_database("postgresql", tmp_path / "b") as b:
        yield a, b


def _schema(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


def _fill(url: str, sim: str) -> None:
    ingest_records(get_engine(url), [one_record(sim, f"2025-01-06T07:{m:02d}:00Z") for m in range(4)])


def _counts(schema: str) -> dict[str, int]:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f'SELECT count(*) FROM "{schema}".{t}')).scalar() for t in COUNTED}
    finally:
        engine.dispose()


def _delete_as(search_path: str, statement: str) -> None:
    """`statement` from a session whose search path is `search_path` (psql's default one, or an empty one)."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL search_path = {search_path}"))
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.mark.parametrize("search_path", ["''", "placeholder"])
@pytest.mark.parametrize("made", ["at head", "migrated from 0022"])
def test_a_delete_in_one_schema_leaves_the_other_store_whole(two_stores, search_path, made):
    a, b = two_stores
    if made == "migrated from 0022":
        for url in (a, b):
            get_engine(url)
            downgrade(get_engine(url), "0022")
            upgrade(get_engine(url))
    sa, sb = _schema(a), _schema(b)
    _fill(a, f"run-a-{uuid.uuid4().hex[:6]}")
    _fill(b, f"run-b-{uuid.uuid4().hex[:6]}")
    a_before, b_before = _counts(sa), _counts(sb)
    assert all(a_before.values()) and all(b_before.values()), (a_before, b_before)
    # the session's search path names the other store first (psql's `"$user", public` may, any path may)
    path = f'"{sb}", public' if search_path == "placeholder" else search_path

    _delete_as(path, f'DELETE FROM "{sa}".intersection_records')
    assert _counts(sb) == b_before, "the other store lost rows"
    assert _counts(sa)["signal_records"] == 0, "this store's signal rows were left"

    _delete_as(path, f'DELETE FROM "{sa}".runs')
    assert _counts(sb) == b_before, "the other store lost buckets"
    assert _counts(sa)["bucket_rollups_15min"] == 0, "this store's buckets were left"


def test_the_downgrade_puts_back_the_functions_of_0022(two_stores):
    a, _ = two_stores
    engine = get_engine(a)
    downgrade(engine, "0022")
    with engine.connect() as conn:
        bodies = conn.execute(text("SELECT prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
                                   "AND proname LIKE '%follow%'")).scalars().all()
    assert len(bodies) == 2 and not any("TG_TABLE_SCHEMA" in b for b in bodies), bodies
    upgrade(engine)

