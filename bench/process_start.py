"""What forking simulation processes from a preloaded server saves (`sim/processes.py`).

Whole `signalwise` processes, alternating: the same command with every
simulation process spawned (`SIGNALWISE_START_METHOD=spawn`, a new
interpreter that imports numpy, libsumo and signalwise) and forked from the
server (the default). Two commands: a short phase-score training (eight
episodes: four candidates, then the learned and the starting weights on two
validation seeds) and a comparison (two controllers × three seeds). Prints
the median wall time of each and the ratio forked / spawned, measured in the
same run. Wall time only: the server's children are not the command's own,
so their CPU time is not counted in the command's.

    .venv/bin/python bench/process_start.py [--repeat 3] [--networks single,resco:cologne1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
METHODS = ("spawn", "forkserver")


def commands(network: str, out: str) -> dict[str, list[str]]:
    return {
        "train": [SIGNALWISE, "train", "--agent", "phase-score", "-s", network, "--generations", "1", "--popsize",
                  "4", "--validation-seeds", "2", "--workers", "2", "--out", f"{out}/train"],
        "compare": [SIGNALWISE, "compare", "-s", network, "-c", "fixed,max-pressure", "--seeds", "3", "--workers",
                    "2", "--out", f"{out}/compare"],
    }


def timed(cmd: list[str], method: str) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SIGNALWISE_START_METHOD": method})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:4])} failed under {method}: {p.stderr.strip()[-500:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds per command (default 3)")
    parser.add_argument("--networks", default="single,resco:cologne1", help="comma-separated scenarios")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    results = {}
    for network in args.networks.split(","):
        walls: dict[tuple[str, str], list[float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.repeat):
                for method in METHODS:
                    for name, cmd in commands(network, f"{tmp}/{method}{k}").items():
                        walls.setdefault((name, method), []).append(timed(cmd, method))
                        print(f"{network} {name} {method} round {k + 1}: {walls[name, method][-1]:.2f} s",
                              file=sys.stderr)
        row = {}
        for name in ("train", "compare"):
            spawned, forked = median(walls[name, "spawn"]), median(walls[name, "forkserver"])
            row[name] = {"spawn_s": round(spawned, 2), "forkserver_s": round(forked, 2),
                         "ratio": round(forked / spawned, 2)}
        results[network] = {**row, "repeats": args.repeat}
        print(network, json.dumps(row))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
