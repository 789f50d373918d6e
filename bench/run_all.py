"""Run every benchmark in turn (what `make bench` does). Each prints its own figures."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
for script in ("overhead.py", "memory.py", "quality.py", "atspm_bench.py", "ingest_bench.py", "api_bench.py"):
    if (HERE / script).exists():
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], cwd=HERE.parent, check=False)
