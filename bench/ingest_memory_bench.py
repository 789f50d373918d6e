"""Peak memory of `signalwise ingest` on a large JSON Lines file.

    .venv/bin/python bench/ingest_memory_bench.py [--records 1000000] [--db sqlite|postgresql]

Writes the file (50 runs x 20 intersections, 4 directions per record) into a
temporary directory, runs `signalwise ingest FILE --db ...` as a child
process into a throw-away SQLite file or PostgreSQL schema, and prints the
child's peak resident memory (getrusage, in MB), the peak of the sum over
the child and its own children (the validation worker processes; PSS,
shared pages counted once; sampled every 0.1 s from /proc), the wall time and records/s. Target: peak <= 300
MB for 1,000,000 records.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*: test and bench helpers
from _records import record_lines  # noqa: E402
from support.databases import isolated_database, postgres_unavailable_reason  # noqa: E402


def write_jsonl(path: Path, n: int) -> None:
    with open(path, "w") as fh:
        for line in record_lines(n, [f"CLI_{i}" for i in range(50)], 20):
            fh.write(line + "\n")


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and all its descendants now, from /proc (Linux), in MB:
    pages shared between them (a forked worker shares its parent's) count once, not once per process."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("Pss:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


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
        proc = subprocess.Popen([str(cli), "ingest", str(path), "--db", url], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "TERM": "dumb"})
        tree_peak = 0.0
        while proc.poll() is None:
            tree_peak = max(tree_peak, tree_pss_mb(proc.pid))
            time.sleep(0.1)
        stderr = proc.stderr.read()
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"signalwise ingest failed: {stderr[-800:]}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"signalwise ingest of {args.records:,} records ({size_mb:,.0f} MB JSONL) into {args.db}: "
          f"peak RSS {peak_mb:.0f} MB (with its worker processes, PSS, {tree_peak:.0f} MB), "
          f"{elapsed:.0f} s ({args.records / elapsed:,.0f} records/s; load average {os.getloadavg()[0]:.1f})"
          f"{'' if max(peak_mb, tree_peak) <= 300 else '  MISS (target <= 300 MB)'}")


if __name__ == "__main__":
    main()
