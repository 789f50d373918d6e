"""What the first command on a new store costs: `signalwise db upgrade` on an empty database.

Whole processes, alternating: this checkout against another checkout's code (`--baseline-src`, its `src`
folder), each creating a new SQLite file (and a new PostgreSQL schema when 127.0.0.1:5432 answers). Prints the
median wall time and CPU time (user + system of the process) of each, and their ratios, measured in the same run.
A new store is made from tables.py at once (`store/engine.py`, `_create_at_head`); a checkout from before that
runs every migration from the first.

    git worktree add /tmp/base REV        # a checkout to compare with
    .venv/bin/python bench/new_store.py --baseline-src /tmp/base/src [--repeat 9]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import median

ROOT = Path(__file__).resolve().parents[1]
SIGNALWISE = [str(Path(sys.executable).with_name("signalwise"))]  # the entry point a user runs


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one process; fails loudly when the command does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or "schema empty ->" not in done.stdout:
        raise RuntimeError(f"{' '.join(cmd[1:])} ({env.get('PYTHONPATH', 'this checkout')}): {done.stdout}{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _postgres_url() -> str | None:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.databases import POSTGRES_URL, postgres_unavailable_reason

    return None if postgres_unavailable_reason() else POSTGRES_URL


def _new_schema(base_url: str) -> tuple[str, str]:
    """(URL of a new, empty PostgreSQL schema, its name)."""
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    schema = f"sw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}", schema


def _drop_schema(base_url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, required=True,
                    help="another checkout's src folder (git worktree add /tmp/base REV, then /tmp/base/src)")
    ap.add_argument("--repeat", type=int, default=9, help="alternating rounds (default 9)")
    args = ap.parse_args()
    if not (args.baseline_src / "signalwise").is_dir():
        ap.error(f"{args.baseline_src}: no signalwise package in it (name a checkout's src folder)")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    envs = {"this": {**base_env, "PYTHONPATH": str(ROOT / "src")},
            "baseline": {**base_env, "PYTHONPATH": str(args.baseline_src.resolve())}}
    pg = _postgres_url()
    kinds = ["sqlite"] + (["postgresql"] if pg else [])
    results: dict[str, dict[str, dict[str, list[float]]]] = {
        k: {n: {"wall_s": [], "cpu_s": []} for n in envs} for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat + 1):  # round 0 is untimed: each side writes its bytecode first
            for kind in kinds:
                for name, env in envs.items():
                    schema = None
                    if kind == "sqlite":
                        url = f"sqlite:///{tmp}/{name}{k}.db"
                    else:
                        url, schema = _new_schema(pg)
                    try:
                        wall, cpu = _timed([*SIGNALWISE, "db", "upgrade", "--db", url], env)
                    finally:
                        if schema:
                            _drop_schema(pg, schema)
                    if k:
                        results[kind][name]["wall_s"].append(wall)
                        results[kind][name]["cpu_s"].append(cpu)
            print(f"round {k}/{args.repeat} done", file=sys.stderr)
    summary = {}
    for kind, by_name in results.items():
        row = {f"{name}_{m}": round(median(v), 3) for name, ms in by_name.items() for m, v in ms.items()}
        for m in ("wall_s", "cpu_s"):
            row[f"ratio_{m}"] = round(row[f"this_{m}"] / row[f"baseline_{m}"], 3)
        summary[kind] = row
    summary["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
