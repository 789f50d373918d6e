"""Footage stored by a release before schema 0018 (rows with no `source`) and processed again after the upgrade:
found by camera, kind, track and instant, refused with how many of them had no recorded source, and replaced by
`--replace` off the counts; never stored a second time. Real synthetic clips through `signalwise vision run`, a
real SQLite store (PostgreSQL too when 127.0.0.1:5432 answers)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select, text
from support.cli import signalwise
from vision_scenes import write_violations_clip

from signalwise.store import create_store_engine, get_engine, upgrade
from signalwise.store.tables import ViolationCountsDaily, ViolationCountsHourly, ViolationRow
from signalwise.store.timefmt import to_utc
from signalwise.store.violations import Stored, hotspots, insert_violations, store_violations, summary, trends

START = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
OFFSET_S = 1000.0

#: what release eaf6721 (schema 0016) stored for this clip with --start START, as video seconds per (kind, track):
#: `signalwise vision run ... --db` with that release's code. It timed a red light by the track's anchor crossing
#: the line, after its front does (this release's time): tracks 2 and 5 are stamped 0.2 s and 0.3 s later here; and
#: called speeding on per-frame speeds, after this release's measured second (track 3: 0.3 s later).
OLD_RELEASE_S = {("red_light", 2): 5.3, ("speeding", 3): 6.5, ("red_light", 4): 10.166667, ("red_light", 5): 11.5}
OLD_COLUMNS = ("occurred_at", "camera_id", "device_id", "approach", "kind", "track_id", "speed_mps", "limit_mps",
               "stop_line", "signal_state", "evidence_path", "track")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The clip of tests/vision/test_violation_records.py: 20 s, 3 red-light runners and a speeder."""
    return write_violations_clip(tmp_path_factory.mktemp("upgrade"), OFFSET_S, tmp_path_factory)


@pytest.fixture(scope="module")
def fresh(clip, tmp_path_factory):
    """What this release stores for the clip, in a store of its own (read only by its users): its database URL."""
    d = tmp_path_factory.mktemp("fresh")
    url = f"sqlite:///{d / 'fresh.db'}"
    assert _run(clip, d / "fresh", url).returncode == 0
    return url


def _run(d, out, db, *more):
    return signalwise("vision", "run", "--video", str(d / "clip.mp4"), "--camera", str(d / "cam.yaml"), "--signals",
                      str(d / "signals.csv"), "--signals-offset", str(OFFSET_S), "--out", str(out), "--db", db,
                      "--start", START.isoformat(), *map(str, more))


def _stored(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ViolationRow.__table__).order_by(ViolationRow.id))]


def _counts(engine) -> tuple:
    """Every count row (hourly and daily), and what trends and hotspots answer from them."""
    with engine.connect() as conn:
        rows = tuple(sorted(tuple(r) for t in (ViolationCountsHourly, ViolationCountsDaily)
                            for r in conn.execute(select(t.__table__))))
    return rows, trends(engine, "hour"), trends(engine, "day"), hotspots(engine)


def _old_release_store(url: str, rows: list[dict]):
    """A store at schema 0017 holding `rows` as the old release wrote them (no provenance columns, its instants,
    its hourly and daily counts), upgraded to this release."""
    engine = create_store_engine(url)
    upgrade(engine, "0017")
    counts: Counter = Counter()
    with engine.begin() as conn:
        for r in rows:
            at = START + dt.timedelta(seconds=OLD_RELEASE_S[(r["kind"], r["track_id"])])
            # through the column types, as the old release wrote (no provenance columns: 0017 has none)
            conn.execute(ViolationRow.__table__.insert().values({**{k: r[k] for k in OLD_COLUMNS}, "occurred_at": at}))
            for cam, app in ((r["camera_id"], r["approach"]), (r["camera_id"], "*"), ("*", "*")):
                hour = at.replace(minute=0, second=0, microsecond=0)
                counts[(ViolationCountsHourly, cam, app, r["kind"], hour)] += 1
                counts[(ViolationCountsDaily, cam, app, r["kind"], hour.replace(hour=0))] += 1
        for (table, cam, app, kind, bucket), n in counts.items():
            conn.execute(table.__table__.insert().values(camera_id=cam, approach=app, kind=kind, count=n,
                                                         bucket=bucket))
    upgrade(engine)
    return engine


@pytest.mark.slow
def test_footage_stored_before_0018_is_refused_then_replaced_never_stored_twice(clip, fresh, tmp_path, db_url):
    # what this release stores for the clip, in a store of its own: the rows the old release's are compared with
    new_rows = _stored(get_engine(fresh))
    assert {(r["kind"], r["track_id"]) for r in new_rows} == set(OLD_RELEASE_S)
    n = len(new_rows)

    engine = _old_release_store(db_url, new_rows)
    old_rows, old_counts = _stored(engine), _counts(engine)
    assert [r["source"] for r in old_rows] == [None] * n and summary(engine)["total"] == n

    # the same clip after the upgrade: none stored again, and the refusal says they are rows with no source
    p = _run(clip, tmp_path / "again", db_url)
    assert p.returncode == 2, p.stdout + p.stderr
    assert (f"{n} violation(s) of camera cam-1 from this video are stored already, {n} of them rows with no "
            "recorded source (stored by a release before schema 0018" in p.stderr), p.stderr
    assert "--replace stores this run's in their place" in p.stderr
    assert _stored(engine) == old_rows and _counts(engine) == old_counts

    # --replace: the old rows go, off their counts, and this run's take their place: as in a store that had only it
    p = _run(clip, tmp_path / "replace", db_url, "--replace")
    assert p.returncode == 0, p.stderr
    assert f"note: --replace: {n} violation(s) stored with no recorded source" in p.stderr, p.stderr
    replaced = _stored(engine)
    assert len(replaced) == n and all(r["source"] == new_rows[0]["source"] for r in replaced)
    assert [(r["kind"], r["track_id"], r["occurred_at"]) for r in replaced] == [
        (r["kind"], r["track_id"], r["occurred_at"]) for r in new_rows]
    assert _counts(engine) == _counts(get_engine(fresh))

    # and from then on the video is known by its source: refused before it runs, as any video stored already
    p = _run(clip, tmp_path / "third", db_url)
    assert p.returncode == 2 and f"{n} violation(s) of camera cam-1 from this video (clip.mp4, sha256:" in p.stderr
    assert not (tmp_path / "third").exists()
    engine.dispose()


def _violation(at: dt.datetime, kind: str, track: int, source: str | None, camera: str = "cam-1") -> dict:
    return {"occurred_at": at, "camera_id": camera, "device_id": "B1", "approach": "north", "kind": kind,
            "track_id": track, "source": source, "frame": None if source is None else 7}


def test_a_row_with_no_source_is_the_same_violation_only_at_its_camera_kind_track_and_instant(db_url):
    """Speeding: up to 6 s either side (the old per-frame call against the measured second); a red light: up to
    6 s later (the old anchor-timed crossing); anything else is another violation, stored."""
    engine = get_engine(db_url)
    t0 = START + dt.timedelta(microseconds=250)
    old = [_violation(t0, "speeding", 1, None), _violation(t0, "red_light", 2, None),
           _violation(t0, "speeding", 3, None), _violation(t0, "speeding", 4, None),
           _violation(t0, "red_light", 5, None), _violation(t0, "speeding", 6, None, camera="cam-2")]
    assert insert_violations(engine, old) == len(old)
    src = "sha256:" + "cd" * 32
    held = [_violation(t0 + dt.timedelta(seconds=2), "speeding", 1, src),  # measured 2 s after the old call
            _violation(t0 - dt.timedelta(seconds=0.3), "red_light", 2, src)]  # front crossed 0.3 s before the anchor
    other = [_violation(t0 + dt.timedelta(seconds=6.5), "speeding", 3, src),  # 6.5 s apart
             _violation(t0, "red_light", 4, src),  # another kind
             _violation(t0 - dt.timedelta(seconds=7), "red_light", 5, src),  # a red light 7 s before the old one
             _violation(t0, "speeding", 6, src)]  # another camera
    assert insert_violations(engine, held + other) == len(other)
    assert summary(engine)["total"] == len(old) + len(other)
    # replacing: the two old rows go, the new ones are stored in their place
    assert insert_violations(engine, held, replace_unsourced=True) == len(held)
    with engine.connect() as conn:
        unsourced = conn.execute(text("SELECT kind, track_id FROM violations WHERE source IS NULL "
                                      "ORDER BY track_id")).all()
    assert [tuple(r) for r in unsourced] == [("speeding", 3), ("speeding", 4), ("red_light", 5), ("speeding", 6)]
    assert summary(engine)["total"] == len(old) + len(other)
    engine.dispose()


def _red_light(at: dt.datetime, approach: str, source: str | None, stop_line: str | None = None) -> dict:
    """A red light of track 7 at cam-1, on the frame of its instant (30 fps from START) when it has a source."""
    frame = None if source is None else round((at - START).total_seconds() * 30)
    return {**_violation(at, "red_light", 7, source), "approach": approach, "stop_line": stop_line, "frame": frame}


def _unsourced_left(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT approach, stop_line FROM violations WHERE source IS NULL ORDER BY approach, stop_line"))]


def _north_then_east(source: str | None) -> list[dict]:
    """Track 7 called at the north approach at START and at the east one 2 s later (within a red light's 6 s)."""
    return [_red_light(START, "north", source), _red_light(START + dt.timedelta(seconds=2), "east", source)]


def test_a_tracks_two_old_calls_at_two_approaches_hold_its_two_new_calls_one_each(db_url):
    engine = get_engine(db_url)
    assert insert_violations(engine, _north_then_east(None)) == 2
    assert store_violations(engine, _north_then_east("sha256:" + "ef" * 32)) == Stored(0, held_unsourced=2)
    assert summary(engine)["total"] == 2 and len(_unsourced_left(engine)) == 2
    engine.dispose()


def test_replace_finding_one_of_a_tracks_two_old_calls_again_removes_that_one_only(db_url):
    """--replace finds the north call again, not the east one: the east row is another violation, and stays."""
    engine = get_engine(db_url)
    assert insert_violations(engine, _north_then_east(None)) == 2
    north = _north_then_east("sha256:" + "ef" * 32)[:1]
    assert store_violations(engine, north, replace_unsourced=True) == Stored(1, replaced_unsourced=1)
    assert _unsourced_left(engine) == [("east", None)]
    assert summary(engine)["total"] == 2
    engine.dispose()


def test_an_old_row_holds_its_nearest_call_only_and_a_stop_line_both_name_must_agree(db_url):
    engine = get_engine(db_url)
    src, s = "sha256:" + "0f" * 32, dt.timedelta(seconds=1)
    # one old north row at 3.2 s; the run calls the track at 0 s and 3 s: the 3 s call is that row's
    assert insert_violations(engine, [_red_light(START + 3.2 * s, "north", None)]) == 1
    assert store_violations(engine, [_red_light(START, "north", src), _red_light(START + 3 * s, "north", src)]) \
        == Stored(stored=1, held_unsourced=1)
    with engine.connect() as conn:
        stored = conn.execute(select(ViolationRow.occurred_at).where(ViolationRow.source == src)).scalars().all()
    assert [to_utc(t) for t in stored] == [START]
    # stop lines: another one named on both rows is another violation; one row naming none matches either
    later = START + 60 * s
    assert insert_violations(engine, [_red_light(later, "west", None, "W-left"),
                                      _red_light(later + 30 * s, "south", None, "S-right")]) == 2
    assert store_violations(engine, [_red_light(later, "west", src, "W-right"),
                                     _red_light(later + 30 * s, "south", src)]) == Stored(stored=1, held_unsourced=1)
    assert _unsourced_left(engine) == [("north", None), ("south", "S-right"), ("west", "W-left")]
    # as many pairs as can be: calls at 0 s and 5.9 s, old rows at 6 s and 11 s (11 s is too late for the 0 s
    # call): the 0 s call pairs with 6 s, 5.9 s with 11 s, although 5.9 s is nearest 6 s
    east = START + 120 * s
    assert insert_violations(engine, [_red_light(east + 6 * s, "east", None),
                                      _red_light(east + 11 * s, "east", None)]) == 2
    assert store_violations(engine, [_red_light(east, "east", src), _red_light(east + 5.9 * s, "east", src)],
                            replace_unsourced=True) == Stored(stored=2, replaced_unsourced=2)
    assert ("east", None) not in _unsourced_left(engine)
    engine.dispose()
