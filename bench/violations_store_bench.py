"""The violation store against the issue's targets: write rate, trend queries over 1 M violations, evidence JPEGs.

    .venv/bin/python bench/violations_store_bench.py [--rows 1000000] [--db URL] [--images 200]

- `--rows 0 --db URL` queries a database filled by an earlier run, writing nothing;
- write: `insert_violations` in batches of 1,000 (what the live `ViolationWriter` does), rows and their
  hourly/daily counts in one transaction each; rows/s, median over the batches (goal: >= 1,000 rows/s);
- queries over `--rows` violations (50 cameras x 4 approaches, spread over 90 days): trends per hour and
  per day over the whole span and over one camera, hotspots, summary; median of 7 runs each, ms
  (goal: trends < 100 ms over 1 M violations);
- evidence: `--images` annotated 640x480 JPEGs through `EvidenceWriter` (its own thread); images/s.
Default database: a fresh SQLite file in a temporary directory (PostgreSQL: --db postgresql://...).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN_S = 90 * 86400


def rows(n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        yield {"occurred_at": T0 + dt.timedelta(seconds=rng.uniform(0, SPAN_S)),
               "camera_id": f"cam-{rng.randrange(50):02d}", "device_id": f"J{rng.randrange(50)}",
               "approach": rng.choice(("north", "south", "east", "west")),
               "kind": "red_light" if rng.random() < 0.6 else "speeding", "track_id": i,
               "speed_mps": rng.uniform(5, 30), "limit_mps": 13.89,
               "track": [[0.0, 1.0, 2.0, 3.0, 4.0]] * 10}


def timed(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, metavar="URL",
                    help="a database URL (sqlite:///FILE, postgresql://...); default: a fresh SQLite file")
    ap.add_argument("--images", type=int, default=200)
    a = ap.parse_args()
    from signalwise.store import get_engine
    from signalwise.store.engine import DatabaseURLError
    from signalwise.store.violations import hotspots, insert_violations, summary, trends

    tmp = Path(tempfile.mkdtemp(prefix="signalwise-violations-"))
    url = a.db or f"sqlite:///{tmp / 'violations.db'}"
    try:
        engine = get_engine(url)
    except DatabaseURLError as exc:  # says what to give instead
        ap.error(f"--db: {exc}")
    batch, rates, done = [], [], 0
    t_all = time.perf_counter()
    for r in rows(a.rows, 1):
        batch.append(r)
        if len(batch) == 1000:
            t0 = time.perf_counter()
            insert_violations(engine, batch)
            rates.append(len(batch) / (time.perf_counter() - t0))
            done += len(batch)
            batch = []
    if batch:
        insert_violations(engine, batch)
        done += len(batch)
    if rates:
        print(f"write: {done} violations into {engine.dialect.name} in batches of 1,000: "
              f"{statistics.median(rates):,.0f} rows/s median batch ({done / (time.perf_counter() - t_all):,.0f} rows/s "
              "overall, row generation included)")
    from sqlalchemy import func, select

    from signalwise.store.tables import ViolationRow

    with engine.connect() as conn:
        done = conn.execute(select(func.count()).select_from(ViolationRow.__table__)).scalar_one()
    end = T0 + dt.timedelta(seconds=SPAN_S)
    print(f"queries over {done:,} violations (90 days, 50 cameras x 4 approaches), median of 7, ms:")
    for label, fn in (
        ("trends per hour, 90 days, all cameras", lambda: trends(engine, "hour", T0, end)),
        ("trends per day, 90 days, all cameras", lambda: trends(engine, "day", T0, end)),
        ("trends per hour, 90 days, one camera", lambda: trends(engine, "hour", T0, end, camera_id="cam-07")),
        ("trends per day, 7 days from mid-day, all", lambda: trends(engine, "day", T0 + dt.timedelta(hours=12),
                                                                    T0 + dt.timedelta(days=7, hours=12))),
        ("hotspots, 90 days", lambda: hotspots(engine, T0, end)),
        ("hotspots, 30 days from mid-day", lambda: hotspots(engine, T0 + dt.timedelta(hours=12),
                                                            T0 + dt.timedelta(days=30, hours=12))),
        ("summary, 90 days", lambda: summary(engine, T0, end)),
    ):
        print(f"  {label:45s} {timed(fn):8.1f}")
    if a.images:
        import numpy as np

        from signalwise.vision.evidence import EvidenceJob, EvidenceWriter
        from signalwise.vision.synthetic import Scene

        frames = [f for f, _t, _tr, _s in Scene(seed=3).frames(2.0)]
        writer = EvidenceWriter(tmp / "evidence", max_queue=a.images)
        t0 = time.perf_counter()
        for k in range(a.images):
            writer.submit(EvidenceJob(tmp / "evidence" / f"{k}.jpg", frames[k % len(frames)], (100, 100, 140, 120),
                                      tuple((float(x), 110.0) for x in np.linspace(20, 100, 30)), ((90, 90), (90, 130)),
                                      ("cam-1 B1 red light track 7 t=12.34 s", "approach west speed 14.2 m/s")))
        queued = time.perf_counter() - t0
        writer.close()
        wall = time.perf_counter() - t0
        print(f"evidence: {a.images} annotated 640x480 JPEGs: {a.images / wall:.0f} images/s written by the writer "
              f"thread; the pipeline waited {1000 * queued / a.images:.2f} ms per image to queue them")


if __name__ == "__main__":
    main()
