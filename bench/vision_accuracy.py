"""The vision benchmark in one command: render `single`, run the pipeline on the top-down and oblique
videos, grade every figure against its target, then run the camera in the loop.

    .venv/bin/python bench/vision_accuracy.py [--out runs/vision-bench] [--render DIR]

It runs `signalwise vision bench` (see docs/vision-bench.md), which prints each
figure, its target and whether it was met, and keeps them in OUT/bench.json.
About 45 minutes on 2 busy cores: sumo-gui draws 2,500 frames (8 minutes),
the pipeline reads them for each view (2 to 6 minutes each), the camera-in-the-loop
run films and reads 3,000 more (17 minutes), the graders take a minute.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/vision-bench")
    ap.add_argument("--render", default=None, help="grade on an existing render instead of rendering again")
    args, rest = ap.parse_known_args()
    cmd = [sys.executable, "-m", "signalwise.cli", "vision", "bench", "--out", args.out, *rest]
    if args.render:
        cmd += ["--render", args.render]
    return subprocess.run(["nice", "-n", "10", *cmd], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
