"""Overhead of the full signalwise loop against plain libsumo stepping.

For each network: wall time per simulated hour of
  (a) plain libsumo stepping the network with its own program, no outputs;
  (b) the same, plus the SUMO outputs a max-pressure run asks for (tripinfo,
      edgeData, emissions edgeData, instant detector loops) — what SUMO alone
      costs for the evidence;
  (c) `signalwise run` with max-pressure: observe -> decide -> shield ->
      actuate -> events -> metrics, including writing the run directory.
Runs alternate (a, b, c, a, b, c, ...) in fresh processes; we report medians
and the ratios c/a and c/b measured in the same session.

    .venv/bin/python bench/overhead.py [--repeat 3] [--networks resco:grid4x4,grid]

With `--vs-reference`, whole processes instead, alternating: the plain
max-pressure reference script (shared/reference/maxpressure_ref.py, its own
rules), `signalwise run -c max-pressure --timing reference` with the full
evidence (`run_full`: as a user runs it, the evidence replayed on the second
core when there is one), the same with `--evidence inline` (the run's own
SUMO computes it) and with `--record lean`; medians of wall time and of CPU
time (user + system of the process and its children: what each cost when
other jobs share the cores), their ratios to the reference, and the
1-minute load average seen between rounds. One untimed round comes first, with bytecode writing on, so that no
timed process compiles a module (`_warm_up`):

    .venv/bin/python bench/overhead.py --vs-reference [--repeat 3] [--networks resco:grid4x4,resco:cologne8]
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
from pathlib import Path

from _common import median, run_child

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_SCRIPT = ROOT.parent / "shared" / "reference" / "maxpressure_ref.py"
SIGNALWISE_CLI = str(Path(sys.executable).with_name("signalwise"))

PLAIN = r"""
import json, sys, time
from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import import_libsumo, sumo_binary
s = load(sys.argv[1]); extra = sys.argv[2:]
ls = import_libsumo()
cmd = [sumo_binary(), "-n", str(s.net_file), "-r", ",".join(map(str, s.route_files)), "-b", str(s.begin_s),
       "-e", str(s.end_s), "--no-step-log", "true", "--no-warnings", "true", "--seed", "1",
       "--time-to-teleport", "300", *extra]
t0 = time.perf_counter()
ls.start(cmd)
while ls.simulation.getTime() < s.end_s:
    ls.simulationStep()
ls.close()
print(json.dumps({"wall_s": time.perf_counter() - t0, "sim_s": s.end_s - s.begin_s}))
"""

WITH_OUTPUTS = r"""
import json, sys, time, tempfile
from pathlib import Path
from signalwise.sim.scenario import load
from signalwise.sim.detectors import place_detectors
from signalwise.sim.outputs import write_meandata_file
from signalwise.sim.sumo_home import import_libsumo, sumo_binary
s = load(sys.argv[1]); d = Path(tempfile.mkdtemp())
lay = place_detectors(s.net_file, d, live=False)
md = write_meandata_file(d / "m.add.xml", 60, d / "edge.xml", d / "em.xml")
ls = import_libsumo()
cmd = [sumo_binary(), "-n", str(s.net_file), "-r", ",".join(map(str, s.route_files)), "-b", str(s.begin_s),
       "-e", str(s.end_s), "--no-step-log", "true", "--no-warnings", "true", "--seed", "1",
       "--time-to-teleport", "300", "--additional-files", f"{lay.instant_file},{md}",
       "--tripinfo-output", str(d / "ti.xml"), "--emissions.volumetric-fuel", "true",
       "--tripinfo-output.write-unfinished", "true", "--tripinfo-output.write-undeparted", "true"]
t0 = time.perf_counter()
ls.start(cmd)
while ls.simulation.getTime() < s.end_s:
    ls.simulationStep()
ls.close()
print(json.dumps({"wall_s": time.perf_counter() - t0, "sim_s": s.end_s - s.begin_s}))
"""

SIGNALWISE = r"""
import json, sys, time, tempfile
from pathlib import Path
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
t0 = time.perf_counter()
r = execute_run(RunConfig(scenario=sys.argv[1], controller="max-pressure", seed=1), Path(tempfile.mkdtemp()) / "r")
print(json.dumps({"wall_s": time.perf_counter() - t0, "loop_s": r.metrics["wall_s"], "sim_s": r.metrics["simulated_s"],
                  "violations": r.metrics.get("safety", {}).get("violations")}))
"""


def _timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one whole process.

    The CPU time says what the process itself cost when other jobs share the
    cores (the wall time then counts their turns too).
    """
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _warm_up(cmd: list[str], env: dict | None) -> None:
    """One untimed run of `cmd` that writes the .pyc files of every module it imports, in .venv and the
    checkouts: under PYTHONDONTWRITEBYTECODE (our machines set it) each timed process would otherwise compile
    the modules no earlier command compiled, the reference script's (traci, sumolib) as well as ours, and the
    bench would time the compiler. A user's Python writes them on the first run."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)


def vs_reference(networks: list[str], repeat: int, script: Path, baseline_src: Path | None = None) -> dict:
    """Whole processes, alternating: reference script, signalwise run (full), signalwise run --record lean;
    with `baseline_src`, also the full run of another checkout's code (its `src` folder), for a before/after
    measured in the same alternation."""
    from signalwise.sim.scenario import load

    results = {}
    for net in networks:
        scenario = load(net)
        sumocfg = scenario.net_file.parent / f"{scenario.net_file.name.split('.')[0]}.sumocfg"
        walls: dict[str, list[float]] = {"reference": [], "run_full": [], "run_full_inline": [], "run_lean": []}
        if baseline_src is not None:
            walls["baseline_full"] = []
        cpus: dict[str, list[float]] = {name: [] for name in walls}
        loads = [os.getloadavg()[0]]
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(-1, repeat):  # round -1: the warm-up, untimed
                runs = {"reference": [sys.executable, str(script), str(sumocfg), "mp", "1"]}
                for name, record, evidence in (("run_full", "full", "auto"), ("run_full_inline", "full", "inline"),
                                               ("run_lean", "lean", "auto")):
                    runs[name] = [
                        SIGNALWISE_CLI, "run", "--scenario", net, "--controller", "max-pressure", "--timing",
                        "reference", "--record", record, "--evidence", evidence, "--run-dir", f"{tmp}/{name}{k}"]
                if baseline_src is not None:
                    runs["baseline_full"] = [*runs["run_full"][:-1], f"{tmp}/baseline{k}"]
                for name, cmd in runs.items():
                    env = {**os.environ, "PYTHONPATH": str(baseline_src)} if name == "baseline_full" else None
                    if k < 0:
                        _warm_up(cmd, env)
                        continue
                    wall, cpu = _timed(cmd, env)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                loads.append(os.getloadavg()[0])
        ref, ref_cpu = median(walls["reference"]), median(cpus["reference"])
        res = {f"{name}_s": round(median(w), 2) for name, w in walls.items()}
        res.update({f"{name}_cpu_s": round(median(c), 2) for name, c in cpus.items()})
        for name in [n for n in walls if n != "reference"]:
            res[f"ratio_{name.removeprefix('run_')}"] = round(median(walls[name]) / ref, 2)
            res[f"cpu_ratio_{name.removeprefix('run_')}"] = round(median(cpus[name]) / ref_cpu, 2)
        res.update(repeats=repeat, load_avg_1min=[round(x, 1) for x in (min(loads), max(loads))])
        results[net] = res
        print(net, json.dumps(res), flush=True)
    return results


def _compile_signalwise() -> None:
    """signalwise's modules compiled before whole processes are timed: an editable checkout under
    PYTHONDONTWRITEBYTECODE (our machines set it) would otherwise compile them again in every process."""
    import compileall

    import signalwise

    compileall.compile_dir(Path(signalwise.__file__).parent, quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--networks", default=None, help="default: resco:grid4x4,grid (resco:grid4x4,resco:cologne8 "
                                                     "with --vs-reference)")
    ap.add_argument("--vs-reference", action="store_true", help="whole processes against the reference script")
    ap.add_argument("--reference-script", type=Path, default=REFERENCE_SCRIPT)
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="with --vs-reference: another checkout's src folder, run as a fourth variant (e.g. git "
                         "worktree add /tmp/base REV, then --baseline-src /tmp/base/src)")
    args = ap.parse_args()
    _compile_signalwise()
    if args.vs_reference:
        if not args.reference_script.is_file():
            ap.error(f"{args.reference_script}: no reference script there (it lives in shared/reference/ beside the "
                     "checkout); name it with --reference-script")
        nets = (args.networks or "resco:grid4x4,resco:cologne8").split(",")
        if args.baseline_src is not None and not (args.baseline_src / "signalwise").is_dir():
            ap.error(f"{args.baseline_src}: no signalwise package in it (name a checkout's src folder)")
        print(json.dumps(vs_reference(nets, args.repeat, args.reference_script, args.baseline_src), indent=2))
        return
    args.networks = args.networks or "resco:grid4x4,grid"
    results = {}
    for net in args.networks.split(","):
        plain, outs, ours, loop, viol = [], [], [], [], []
        for _ in range(args.repeat):
            plain.append(run_child(PLAIN, net)[1]["wall_s"])
            outs.append(run_child(WITH_OUTPUTS, net)[1]["wall_s"])
            r = run_child(SIGNALWISE, net)[1]
            ours.append(r["wall_s"])
            loop.append(r["loop_s"])
            viol.append(r["violations"])
            sim_h = r["sim_s"] / 3600
        res = {
            "plain_libsumo_s_per_sim_h": round(median(plain) / sim_h, 2),
            "libsumo_with_outputs_s_per_sim_h": round(median(outs) / sim_h, 2),
            "signalwise_loop_only_s_per_sim_h": round(median(loop) / sim_h, 2),
            "signalwise_run_total_s_per_sim_h": round(median(ours) / sim_h, 2),
            "ratio_run_vs_plain": round(median(ours) / median(plain), 2),
            "ratio_loop_vs_plain": round(median(loop) / median(plain), 2),
            "ratio_run_vs_outputs": round(median(ours) / median(outs), 2),
            "safety_violations": viol,
            "repeats": args.repeat,
        }
        results[net] = res
        print(net, json.dumps(res), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
