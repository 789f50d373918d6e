"""Time and peak memory of `signalwise db copy` from a SQLite store to PostgreSQL and to another SQLite file.

    .venv/bin/python bench/db_copy_bench.py [--records 100000]

Ingests RECORDS synthetic interval records (20 runs x 20 intersections, 4 approach rows each, and their
roll-ups) into a throw-away SQLite file with `signalwise ingest`, then copies that store with `signalwise db
copy` as a child process into a throw-away PostgreSQL schema (127.0.0.1:5432, database `test`; left out when
not reachable) and into a new SQLite file, and prints for each the rows copied, the wall time, rows/s and the
child's peak resident memory (getrusage, MB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*: test and bench helpers
from _records import record_lines  # noqa: E402
from support.databases import isolated_database, postgres_unavailable_reason  # noqa: E402

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


#: runs `signalwise db copy` and prints its peak RSS (KiB): a process of its own, so that the peak is the copy's,
#: not the ingest's before it
_MEASURED = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(done.stderr); print(done.stdout, end=''); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def copy_once(src: str, dst: str) -> tuple[int, float, float]:
    """(rows copied, wall seconds, the copy's peak RSS in MB) of one `signalwise db copy`."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, SIGNALWISE, "db", "copy", "--from", src, "--to", dst],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"db copy failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    *out, peak_kib = done.stdout.strip().splitlines()
    rows = int(out[-1].split()[1])  # "copied N rows from ..."
    return rows, wall, int(peak_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines = work / "records.jsonl"
        with open(lines, "w") as fh:
            for line in record_lines(args.records, [f"sim{i}" for i in range(20)], 20):
                fh.write(line + "\n")
        src = f"sqlite:///{work / 'src.db'}"
        subprocess.run([SIGNALWISE, "ingest", str(lines), "--db", src], check=True, capture_output=True)
        print(f"source: {args.records} records ingested into a SQLite file, "
              f"{(work / 'src.db').stat().st_size / 1e6:.0f} MB")
        targets = [("SQLite -> SQLite", "sqlite")]
        if postgres_unavailable_reason() is None:
            targets.insert(0, ("SQLite -> PostgreSQL", "postgresql"))
        else:
            print(f"PostgreSQL left out: {postgres_unavailable_reason()}")
        for label, kind in targets:
            folder = work / kind
            folder.mkdir()
            with isolated_database(kind, folder) as dst:
                rows, wall, peak_mb = copy_once(src, dst)
            print(f"{label:<22} {rows:>9} rows  {wall:6.1f} s  {rows / wall:>8.0f} rows/s  peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
