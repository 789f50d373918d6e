"""A stored violation as an enforcement record: stored once however often its video is processed, kept with what it
can be checked by (the signal log's time, how long the light had been red, the frame, the video and its hash,
whether its instant was assumed), and its evidence image served only while it is the one stored. Real synthetic
clips through `signalwise vision run`, a real SQLite store (PostgreSQL too where the store is asked, when
127.0.0.1:5432 answers), the real app on it (TestClient)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from support.cli import signalwise
from vision_scenes import write_violations_clip

from signalwise.api import create_app
from signalwise.store import Settings, create_store_engine, current_revision, get_engine, upgrade
from signalwise.store.engine import downgrade, head_revision
from signalwise.store.keys import create_key
from signalwise.store.tables import ViolationCountsDaily, ViolationRow
from signalwise.store.violations import (
    evidence_access_log,
    evidence_of,
    hotspots,
    insert_violations,
    summary,
    trends,
)

START = "2026-11-28T10:00:00+00:00"
OFFSET_S = 1000.0  # the signal log's clock at the first frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 s of traffic (320x240, 10 frames/s) with 3 red-light runners (east 5.1 s, north 10.2 s, south 11.2 s) and
    a speeder, its camera file, and its signal log on a clock 1000 s ahead."""
    return write_violations_clip(tmp_path_factory.mktemp("records"), OFFSET_S, tmp_path_factory)


@pytest.fixture(scope="module")
def started_run(clip, tmp_path_factory):
    """The clip run with --start START into a SQLite store of its own: (its out directory, its database URL). Its
    readers change nothing another reads (an evidence image edited is put back; an API key and access log rows
    added)."""
    d = tmp_path_factory.mktemp("started")
    db = f"sqlite:///{d / 'v.db'}"
    p = _run(clip, d / "run", db, "--start", START)
    assert p.returncode == 0, p.stderr
    return d / "run", db


def _run(d, out, db, *more):
    return signalwise("vision", "run", "--video", str(d / "clip.mp4"), "--camera", str(d / "cam.yaml"), "--signals",
                      str(d / "signals.csv"), "--signals-offset", str(OFFSET_S), "--out", str(out), "--db", db,
                      *map(str, more))


def _stored(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ViolationRow.__table__).order_by(ViolationRow.id))]


def _figures(engine) -> tuple:
    """Everything the counts answer: summary, hotspots, hourly and daily trends, and the daily rows themselves."""
    with engine.connect() as conn:
        daily = sorted(tuple(r) for r in conn.execute(select(ViolationCountsDaily.__table__)))
    return summary(engine), hotspots(engine), trends(engine, "hour"), trends(engine, "day"), daily


def _csv(out) -> list[dict]:
    return list(csv.DictReader(open(out / "violations.csv")))


@pytest.mark.slow
def test_a_video_stored_again_is_refused_and_replace_stores_it_once(clip, tmp_path, db_url):
    db = db_url
    p = _run(clip, tmp_path / "run1", db, "--start", START)
    assert p.returncode == 0, p.stderr
    n = len(_csv(tmp_path / "run1"))
    assert n >= 4 and f"{n} violation(s) stored in" in p.stdout
    engine = get_engine(db)
    rows, figures = _stored(engine), _figures(engine)
    assert figures[0]["total"] == n
    _the_same_records_put_twice_are_stored_and_counted_once(engine, rows, figures)

    # the same video again: refused before anything is written, the store as it was
    p = _run(clip, tmp_path / "run2", db, "--start", START)
    assert p.returncode == 2, p.stdout
    assert (f"{n} violation(s) of camera cam-1 from this video (clip.mp4, sha256:" in p.stderr
            and "are stored already; --replace stores this run's in their place" in p.stderr), p.stderr
    assert not (tmp_path / "run2").exists()
    assert _stored(engine) == rows and _figures(engine) == figures

    # --replace: this run's in place of the earlier ones, each once, the counts as they were, no id given twice
    p = _run(clip, tmp_path / "run3", db, "--start", START, "--replace")
    assert p.returncode == 0, p.stderr
    assert f"the {n} violation(s) stored earlier from this video were removed" in p.stderr
    again = _stored(engine)
    assert len(again) == n and _figures(engine) == figures
    assert min(r["id"] for r in again) > max(r["id"] for r in rows)
    assert [(r["kind"], r["track_id"], r["frame"]) for r in again] == [(r["kind"], r["track_id"], r["frame"])
                                                                       for r in rows]
    assert all(r["evidence_path"].startswith(str((tmp_path / "run3").resolve())) for r in again)


def _the_same_records_put_twice_are_stored_and_counted_once(engine, rows, figures):
    """Two runs of one video storing at the same time both pass the check before the run: the store itself keeps
    one row per (source, camera, kind, track, frame), and the writer says how many it did not store again. (On the
    store of the first run of test_a_video_stored_again_is_refused_and_replace_stores_it_once, SQLite and
    PostgreSQL, before it runs the video again: a run of its own here ran the same command on an empty store.)"""
    from signalwise.store.violations import ViolationWriter

    records = [{k: r[k] for k in r if k != "id"} for r in rows]
    assert insert_violations(engine, records) == 0
    writer = ViolationWriter(engine, flush_s=30.0)
    writer.put(records + records[:1])
    writer.close()
    assert (writer.stats()["written"], writer.stats()["already_stored"]) == (0, len(rows) + 1)
    assert _stored(engine) == rows and _figures(engine) == figures


def _red_since_s(signals_path, link: int, at_s: float) -> float:
    """From the signal log itself, on the video's clock: since when `link` had been red at `at_s`."""
    since = None
    for row in csv.DictReader(open(signals_path)):
        t = float(row["time_s"]) - OFFSET_S
        if t > at_s:
            break
        red = row["state"][link] == "r"
        since = (since if since is not None else t) if red else None
    return since


@pytest.mark.slow
def test_a_record_keeps_what_it_is_checked_by(clip, tmp_path, started_run):
    db = f"sqlite:///{tmp_path / 'v.db'}"
    out = tmp_path / "run"
    p = _run(clip, out, db)  # no --start: the instant is the processing machine's
    assert p.returncode == 0, p.stderr
    engine = get_engine(db)
    stored = _stored(engine)
    written = {(r["kind"], int(r["track_id"])): r for r in _csv(out)}
    assert {(r["kind"], r["track_id"]) for r in stored} == set(written)
    video_sha = hashlib.sha256((clip / "clip.mp4").read_bytes()).hexdigest()
    links = {line["approach"]: line["links"][0] for line in yaml.safe_load((clip / "cam.yaml").read_text())["stop_lines"]}
    summary_json = json.loads((out / "summary.json").read_text())
    assert summary_json["source"] == f"sha256:{video_sha}" and summary_json["first_frame_at_assumed"] is True
    for r in stored:
        w = written[(r["kind"], r["track_id"])]
        assert (r["source"], r["source_name"], r["time_assumed"]) == (f"sha256:{video_sha}", "clip.mp4", True)
        assert r["video_s"] == pytest.approx(float(w["time_s"]), abs=1e-9)
        assert r["signal_log_s"] == pytest.approx(r["video_s"] + OFFSET_S, abs=1e-9)
        if r["kind"] == "speeding":  # called on the frame of its time; a red light 5 m on from its crossing
            assert r["frame"] == round(r["video_s"] * 10)
        else:
            assert r["frame"] / 10 > r["video_s"]
        image = (out / w["evidence_path"]).read_bytes()
        assert r["evidence_sha256"] == hashlib.sha256(image).hexdigest()
        if r["kind"] == "red_light":
            want = r["video_s"] - _red_since_s(clip / "signals.csv", links[r["approach"]], r["video_s"])
            assert r["red_for_s"] == pytest.approx(want, abs=2e-3), r
        else:
            assert r["red_for_s"] is None
    assert sorted(round(r["red_for_s"], 1) for r in stored if r["kind"] == "red_light") == [0.1, 1.1, 5.1]

    # over the API, as a court's copy is checked: each item with its provenance and its image's digest
    app = create_app(Settings(database_url=db, cache_ttl_s=0))  # loopback: reads need no key
    with TestClient(app) as c:
        items = c.get("/api/v1/analytics/violations").json()["items"]
    by_id = {r["id"]: r for r in stored}
    for item in items:
        r = by_id[item["id"]]
        for key in ("source", "source_name", "frame", "video_s", "signal_log_s", "red_for_s", "time_assumed",
                    "evidence_sha256"):
            assert item[key] == r[key], key
    assert all(item["time_assumed"] is True for item in items)

    _, started_db = started_run  # the same clip run with --start
    assert {r["time_assumed"] for r in _stored(get_engine(started_db))} == {False}


def test_a_changed_evidence_image_is_not_served_and_the_log_says_why(started_run):
    _, db = started_run
    engine = get_engine(db)
    first, second = _stored(engine)[:2]
    _, key = create_key(engine, "court", ["evidence"])
    app = create_app(Settings(database_url=db, cache_ttl_s=0, bind_host="0.0.0.0"))
    with TestClient(app) as c:
        r = c.get(f"/api/v1/evidence/violations/{first['id']}", headers={"X-API-Key": key})
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
        assert r.headers["x-evidence-sha256"] == first["evidence_sha256"] == hashlib.sha256(r.content).hexdigest()
        stored_image = Path(first["evidence_path"]).read_bytes()  # put back below: the run is the module's
        image = cv2.imread(first["evidence_path"])  # "EDITED" drawn on it, as the analyst did
        cv2.putText(image, "EDITED", (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        cv2.imwrite(first["evidence_path"], image)
        try:
            r = c.get(f"/api/v1/evidence/violations/{first['id']}", headers={"X-API-Key": key})
        finally:
            Path(first["evidence_path"]).write_bytes(stored_image)
        assert r.status_code == 409, r.text
        assert (f"violation {first['id']}'s evidence image is not the one stored with it: its SHA-256 is no longer "
                f"{first['evidence_sha256']}; not served" in r.json()["message"])
        assert c.get(f"/api/v1/evidence/violations/{second['id']}", headers={"X-API-Key": key}).status_code == 200
    _, log = evidence_access_log(engine)
    assert [(e["violation_id"], e["result"]) for e in reversed(log)] == [
        (first["id"], "served"), (first["id"], "tampered"), (second["id"], "served")]


# -- the migration ---------------------------------------------------------------------------------------------
T0 = dt.datetime(2026, 11, 1, 8, 15, tzinfo=dt.UTC)


def _store_at_0017_with_violations(url: str, image) -> object:
    """Three violations (one with its image) and their counts as revision 0017's store held them, and a served
    read of the newest one."""
    engine = create_store_engine(url)
    upgrade(engine, "0017")
    with engine.begin() as conn:
        for i, kind in enumerate(("red_light", "speeding", "red_light"), start=1):
            conn.execute(text("INSERT INTO violations (occurred_at, camera_id, device_id, approach, kind, track_id, "
                              "evidence_path) VALUES (:at, 'cam-1', 'B1', 'north', :kind, :track, :path)"),
                         {"at": T0 + dt.timedelta(minutes=i), "kind": kind, "track": i,
                          "path": str(image) if i == 1 else None})
        for table in ("violation_counts_hourly", "violation_counts_daily"):
            bucket = T0.replace(minute=0) if table.endswith("hourly") else T0.replace(hour=0, minute=0)
            for cam, app in (("cam-1", "north"), ("cam-1", "*"), ("*", "*")):
                for kind, n in (("red_light", 2), ("speeding", 1)):
                    conn.execute(text(f"INSERT INTO {table} (camera_id, approach, kind, count, bucket) "
                                      "VALUES (:c, :a, :k, :n, :b)"), {"c": cam, "a": app, "k": kind, "n": n,
                                                                         "b": bucket})
        conn.execute(text("INSERT INTO evidence_access (at, who, violation_id, result) VALUES (:at, 'k', 3, 'gone')"),
                     {"at": T0})
    return engine


def test_a_store_at_0017_with_violations_upgrades_and_keeps_them(db_url, tmp_path):
    image = tmp_path / "old.jpg"
    cv2.imwrite(str(image), np.full((8, 8, 3), 90, np.uint8))
    engine = _store_at_0017_with_violations(db_url, image)
    before = summary(engine)
    assert before["total"] == 3
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    old = _stored(engine)
    assert [(r["id"], r["kind"], r["track_id"]) for r in old] == [(1, "red_light", 1), (2, "speeding", 2),
                                                                   (3, "red_light", 3)]
    assert all(r[k] is None for r in old for k in ("source", "frame", "video_s", "red_for_s", "time_assumed",
                                                   "evidence_sha256"))  # nobody recorded them: not made up
    assert summary(engine) == before
    # an image stored before its digest was kept: served, and said to be unverified
    result, data, digest = evidence_of(engine, 1, "k")
    assert (result, data, digest) == ("unverified", image.read_bytes(), None)

    # new rows: each identity once, and no id the store or its access log has named is given again
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM violations WHERE id = 3"))
    new = {"occurred_at": T0 + dt.timedelta(hours=1), "camera_id": "cam-1", "device_id": "B1", "approach": "north",
           "kind": "speeding", "track_id": 9, "source": "sha256:" + "ab" * 32, "frame": 90, "video_s": 9.0}
    assert insert_violations(engine, [new, new]) == 1 and insert_violations(engine, [new]) == 0
    assert summary(engine)["total"] == 4
    assert [r["id"] for r in _stored(engine)][-1] == 4

    downgrade(engine, "0017")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM violations")).scalar_one() == 3
    engine.dispose()
