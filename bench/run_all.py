"""Run every benchmark in turn (what `make bench` does). Each prints its own figures.

    .venv/bin/python bench/run_all.py

Runs overhead.py, memory.py, quality.py, atspm_bench.py, ingest_bench.py and
api_bench.py one after the other, each with its own defaults (hours on a
2-core machine: quality.py alone runs `signalwise compare` on several
networks over 5 seeds). A script that fails does not stop the others.
"""

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = ("overhead.py", "memory.py", "quality.py", "atspm_bench.py", "ingest_bench.py", "api_bench.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()  # only --help: it must print this, not start the benchmarks
    for script in SCRIPTS:
        if (HERE / script).exists():
            print(f"== {script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script)], cwd=HERE.parent, check=False)


if __name__ == "__main__":
    main()
