"""`GET /api/v1/analytics/violations` says what each violation was judged with (`judged_with`, schema 0019):
the camera file and signal log, the release, the calibration checks' reasons when a suspect one was accepted;
null for a row stored before 0019. A store at 0018 upgraded by the app itself, SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from support.databases import DATABASE_KINDS, database_kind, isolated_database

from signalwise.api import create_app
from signalwise.store import Settings, create_store_engine, get_engine, upgrade
from signalwise.store.keys import create_key
from signalwise.store.tables import ViolationRow
from signalwise.store.violations import insert_violations

T0 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
JUDGED = {"camera_file": {"path": "/cams/cam-1.yaml", "sha256": "c" * 64},
          "signals_file": {"path": "/logs/signals.csv", "sha256": "d" * 64}, "signalwise_version": "0.1.0",
          "calibration_suspect": ["the traffic's 85th-percentile speed, 41.2 m/s over 5 tracks, is more than 2 "
                                  "times the speed limit (13.89 m/s)"]}


@pytest.fixture(params=DATABASE_KINDS)
def db_url(request, tmp_path):
    """An empty database (tests/conftest.py's `db_url`; tests/api/conftest.py's is at the newest schema already):
    this test builds its store at 0018 itself."""
    with isolated_database(database_kind(request), tmp_path) as url:
        yield url


def _row(track: int, **more) -> dict:
    return {"occurred_at": T0 + dt.timedelta(seconds=track), "camera_id": "cam-1", "device_id": "B1",
            "approach": "north", "kind": "speeding", "track_id": track, "speed_mps": 30.0, "limit_mps": 13.89,
            "source": "sha256:" + "e" * 64, "frame": track, **more}


def test_the_listing_returns_judged_with_and_null_for_rows_stored_before_0019(db_url):
    old = create_store_engine(db_url)
    upgrade(old, "0018")
    with old.begin() as conn:  # a row as the release before 0019 stored it
        conn.execute(ViolationRow.__table__.insert().values(_row(1)))
    old.dispose()
    app = create_app(Settings(database_url=db_url, cache_ttl_s=0))
    _info, key = create_key(get_engine(db_url), "reader", ["read"])
    assert insert_violations(get_engine(db_url), [_row(2, judged_with=JUDGED),
                                                  _row(3, judged_with={**JUDGED, "calibration_suspect": []})]) == 2
    with TestClient(app, headers={"X-API-Key": key}) as c:
        r = c.get("/api/v1/analytics/violations")
        assert r.status_code == 200, r.text
        items = {i["track_id"]: i for i in r.json()["items"]}
    assert items[1]["judged_with"] is None
    assert items[2]["judged_with"] == JUDGED
    assert items[3]["judged_with"] == {**JUDGED, "calibration_suspect": []}
