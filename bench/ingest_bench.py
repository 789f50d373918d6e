"""Batch ingestion throughput.

    .venv/bin/python bench/ingest_bench.py [--records 200000] [--db sqlite|postgresql|both]

For each database (a fresh SQLite file or PostgreSQL schema, removed
afterwards), the median records/s over batches of 10,000 records (4
directions each, 50 runs x 20 intersections, roll-ups kept):

- bytes->rows: `ingest_json_array` from the JSON body to committed rows — the
  POST /api/v1/ingest/batch work without HTTP (every other batch), in turn
  with `SIGNALWISE_INGEST_WORKERS` validation processes (default 1 on 2
  cores) and with none; also per CPU-second of this process plus the
  workers, which the load distorts less than wall-clock rates;
- write only: the other batches, validated first, then timed from models;
- HTTP batch: the endpoint itself, in-process (ASGI), on a further
  `records / 2`.

Target: >= 20,000 records/s. `bench/ingest_memory_bench.py` measures
`signalwise ingest` on a JSONL file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*: test and bench helpers
from _records import record_lines  # noqa: E402
from support.databases import isolated_database, postgres_unavailable_reason  # noqa: E402

from signalwise.collector import collector_paused  # noqa: E402
from signalwise.store import Settings, get_engine, ingest_records  # noqa: E402
from signalwise.store.ingest import ingest_json_array  # noqa: E402
from signalwise.store.schemas import RecordList  # noqa: E402
from signalwise.store.settings import RATE_LIMIT_KINDS  # noqa: E402

BATCH = 10_000
#: three batches: end to end with the validation workers, written alone, end to end without workers
MIN_RECORDS = 3 * BATCH


def batches(n: int, tag: str) -> list[bytes]:
    lines = list(record_lines(n, [f"{tag}_{i}" for i in range(50)], 20))
    return [("[" + ",".join(lines[i:i + BATCH]) + "]").encode() for i in range(0, len(lines), BATCH)]


def bench_store(url: str, n: int) -> dict:
    from signalwise.store.pipeline import default_workers, warm

    engine = get_engine(url)
    workers = default_workers()
    warm(workers)  # worker start-up (once per process) is not ingestion time
    modes = [workers, 0] if workers else [0]
    end_to_end = {w: [] for w in modes}
    per_cpu_s = {w: [] for w in modes}
    main_only = {w: [] for w in modes}  # per CPU-second of this process alone: the writer's ceiling
    write_only = []
    for k, body in enumerate(batches(n, "E2E")):
        if k % 2 == 0:  # bytes -> validated -> committed rows: the batch endpoint's work without HTTP
            w = modes[(k // 2) % len(modes)]  # alternate: with validation workers, and all in this process
            t, cpu, stats = time.perf_counter(), time.process_time(), {}
            count = ingest_json_array(engine, body, max_records=BATCH, workers=w, stats=stats)
            end_to_end[w].append(count / (time.perf_counter() - t))
            # this process and the validation workers (not the PostgreSQL server)
            main_cpu = time.process_time() - cpu
            per_cpu_s[w].append(count / (main_cpu + stats.get("worker_cpu_s", 0.0)))
            main_only[w].append(count / main_cpu)
        else:  # validated first, then timed: the database write (with roll-ups) alone
            with collector_paused(age_on_exit=False):
                recs = RecordList.validate_json(body)
            t = time.perf_counter()
            ingest_records(engine, recs)
            write_only.append(len(recs) / (time.perf_counter() - t))
    from fastapi.testclient import TestClient

    from signalwise.api import create_app

    http = []
    # a real key (auth is part of every call); no rate limit: this measures ingestion, not the limiter
    from signalwise.store.keys import create_key

    _, key = create_key(get_engine(url), "ingest-bench", ["ingest"])
    with TestClient(create_app(Settings(database_url=url, rate_limits=dict.fromkeys(RATE_LIMIT_KINDS))), headers={"X-API-Key": key}) as client:
        for body in batches(n // 2, "HTTP"):
            t = time.perf_counter()
            resp = client.post("/api/v1/ingest/batch", content=body, headers={"content-type": "application/json"})
            assert resp.status_code == 201, resp.text[:200]
            http.append(resp.json()["ingested"] / (time.perf_counter() - t))
    out = {}
    for w in modes:
        out[f"bytes->rows, {w} workers"] = statistics.median(end_to_end[w])
        out[f"  per CPU-second ({w} workers)"] = statistics.median(per_cpu_s[w])
        if w:
            out["  per CPU-second of the writer"] = statistics.median(main_only[w])
    return {**out, "HTTP batch": statistics.median(http), "write only": statistics.median(write_only)}


def cpu_us_per_record(work, n: int, repeat: int = 3) -> float:  # noqa: ANN001
    """Least CPU time of `repeat` calls of work(), in µs per record (CPU time: the load barely shifts it)."""
    best = float("inf")
    for _ in range(repeat):
        with collector_paused(age_on_exit=False):
            t = time.process_time()
            work()
            best = min(best, time.process_time() - t)
    return best / n * 1e6


def parts(n: int = 10_000) -> None:
    """CPU cost of each step of bytes -> rows, per record, to choose how validation is done."""
    import pickle

    from pydantic_core import from_json

    from signalwise.store import rollups
    from signalwise.store.pipeline import split_array
    from signalwise.store.schemas import IntersectionRecord
    from signalwise.store.writers import record_rows, sqlite_utc_text, with_run_ids

    lines = [line.encode() for line in record_lines(n, [f"P_{i}" for i in range(50)], 20)]
    body = b"[" + b",".join(lines) + b"]"
    recs = RecordList.validate_json(body)
    ids = {f"P_{i}": i for i in range(50)}
    rows = record_rows(recs, sqlite_utc_text)
    totals = rollups.deltas(*rows, "sqlite")
    steps = {
        "split_array (a batch body into records)": lambda: split_array(body),
        "one model_validate_json per line": lambda: [IntersectionRecord.model_validate_json(x) for x in lines],
        "one validate_json over the joined lines": lambda: RecordList.validate_json(b"[" + b",".join(lines) + b"]"),
        "from_json + validate_python (old batch path)": lambda: RecordList.validate_python(from_json(body)),
        "record_rows (SQLite)": lambda: record_rows(recs, sqlite_utc_text),
        "rollups.deltas": lambda: rollups.deltas(*rows, "sqlite"),
        "pickle + unpickle rows and totals": lambda: pickle.loads(pickle.dumps((rows, totals), protocol=5)),
        "with_run_ids": lambda: with_run_ids(rows[0], ids),
    }
    print(f"CPU µs per record over {n:,} records (least of 3; load average {os.getloadavg()[0]:.1f}):")
    for name, work in steps.items():
        print(f"  {name:<46} {cpu_us_per_record(work, n):6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000,
                    help=f"records per database, at least {MIN_RECORDS:,} (default 200,000)")
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--parts", action="store_true", help="only the CPU cost per record of each step")
    args = ap.parse_args()
    if args.parts:
        parts()
        return
    if args.records < MIN_RECORDS:  # each timed kind needs a batch of its own: fewer left a median of nothing
        ap.error(f"--records must be at least {MIN_RECORDS:,}: batches of {BATCH:,}, every other one timed "
                 "end to end with and without validation workers, the rest written alone")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and (reason := postgres_unavailable_reason()):
        print(f"skipping PostgreSQL: {reason}")
        kinds.remove("postgresql")
    print(f"batches of {BATCH:,} records x 4 directions, {args.records:,} records per database; median records/s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp, isolated_database(kind, Path(tmp)) as url:
            res = bench_store(url, args.records)
        best = max(v for k, v in res.items() if k.startswith("bytes->rows"))
        verdict = "meets" if best >= 20_000 else "MISSES"
        print(f"  {kind} ({verdict} 20,000/s bytes->rows; load average now {os.getloadavg()[0]:.1f}):")
        for k, v in res.items():
            print(f"    {k:<32} {v:9,.0f}/s")


if __name__ == "__main__":
    main()
