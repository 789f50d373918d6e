"""Where one `signalwise run` spends its CPU time, stage by stage.

    .venv/bin/python bench/run_breakdown.py [--scenario resco:cologne8] [--record lean] [--timing reference]

One run of max-pressure, in this process, as `signalwise run` does it
(command loading and configuration, SUMO's steps, our loop around them,
the run directory and the independent audit). CPU time (user + system of
this process), so that other jobs on the machine count little; each stage
is timed by wrapping the function that does it, which adds a few hundred
calls to a clock and nothing per lane or per decision.

Python's garbage collector is held off from the configuration on, as the
command holds it (`signalwise.collector`); `collector_s` is the CPU time of its
passes in the whole process. With `--collector-on` the run keeps it, as a
library caller of `execute_run` (a training episode) does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="resco:cologne8")
    ap.add_argument("--controller", default="max-pressure")
    ap.add_argument("--record", default="lean", choices=("full", "lean"))
    ap.add_argument("--timing", default="reference")
    ap.add_argument("--collector-on", action="store_true",
                    help="keep Python's garbage collector on during the run (signalwise run holds it off)")
    args = ap.parse_args()

    collector = _collector_clock()
    c = time.process_time()
    import libsumo

    libsumo_import = time.process_time() - c
    from signalwise.collector import collector_paused
    from signalwise.runtime import loop as loop_module
    from signalwise.runtime import run as run_module
    from signalwise.runtime.commands import _load_config

    spent: dict[str, float] = {}

    def timed(owner, name: str, label: str):
        inner = getattr(owner, name)

        def wrapper(*a, **k):
            c = time.process_time()
            try:
                return inner(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - c

        setattr(owner, name, wrapper)

    timed(libsumo, "simulationStep", "sumo_steps")
    timed(loop_module, "open_field", "sumo_start_and_signal_model")
    timed(loop_module, "_drive", "loop_incl_sumo_steps")
    timed(run_module, "write_evidence", "run_directory_incl_audit")
    timed(run_module, "_audit", "audit")
    # evidence inline: every stage in this process, where it can be timed (a run with a second core free
    # replays the emissions and audits in other processes: bench/overhead.py --vs-reference times that whole)
    with contextlib.nullcontext() if args.collector_on else collector_paused():
        cfg = _load_config(None, scenario=args.scenario, controller=args.controller, record=args.record,
                           timing_profile=args.timing, evidence="inline")
        loading = time.process_time()  # since the process started
        c = time.process_time()
        with tempfile.TemporaryDirectory() as tmp:
            run_module.execute_run(cfg, Path(tmp) / "run")
        run_cpu = time.process_time() - c
    out = {
        "scenario": args.scenario, "record": args.record,
        "import_libsumo_s": round(libsumo_import, 3),  # the reference script pays this too
        "loading_and_config_s": round(loading - libsumo_import, 3),  # Python, the command, the configuration
        "sumo_start_and_signal_model_s": round(spent["sumo_start_and_signal_model"], 3),
        "sumo_steps_s": round(spent["sumo_steps"], 3),
        "loop_around_sumo_s": round(spent["loop_incl_sumo_steps"] - spent["sumo_steps"], 3),
        "run_directory_s": round(spent["run_directory_incl_audit"] - spent["audit"], 3),
        "audit_s": round(spent["audit"], 3),
        "execute_run_s": round(run_cpu, 3),
        "collector_s": round(collector(), 3),  # its passes, in the whole process
        "total_cpu_s": round(time.process_time(), 3),
    }
    print(json.dumps(out))


def _collector_clock():
    """A function giving the CPU time Python's garbage collector has spent in its passes since this call."""
    import gc

    spent, started = [0.0], [0.0]

    def note(phase: str, _info: dict) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            spent[0] += time.process_time() - started[0]

    gc.callbacks.append(note)
    return lambda: spent[0]


if __name__ == "__main__":
    main()
