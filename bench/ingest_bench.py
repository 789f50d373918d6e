"""Ingestion throughput and `signalwise ingest` memory.

    .venv/bin/python bench/ingest_bench.py [--records 100000] [--jsonl-records 1000000] [--skip-postgres]

Prints, for SQLite and PostgreSQL (when reachable): records/s of batches of
10,000 records (4 directions each) from JSON bytes to committed rows (the
POST /api/v1/ingest/batch path without HTTP), the same through the HTTP
endpoint (in-process ASGI), and the write path alone. Then the peak RSS of
`signalwise ingest` on a JSONL file. Target: >= 20,000 records/s; <= 300 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _records import record_lines  # noqa: E402

from signalwise.store import Settings, get_engine, ingest_records  # noqa: E402
from signalwise.store.ingest import gc_paused  # noqa: E402
from signalwise.store.schemas import RecordList  # noqa: E402
from signalwise.store.testing import isolated_database, postgres_unavailable_reason  # noqa: E402

BATCH = 10_000


def batches(n: int, tag: str) -> list[bytes]:
    lines = list(record_lines(n, [f"{tag}_{i}" for i in range(max(1, n // 20_000))], 20))
    return [("[" + ",".join(lines[i:i + BATCH]) + "]").encode() for i in range(0, len(lines), BATCH)]


def bench_store(url: str, n: int) -> dict:
    engine = get_engine(url)
    end_to_end, write_only = [], []
    for body in batches(n, "E2E"):
        t = time.perf_counter()
        with gc_paused():
            recs = RecordList.validate_json(body)
        t1 = time.perf_counter()
        ingest_records(engine, recs)
        t2 = time.perf_counter()
        end_to_end.append(len(recs) / (t2 - t))
        write_only.append(len(recs) / (t2 - t1))
    from fastapi.testclient import TestClient

    from signalwise.api import create_app

    http = []
    with TestClient(create_app(Settings(database_url=url))) as client:
        for body in batches(n // 2, "HTTP"):
            t = time.perf_counter()
            resp = client.post("/api/v1/ingest/batch", content=body, headers={"content-type": "application/json"})
            assert resp.status_code == 201, resp.text[:200]
            http.append(resp.json()["ingested"] / (time.perf_counter() - t))
    return {"bytes->rows": statistics.median(end_to_end), "HTTP batch": statistics.median(http),
            "write only": statistics.median(write_only)}


def bench_cli_memory(n: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        with open(path, "w") as fh:
            for line in record_lines(n, [f"CLI_{i}" for i in range(max(1, n // 20_000))], 20):
                fh.write(line + "\n")
        size_mb = path.stat().st_size / 1e6
        db = f"sqlite:///{Path(tmp) / 'cli.db'}"
        t = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "signalwise.cli", "ingest",
                               str(path), "--db", db], capture_output=True, text=True, env={**os.environ,
                                                                                            "TERM": "dumb"})
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"signalwise ingest failed: {proc.stderr[-500:]}")
        peak_kb = int(proc.stderr.strip().splitlines()[-1])
        return peak_kb / 1024, elapsed, int(size_mb)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--jsonl-records", type=int, default=1_000_000)
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    kinds = ["sqlite"]
    if not args.skip_postgres:
        reason = postgres_unavailable_reason()
        kinds.append("postgresql") if reason is None else print(f"skipping PostgreSQL: {reason}")
    print(f"batches of {BATCH} records x 4 directions, {args.records} records per database; median records/s")
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp, isolated_database(kind, Path(tmp)) as url:
            res = bench_store(url, args.records)
        print(f"  {kind:<10} " + "  ".join(f"{k}: {v:,.0f}/s" for k, v in res.items()))
    if args.jsonl_records:
        peak_mb, elapsed, size_mb = bench_cli_memory(args.jsonl_records)
        print(f"signalwise ingest of {args.jsonl_records:,} records ({size_mb} MB JSONL) into SQLite: "
              f"peak RSS {peak_mb:.0f} MB, {elapsed:.0f} s ({args.jsonl_records / elapsed:,.0f} records/s)")


if __name__ == "__main__":
    main()
