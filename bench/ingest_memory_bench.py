"""Peak memory of `signalwise ingest` on a large JSON Lines file.

    .venv/bin/python bench/ingest_memory_bench.py [--records 1000000] [--db sqlite|postgresql]

Writes the file (50 runs x 20 intersections, 4 directions per record) into a
temporary directory, runs `signalwise ingest FILE --db ...` as a child
process into a throw-away SQLite file or PostgreSQL schema, and prints the
child's peak resident memory (getrusage of the child, in MB), the wall time
and records/s. Target: peak <= 300 MB for 1,000,000 records.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _records import record_lines  # noqa: E402

from signalwise.store.testing import isolated_database, postgres_unavailable_reason  # noqa: E402


def write_jsonl(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        for line in record_lines(n, [f"CLI_{i}" for i in range(50)], 20):
            fh.write(line + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args()
    if args.db == "postgresql" and (reason := postgres_unavailable_reason()):
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory() as tmp, isolated_database(args.db, Path(tmp)) as url:
        path = Path(tmp) / "records.jsonl"
        write_jsonl(path, args.records)
        size_mb = path.stat().st_size / 1e6
        cli = Path(sys.executable).with_name("signalwise")
        t = time.perf_counter()
        proc = subprocess.run([str(cli), "ingest", str(path), "--db", url], capture_output=True, text=True,
                              env={**os.environ, "TERM": "dumb"})
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"signalwise ingest failed: {proc.stderr[-800:]}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"signalwise ingest of {args.records:,} records ({size_mb:,.0f} MB JSONL) into {args.db}: "
          f"peak RSS {peak_mb:.0f} MB, {elapsed:.0f} s ({args.records / elapsed:,.0f} records/s)"
          f"{'' if peak_mb <= 300 else '  MISS (target <= 300 MB)'}")


if __name__ == "__main__":
    main()
