"""Did a refactor leave behaviour unchanged? Byte-compare runs of the working tree against a git ref.

Issue 11's bar for a refactor: for seeds 1-3 on `single`, `corridor` and `grid`
and every classical controller, `trips.csv` and `events.csv` are byte-identical
before and after. The test suite holds no golden files for this on purpose
(later issues change behaviour deliberately), so the check is this script, run
against the commit before the refactor:

    .venv/bin/python bench/behaviour_diff.py --ref main~1
    .venv/bin/python bench/behaviour_diff.py --ref HEAD --scenarios single \\
        --controllers fixed,max-pressure --seeds 1 --duration 300

The ref is checked out with `git worktree add --detach` into a temporary
directory (removed at the end, also on error or Ctrl-C). Both sides run
`signalwise run` with this interpreter; PYTHONPATH picks the code (`<worktree>/src`
for the ref, this repository's `src` for the working tree), and every run
reports which `signalwise` it imported so a mix-up aborts instead of passing.
Pairs run in parallel, the ref first in every other pair. Exit status 1 if any
pair differs or a run fails (shown with its error's last line). Run directories
of identical pairs are deleted (the full matrix leaves ~1 GB otherwise) unless
--keep-runs; those of differing pairs stay for inspection, logs always do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("trips.csv", "events.csv")
MARK = "behaviour_diff: signalwise from "
#: the child: say which package it imported, then be `signalwise ARGS...`
BOOT = (f"import sys, signalwise; print({MARK!r} + signalwise.__file__, file=sys.stderr, flush=True); "
        "from signalwise.cli import main; sys.argv = ['signalwise', *sys.argv[1:]]; main()")
#: running children, so an abort (Ctrl-C, SIGTERM, an error) stops them instead of waiting for them
LIVE: set[subprocess.Popen] = set()
LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()


class WrongCode(RuntimeError):
    """A side imported signalwise from somewhere other than the code it was meant to test."""


def stop_children() -> None:
    with LIVE_LOCK:
        STOPPING.set()
        for child in LIVE:
            child.terminate()


@dataclass
class Pair:
    scenario: str
    controller: str
    seed: int
    errors: dict[str, str] = field(default_factory=dict)  # side -> last line of its error
    diffs: dict[str, str | None] = field(default_factory=dict)  # file -> None if identical, else first difference
    wall_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.controller}-s{self.seed}"

    @property
    def identical(self) -> bool:
        return not self.errors and all(d is None for d in self.diffs.values())


def run_side(side: str, src: Path, pair: Pair, out: Path, duration: float | None) -> Path:
    """Run one `signalwise run` with the code under `src`; return its run directory (raise on failure)."""
    run_dir = out / pair.name / side
    shutil.rmtree(run_dir, ignore_errors=True)  # a run never overwrites another's evidence
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    args = ["run", "--scenario", pair.scenario, "--controller", pair.controller, "--seed", str(pair.seed),
            "--run-dir", str(run_dir)] + (["--duration", str(duration)] if duration is not None else [])
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("SIGNALWISE_DATABASE_URL", None)  # no --db: nothing goes to a database
    # -P: the child's cwd is not put on sys.path, so only PYTHONPATH decides which signalwise it imports
    with LIVE_LOCK:
        if STOPPING.is_set():
            raise RuntimeError("aborted")
        p = subprocess.Popen([sys.executable, "-P", "-c", BOOT, *args], env=env, cwd=out, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        LIVE.add(p)
    try:
        stdout, stderr = p.communicate()
    finally:
        with LIVE_LOCK:
            LIVE.discard(p)
    (out / pair.name / f"{side}.log").write_text(stdout + stderr)
    imported = next((ln[len(MARK):] for ln in stderr.splitlines() if ln.startswith(MARK)), None)
    if imported is not None and not Path(imported).resolve().is_relative_to(src.resolve()):
        raise WrongCode(f"the {side} run imported {imported}, not the code under {src}")
    if p.returncode != 0:
        lines = [ln for ln in (stderr + stdout).splitlines() if ln.strip() and not ln.startswith(MARK)]
        raise RuntimeError(lines[-1].strip() if lines else f"exit status {p.returncode}")
    return run_dir


def first_difference(ref: Path, tree: Path) -> str | None:
    """None if the two files are byte-identical, else where and how they first differ."""
    if not ref.exists() or not tree.exists():
        return f"missing in {'ref' if not ref.exists() else 'tree'}"
    a, b = ref.read_bytes(), tree.read_bytes()
    if a == b:
        return None
    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    n = next((i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y), min(len(la), len(lb)))

    def show(lines: list[bytes]) -> str:
        return repr(lines[n].decode(errors="replace").rstrip("\r\n"))[:100] if n < len(lines) else "<end of file>"

    return f"line {n + 1}\n  ref:  {show(la)}\n  tree: {show(lb)}"


def compare_pair(pair: Pair, index: int, sides: dict[str, Path], out: Path, duration: float | None,
                 keep_runs: bool) -> Pair:
    t0 = time.perf_counter()
    order = ["ref", "tree"] if index % 2 == 0 else ["tree", "ref"]
    dirs = {}
    for side in order:
        try:
            dirs[side] = run_side(side, sides[side], pair, out, duration)
        except WrongCode:
            raise
        except RuntimeError as exc:
            pair.errors[side] = str(exc)
    if not pair.errors:
        pair.diffs = {f: first_difference(dirs["ref"] / f, dirs["tree"] / f) for f in COMPARED}
        if pair.identical and not keep_runs:
            for d in dirs.values():
                shutil.rmtree(d)
    pair.wall_s = time.perf_counter() - t0
    return pair


def status(pair: Pair, file: str) -> str:
    if pair.errors:
        return "[red]run failed[/]"
    return "[green]yes[/]" if pair.diffs[file] is None else "[red]NO[/]"


def detail(pair: Pair) -> str:
    parts = [f"{side} run failed: {err}" for side, err in pair.errors.items()]
    parts += [f"{f} {d}" for f, d in pair.diffs.items() if d is not None]
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="git ref whose behaviour the working tree must reproduce")
    ap.add_argument("--scenarios", default="single,corridor,grid", help="comma-separated (default: %(default)s)")
    ap.add_argument("--controllers", default="fixed,webster,actuated,max-pressure",
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds (default: each scenario's own)")
    ap.add_argument("--workers", type=int, default=2, help="pairs run at once (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the run directories and logs go (default: bench/out/behaviour_diff-<time>)")
    ap.add_argument("--keep-runs", action="store_true", help="keep the run directories of identical pairs too")
    args = ap.parse_args()
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    pairs = [Pair(s, c, int(n)) for s in split(args.scenarios) for c in split(args.controllers)
             for n in split(args.seeds)]
    out = (args.out or REPO / "bench" / "out" / f"behaviour_diff-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=None if sys.stdout.isatty() else 200)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` removes the worktree
    tmp = Path(tempfile.mkdtemp(prefix="behaviour-diff-"))
    worktree = tmp / "ref"
    try:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(worktree), args.ref],
                       check=True)
        sides = {"ref": worktree / "src", "tree": REPO / "src"}
        console.print(f"ref {args.ref} ({_short_commit(args.ref)}) vs working tree {REPO}: "
                      f"{len(pairs)} pairs, {args.workers} at once, run directories in {out}")
        t0 = time.perf_counter()
        pool = ThreadPoolExecutor(args.workers)  # threads suffice: each run is its own child interpreter
        try:
            futures = [pool.submit(compare_pair, p, i, sides, out, args.duration, args.keep_runs) for i, p in enumerate(pairs)]
            for done, fut in enumerate(as_completed(futures), 1):
                p = fut.result()
                verdict = "identical" if p.identical else ("RUN FAILED" if p.errors else "DIFFERENT")
                console.print(f"[{done:>2}/{len(pairs)}] {p.name}: {verdict} ({p.wall_s:.1f} s)", highlight=False)
        finally:
            stop_children()  # no-op after a clean finish
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"])

    table = Table(title=f"behaviour: working tree vs {args.ref} ({time.perf_counter() - t0:.0f} s)")
    for col in ("scenario", "controller", "seed", "trips identical", "events identical", "first difference"):
        table.add_column(col)
    for p in pairs:
        table.add_row(p.scenario, p.controller, str(p.seed), status(p, "trips.csv"), status(p, "events.csv"),
                      detail(p))
    console.print(table)
    bad = [p for p in pairs if not p.identical]
    console.print(f"{len(pairs) - len(bad)} of {len(pairs)} pairs identical" + (f"; logs in {out}" if bad else ""))
    return 1 if bad else 0


def _short_commit(ref: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True,
                          text=True).stdout.strip()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except WrongCode as exc:
        sys.exit(f"behaviour_diff: {exc}")
    except KeyboardInterrupt:
        sys.exit("behaviour_diff: interrupted (runs stopped, worktree removed)")
