"""Helpers shared by the benchmarks: run a Python snippet in a fresh process, time it, read its peak RSS."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

PY = sys.executable

# `support.*` (test and benchmark helpers kept out of the installed package) lives in tests/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))


def run_child(code: str, *args: str) -> tuple[float, dict]:
    """(wall seconds, JSON the child printed last) of a fresh interpreter running `code`."""
    t0 = time.perf_counter()
    p = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "child failed")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return wall, json.loads(lines[-1]) if lines else {}


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of one command, via wait4 (children only, so each run is measured alone)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise RuntimeError(f"{cmd[:3]} exited with {status}")
    return usage.ru_maxrss / 1024.0


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")

