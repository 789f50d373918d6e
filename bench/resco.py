"""The RESCO table: networks × controllers × timing profiles × seeds, with one command.

    .venv/bin/python bench/resco.py                                  # the whole table (5 seeds)
    .venv/bin/python bench/resco.py --networks resco:cologne1 --seeds 1 --profiles reference \\
        --controllers max-pressure,maxpressure_ref                   # one quick check
    .venv/bin/python bench/resco.py --controllers fixed,max-pressure,ql:models/cologne1/model   # a learned column
    .venv/bin/python bench/resco.py --ray [--ray-address auto]       # cells as Ray tasks
    .venv/bin/python bench/resco.py --profiles safety,safety+calls,benchmark --controllers fixed,max-pressure
                                     # the safety profile with its cycle bound from calls, beside the default
    .venv/bin/python bench/resco.py --networks path/to/city.sumocfg --duration 3600   # a network you bring

A network is a scenario name (resco:NAME, single, corridor, grid) or the
path of a .sumocfg, run as `signalwise run --sumocfg` runs it (its network,
routes, additional files and time window); `--duration` shortens the window
of each .sumocfg network to its first N seconds (a scenario name keeps its own
window: a RESCO network's is the benchmark's, which its published figures are
measured over).

Every cell (network, profile, controller, seed) is one `signalwise run` in a
fresh worker process (libsumo holds one simulation per process); its figures
are kept in `OUT/cells/...json` as soon as it finishes, so an interrupted
sweep resumes where it stopped and a finished one only prints. Ctrl-C stops
the sweep at once (the cells already finished stay kept; exit status 130). A
cell that fails is reported with its whole error and not kept (the sweep ends
with exit status 1); a run in which the controller raised errors (the shield
served its fallback plan instead) is kept, and its table cell says so.
`--fresh` runs every cell again, each one's figures replaced as its new run
finishes; OUT/fresh.json marks the sweep until all its cells have run, so the
same command after a Ctrl-C (or a failed cell) runs only those it has not run
yet. `--workers` runs at most one worker per CPU this process may use.
Each kept cell records the software that made it (signalwise's version, its
git commit and whether the checkout had uncommitted changes, SUMO's and
Python's versions), and OUT/table.md names it. A sweep whose table would hold
cells of several (resumed after a `git pull` or a SUMO upgrade, or cells kept
before they recorded it) is refused before any run, with the count of each:
`--fresh` runs them again, `--mix-versions` uses them as they are and the
table names each software with its number of cells.

A cell's key holds what makes its figure: the network (its file's digest), the profile, the controller, the seed,
and the digest of what the controller runs when it is not signalwise's own: a `ql:PATH` model's files, a
`py:FILE.py` file, a `py:MODULE`'s module file (found on the path without importing it), an installed
plugin's module file with its package's name and version. Edit your controller and its cells run again; leave
it, and they are served from OUT/cells. Only the file named is read: after editing a module it imports, give
`--fresh`. `--config FILE` (a `signalwise run --config` file, e.g. your controller's
`controller_options: {user: ...}`) applies to every cell, and its digest is part of the key too.

The controller `maxpressure_ref` is `shared/reference/maxpressure_ref.py`
(the plain max-pressure with its own rules, whatever the profile; it is
listed under the reference profile). The script lives beside the checkout,
not in it: `--reference-script` names it elsewhere, and a sweep with its
column where it is missing is refused before any run. It runs a RESCO network's own .sumocfg,
and on any other network a .sumocfg written for the cell with the files and
window our run uses. Prints, and writes to OUT/table.md (unless no cell of
the selection is kept: then it says so and leaves OUT/table.md as it was):

1. average delay (RESCO definition) per network, profile and controller:
   mean ± 95% CI over seeds, change against `fixed` under the same profile
   and Welch's p; never-inserted vehicles and safety violations summed;
2. where its cells are kept, the price of safety per controller: delay under the safety profile /
   under the benchmark profile (and under `safety+calls`, the safety
   profile with `timing: {cycle_calls: true}`, when it is asked for);
3. where their cells are kept, the two checks of issue 16: (a) under the benchmark profile, `fixed`
   within 10 % of RESCO's published fixed-time figures and max-pressure
   below them (below 654 s on arterial4x4); (b) under the reference profile,
   max-pressure within 10 % of `maxpressure_ref`: on the RESCO networks
   where the reference does not block its own entries (the five the issue
   names), elsewhere over the seeds where neither run left over 1 % of its
   vehicles never inserted (without teleports a junction can lock, and
   which seed does is chaotic).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing import resource_tracker
from multiprocessing.connection import wait as connection_wait
from pathlib import Path

from signalwise.exitcodes import BAD_INPUT, FAILED, INTERRUPTED
from signalwise.provenance import software, software_text

ROOT = Path(__file__).resolve().parent.parent
RESCO = ("cologne1", "cologne3", "cologne8", "ingolstadt1", "ingolstadt7", "ingolstadt21", "grid4x4", "arterial4x4")
BUILTIN = ("single", "corridor", "grid")
REFERENCE_CONTROLLER = "maxpressure_ref"
REFERENCE_SCRIPT = ROOT.parent / "shared" / "reference" / "maxpressure_ref.py"

#: RESCO's published average delay, seconds (Ault & Sharon, NeurIPS 2021; per-episode values in
#: Pi-Star-Lab/RESCO resco_benchmark/utils/avg_timeLoss.py, 'FIXED <map> 0 x x', mean of 30 episodes)
PUBLISHED_FIXED = {"cologne1": 56.6, "cologne3": 46.4, "cologne8": 63.8, "ingolstadt1": 39.4, "ingolstadt7": 91.3,
                   "ingolstadt21": 133.1}
#: the best published learned result per network (the issue's list)
PUBLISHED_BEST_LEARNED = {"cologne1": 26.1, "cologne3": 24.0, "cologne8": 21.6, "ingolstadt1": 20.9,
                          "ingolstadt7": 31.2, "ingolstadt21": 59.6, "grid4x4": 33.0, "arterial4x4": 654.0}
#: profiles that are a named profile with configuration beside it: the safety profile with its cycle bound
#: counted from calls (docs/benchmarks.md#a-cycle-bound-that-runs-from-calls)
PROFILE_CONFIG = {"safety+calls": {"timing": {"profile": "safety", "cycle_calls": True}}}
SAFETY_PROFILES = ("safety", "safety+calls")
#: RESCO networks where the reference does not block its own entries (check (b))
REFERENCE_CHECK = ("cologne1", "cologne3", "cologne8", "ingolstadt1", "grid4x4")
#: elsewhere, the share of its vehicles a run may leave never inserted for its seed to count in check (b)
REFERENCE_BLOCKED_SHARE = 0.01
#: a vehicle that never departed, in a tripinfo written with --tripinfo-output.write-undeparted
UNDEPARTED = re.compile(r'<tripinfo [^>]*\bdepart="-1')


# -- one cell --------------------------------------------------------------------------------------------------

def run_cell(cell: dict) -> dict:
    """One run (in a fresh process): its delay, never-inserted vehicles, audit and wall time."""
    t0 = time.perf_counter()
    if cell["controller"] == REFERENCE_CONTROLLER:
        return _reference_cell(cell, t0)
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.run import execute_run

    cfg = RunConfig.model_validate(cell_settings(cell))
    with tempfile.TemporaryDirectory(prefix="resco-cell-") as tmp:
        result = execute_run(cfg, Path(tmp) / "run")
    m = result.metrics
    return {**cell, "avg_delay_s": m["network"]["avg_delay_s"], "never_inserted": m["network"]["never_inserted"],
            "vehicles_total": m["network"]["vehicles_total"],
            "locked_vehicles": m["network"]["locked_veh"],
            "teleports": m["network"].get("teleports"),  # SUMO's count; None: SUMO wrote none
            "violations": m.get("safety", {}).get("violations"), "fallback_share": m["network"]["fallback_fraction"],
            "controller_errors": m["network"]["controller_errors"],
            "wall_s": round(time.perf_counter() - t0, 2)}


def cell_settings(cell: dict) -> dict:
    """The run configuration of a cell: the `--config` file's settings (`run_config`) under the cell's own
    network, controller, seed and profile, then any configuration the cell carries beside its profile
    (`config`: bench/safety_price.py adds one safety rule, `safety+calls` counts the cycle bound from calls)."""
    from signalwise.runtime.config import timing_beside

    given = cell.get("run_config") or {}
    own = {**network_config(cell["network"], cell.get("duration_s")), "controller": cell["controller"],
           "seed": cell["seed"], "record": "lean"}
    if not given:
        return {**own, "timing": cell["profile"], **cell.get("config", {})}
    settings = {**given, **own, "timing": timing_beside(given.get("timing"), cell["profile"])}
    for key, value in cell.get("config", {}).items():  # the file's timing keys stay beside the cell's own
        if key == "timing" and isinstance(value, dict):
            timing = settings["timing"]
            value = {**(timing if isinstance(timing, dict) else {"profile": timing}), **value}
        settings[key] = value
    return settings


def is_sumocfg(network: str) -> bool:
    return network.endswith(".sumocfg")


def network_config(network: str, duration_s: float | None = None) -> dict:
    """A run's settings for a network: a scenario name, or a .sumocfg (cut to `duration_s` when given)."""
    if is_sumocfg(network):
        return {"scenario": None, "sumocfg": network, **({"duration_s": duration_s} if duration_s else {})}
    return {"scenario": network}


def network_label(network: str) -> str:
    """How tables name a network: a scenario's name, a .sumocfg's file name."""
    return Path(network).name if is_sumocfg(network) else network


def scenario_of(network: str):
    from signalwise.sim.scenario import from_sumocfg, load

    return from_sumocfg(Path(network)) if is_sumocfg(network) else load(network)


def _reference_cell(cell: dict, t0: float) -> dict:
    """The reference script on a RESCO network's own .sumocfg, or on one written with the files and window our
    run of the cell uses (the script takes only a .sumocfg and runs its whole window)."""
    from xml.sax.saxutils import quoteattr

    network = cell["network"]
    scenario = scenario_of(network)
    with tempfile.TemporaryDirectory(prefix="resco-ref-") as tmp:
        if network.startswith("resco:"):
            sumocfg = scenario.net_file.parent / f"{scenario.net_file.name.split('.')[0]}.sumocfg"
        else:
            end_s = scenario.begin_s + cell["duration_s"] if cell.get("duration_s") else scenario.end_s

            def files(paths) -> str:
                return quoteattr(",".join(str(Path(f).resolve()) for f in paths))

            sumocfg = Path(tmp) / "run.sumocfg"
            sumocfg.write_text(
                f"<configuration><input><net-file value={files([scenario.net_file])}/>"
                + (f"<route-files value={files(scenario.route_files)}/>" if scenario.route_files else "")
                + (f"<additional-files value={files(scenario.additional_files)}/>" if scenario.additional_files else "")
                + f'</input><time><begin value="{scenario.begin_s:g}"/><end value="{end_s:g}"/></time></configuration>')
        # the script leaves its tripinfo in a directory of its own under TMPDIR: here, so that its vehicles never
        # inserted are counted from it (its statistics' count is empty on SUMO 1.28) and it goes with the cell
        done = subprocess.run([sys.executable, str(cell["script"]), str(sumocfg), "mp", str(cell["seed"])],
                              capture_output=True, text=True, env={**os.environ, "TMPDIR": tmp})
        if done.returncode != 0:  # the output's tail: SUMO's own reason
            raise RuntimeError(f"{cell['script']} failed: {(done.stderr.strip() or done.stdout.strip())[-500:]}")
        out = done.stdout.split()
        never = sum(len(UNDEPARTED.findall(f.read_text())) for f in Path(tmp).glob("*/trip.xml"))
    return {**cell, "avg_delay_s": float(out[out.index("RESCOdelay") + 1]), "never_inserted": never,
            "vehicles_total": int(out[out.index("trips") + 1]), "violations": None,
            "wall_s": round(time.perf_counter() - t0, 2)}


# -- the sweep ---------------------------------------------------------------------------------------------------

def cell_path(out: Path, cell: dict) -> Path:
    """Where a cell's figures are kept: by network (and the digest of its file, when the plan knows it: a
    changed network file is a new network, never a cached one), profile, controller and seed."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in cell["controller"])
    network = network_label(cell["network"]).replace(":", "-")
    if cell.get("net_sha256"):
        network += "-" + cell["net_sha256"][:12]
    if cell.get("duration_s"):
        network += f"-{cell['duration_s']:g}s"
    if cell.get("model_sha256"):  # a model trained again, or fine-tuned, under the same path is another column
        safe += "-" + cell["model_sha256"][:12]
    if cell.get("code_sha256"):  # a user's controller edited (or its plugin upgraded) is another column too
        safe += "-" + cell["code_sha256"][:12]
    profile = cell["profile"] + (f"-config-{cell['config_sha256'][:12]}" if cell.get("config_sha256") else "")
    return out / "cells" / network / profile / safe / f"s{cell['seed']}.json"


def controller_code_sha256(controller: str) -> str | None:
    """The digest of the code a user's controller runs: a `py:FILE.py`'s file, a `py:MODULE`'s module file, an
    installed plugin's module file with its package's name and version. None for signalwise's own controllers,
    and when the file is not found (the cell then says why when it runs)."""
    from signalwise.control.plugins import is_module_spec, parse_module_spec

    if is_module_spec(controller):
        target = parse_module_spec(controller)[0]
        path = Path(target) if target.endswith(".py") else module_file(target, [str(Path.cwd())])
        return _file_sha256(path, b"")
    return plugin_sha256(controller.partition(":")[0])


def plugin_sha256(name: str) -> str | None:
    """The digest of the installed plugin `name` (its package's name and version, its module file); None when
    no single plugin has that name (a built-in's, or one refused for a clash, which the run says)."""
    from importlib.metadata import entry_points

    from signalwise.control.plugins import ENTRY_POINT_GROUP

    eps = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if len(eps) != 1:
        return None
    (ep,) = eps
    dist = getattr(ep, "dist", None)
    package = f"{getattr(dist, 'name', '')} {getattr(dist, 'version', '')}".encode()
    return _file_sha256(module_file(ep.module, []), package) or hashlib.sha256(package).hexdigest()


def module_file(name: str, first: list[str]) -> Path | None:
    """The file of module `name` (dotted) as an import would find it, `first` then `sys.path` searched, without
    importing it or its packages (`importlib.util.find_spec` imports the parents); None when not found."""
    from importlib.machinery import PathFinder

    search: list[str] | None = [*first, *sys.path]
    parts = name.split(".")
    spec = None
    for i in range(len(parts)):
        if search is None:  # a plain module's submodule: there is none
            return None
        spec = PathFinder.find_spec(".".join(parts[: i + 1]), search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations) if spec.submodule_search_locations is not None else None
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and Path(origin).is_file() else None


def _file_sha256(path: Path | None, prefix: bytes) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(prefix + b"\0" + path.read_bytes()).hexdigest()


def model_dir(controller: str) -> Path | None:
    """The model directory a `ql:PATH[?options]` column runs; None for any other (a registry's `ql:@v3` included)."""
    kind, _, arg = controller.partition(":")
    path = arg.partition("?")[0]
    return Path(path) if kind == "ql" and path and not path.startswith("@") else None


def model_sha256(path: Path) -> str:
    """The digest of what a model decides with: its files, and its meta.json without what `evaluate` and
    registering add to it (its evaluations), so that evaluating a model keeps its cells cached."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        data = f.read_bytes()
        if f.name == "meta.json" and f.parent == path:
            meta = json.loads(data)
            data = json.dumps({k: v for k, v in meta.items() if k != "evaluations"}, sort_keys=True).encode()
        digest.update(f.relative_to(path).as_posix().encode() + b"\0" + data)
    return digest.hexdigest()


def trained_profile(path: Path) -> str | None:
    """The timing profile a model's training episodes ran under (its meta.json), or None when it does not say."""
    try:
        run = json.loads((path / "meta.json").read_text())["training"]["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(run, dict):
        return None
    timing = run.get("timing")  # as `signalwise compare` reads it: no timing recorded is the default profile's
    return timing if isinstance(timing, str) else (timing or {}).get("profile", "safety")


def network_sha256(network: str) -> str:
    """The digest of the network file a scenario runs (of a .sumocfg's, with its routes: a user's files change)."""
    scenario = scenario_of(network)
    files = [scenario.net_file, *(scenario.route_files if is_sumocfg(network) else ())]
    return hashlib.sha256(b"".join(Path(f).read_bytes() for f in files)).hexdigest()


def plan(networks, profiles, controllers, seeds, script, duration_s: float | None = None,
         run_config: dict | None = None, config_sha256: str | None = None) -> list[dict]:
    """The cells of the sweep; `run_config`: a `--config` file's settings for every cell but the reference
    script's, `config_sha256` its digest (part of the cells' key)."""
    cells = []  # network by network, in the order given (cheap ones first: a partial sweep has whole rows)
    code = {c: controller_code_sha256(c) for c in controllers if c != REFERENCE_CONTROLLER}
    for network in networks:
        digest = network_sha256(network)
        for seed in seeds:
            for profile in profiles:
                for controller in controllers:
                    if controller == REFERENCE_CONTROLLER and profile != "reference":
                        continue
                    model = model_dir(controller)
                    cells.append({"network": network, "net_sha256": digest, "profile": profile,
                                  "controller": controller, "seed": seed,
                                  **({"model_sha256": model_sha256(model)} if model and model.is_dir() else {}),
                                  **({"code_sha256": code[controller]} if code.get(controller) else {}),
                                  **({"run_config": run_config, "config_sha256": config_sha256}
                                     if run_config and controller != REFERENCE_CONTROLLER else {}),
                                  **({"duration_s": duration_s} if duration_s and is_sumocfg(network) else {}),
                                  **({"config": PROFILE_CONFIG[profile]} if profile in PROFILE_CONFIG else {}),
                                  **({"script": str(script)} if controller == REFERENCE_CONTROLLER else {})})
    return cells


def sweep(cells: list[dict], out: Path, workers: int, ray_address: str | None, since_ns: int | None = None) -> int:
    """Run the cells not kept yet (with `since_ns`, a --fresh sweep's: not kept since it began); the number
    that failed. Ctrl-C stops it: exit 130, the finished cells kept."""
    todo = [c for c in cells if not is_kept(out, c, since_ns)]
    done = f"{len(cells) - len(todo)} " + ("cached" if since_ns is None else "already run by this --fresh sweep")
    print(f"{len(cells)} cells, {done}, {len(todo)} to run on "
          f"{'Ray' if ray_address else f'{workers} worker(s)'}", file=sys.stderr, flush=True)
    if not todo:
        return 0
    try:
        return _sweep_ray(todo, out, workers, ray_address) if ray_address else _sweep_processes(todo, out, workers)
    except KeyboardInterrupt:
        kept = sum(1 for c in cells if is_kept(out, c, since_ns))
        print(f"interrupted: {kept} of {len(cells)} cells done; run the same command again to resume",
              file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED) from None


def _sweep_processes(todo: list[dict], out: Path, workers: int) -> int:
    """Each cell in a process of its own, `workers` at a time. On Ctrl-C the running ones are stopped and no other
    starts (every cell that finished is kept already)."""
    ctx = multiprocessing.get_context("spawn")
    # the resource tracker every spawned worker registers with: started here, outside the SIGINT block below,
    # since launching it lifts that block (Python's `ResourceTracker.ensure_running`), and a Ctrl-C raised inside
    # a worker's start() left the worker reading its start-up data from a closed pipe: an EOFError traceback
    resource_tracker.ensure_running()
    queue, running = list(todo), {}
    done = failed = 0
    try:
        while queue or running:
            while queue and len(running) < workers:
                cell = queue.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_cell_process, args=(cell, send))
                # kept before it starts: a Ctrl-C raised inside start() must still find it to stop
                running[receive] = (proc, cell)
                # a Ctrl-C while the worker starts would reach it before its handler is set (a traceback from
                # its bootstrap): blocked here, the worker inherits the block and lifts it once it handles
                # SIGINT. The block is this thread's only: a Ctrl-C the kernel gives another thread (OpenBLAS's)
                # would raise inside start() before the worker has a pid to stop, so it is only noted meanwhile
                # and given to the handler in force once the worker has one (a background job's SIG_IGN ignores
                # it). A handler set outside Python (None) cannot be put back, and stays
                pressed: list[bool] = []
                handler = signal.getsignal(signal.SIGINT)
                if handler is not None:
                    signal.signal(signal.SIGINT, lambda *_, noted=pressed: noted.append(True))
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                try:
                    proc.start()
                finally:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                    if handler is not None:
                        signal.signal(signal.SIGINT, handler)
                if pressed and callable(handler):  # called here: raise_signal's KeyboardInterrupt can land in a
                    handler(signal.SIGINT, None)  # finalizer, which ignores it (default_int_handler raises it)
                elif pressed and handler == signal.SIG_DFL:
                    signal.raise_signal(signal.SIGINT)
                send.close()  # the worker's end: a worker that dies leaves `receive` at its end, not waiting
            for receive in connection_wait(list(running)):
                proc, cell = running.pop(receive)
                try:
                    result, error = receive.recv()
                except EOFError:  # killed (out of memory, say) before it could say anything
                    result, error = None, None
                receive.close()
                proc.join()
                if result is None and error is None:
                    error = f"its process ended without a result (exit code {proc.exitcode})"
                done += 1
                failed += not _keep(out, cell, error, result, done, len(todo))
    except KeyboardInterrupt:
        started = [proc for proc, _ in running.values() if proc.pid is not None]
        for proc in started:
            proc.terminate()
        for proc in started:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        raise
    return failed


def _stopped_by_the_sweep(*_) -> None:
    """SIGTERM from the sweep's Ctrl-C: unwind (so subprocess.run stops the reference script), saying nothing.
    The exit lands wherever the worker is, an import of a compiled extension included, whose failure (a panic,
    a traceback) would be printed after the sweep's own last line; the sweep has said what happened."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.exit(INTERRUPTED)


def _cell_process(cell: dict, send) -> None:
    """A worker: one cell, its figures or its error's text sent back (an exception may not survive pickling).

    Ctrl-C is the sweep's to handle: it stops the worker (SIGTERM, which unwinds it: subprocess.run kills the
    reference script on the way out). A handler, not SIG_IGN, so the script's process stops on Ctrl-C too."""
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, _stopped_by_the_sweep)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the sweep while this started
    try:
        try:
            result = (run_cell(cell), None)
        except Exception as exc:
            result = (None, error_text(exc))
        send.send(result)
    except BrokenPipeError:
        pass  # the sweep stopped (Ctrl-C) and no longer listens: nothing to say to it


def error_text(exc: BaseException) -> str:
    """A failed cell's error, whole (a pydantic error's last line is only its documentation link)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else repr(exc)


def _sweep_ray(todo: list[dict], out: Path, workers: int, address: str) -> int:
    import ray

    from signalwise.training.executors import ExecutorError, init_ray

    try:  # an address where nothing answers is said in seconds, as `signalwise train --ray` says it
        init_ray(address, workers, flag="--ray-address")
    except ExecutorError as exc:
        refuse(str(exc))
    remote = ray.remote(max_calls=1, num_cpus=1)(run_cell)
    pending = {remote.remote(c): c for c in todo}
    done = failed = 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            done += 1
            try:
                result, error = ray.get(ready[0]), None
            except ray.exceptions.RayTaskError as exc:
                # the cell's own error, said as the process path says it: Ray's wraps it in its type name and the
                # worker's colored traceback (`RayTaskError(ControllerUnavailable): ray::run_cell() ...`)
                result, error = None, error_text(exc.cause)
            except Exception as exc:  # a failed cell is reported, the others go on (a worker that died, say)
                result, error = None, error_text(exc)
            failed += not _keep(out, cell, error, result, done, len(todo))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return failed


def _keep(out: Path, cell: dict, error: str | None, result: dict | None, done: int, total: int) -> bool:
    """Keep a finished cell's figures and say so; say a failed cell's whole error (False: it is not kept, and
    figures kept for it before are removed).

    A run whose controller raised errors is kept, marked: it ran to the end (the shield served its fallback
    plan) and, the seed fixed, runs the same again, so running it again would only cost the time again. Its
    count stays in the cell and the table says it beside the delay, which is not the controller's own."""
    label = f"[{done}/{total}] {network_label(cell['network'])} {cell['profile']} {cell['controller']} s{cell['seed']}"
    path = cell_path(out, cell)
    if error is not None:
        path.unlink(missing_ok=True)  # a --fresh sweep's figures from before: no table shows them as the new ones
        print(f"{label}: FAILED {error}", file=sys.stderr, flush=True)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # the code and SUMO that made it (the workers run this process's: the same checkout and interpreter), so a
    # sweep resumed after an upgrade does not put two versions' figures in one table unsaid (`mixed_software`)
    tmp.write_text(json.dumps({**result, "software": software()}))
    tmp.replace(path)  # a cell on disk is always complete
    errors = result.get("controller_errors")
    print(f"{label}: {result['avg_delay_s']:.1f} s ({result['wall_s']:.0f} s)"
          + (f", CONTROLLER ERRORS: {errors} (fallback share {result.get('fallback_share') or 0:.0%})"
             if errors else ""), file=sys.stderr, flush=True)
    return True


# -- the table -------------------------------------------------------------------------------------------------------

def load_cells(out: Path, cells: list[dict]) -> dict[tuple, list[dict]]:
    grouped: dict[tuple, list[dict]] = {}
    for c in cells:
        path = cell_path(out, c)
        if path.exists():
            grouped.setdefault((c["network"], c["profile"], c["controller"]), []).append(json.loads(path.read_text()))
    return grouped


def _stats(rows: list[dict]) -> tuple[float, float, list[float]]:
    from signalwise.analytics.stats import mean_ci

    vals = [r["avg_delay_s"] for r in sorted(rows, key=lambda r: r["seed"])]
    ci = mean_ci(vals)
    half = (ci.ci_high - ci.ci_low) / 2 if len(vals) > 1 and not math.isnan(ci.ci_high) else float("nan")
    return ci.mean, half, vals


def cell_notes(rows: list[dict], seeds: int) -> str:
    """What a table cell adds after its delay: missing seeds, vehicles never inserted, seeds that ended locked,
    audit violations, runs in which the controller raised errors (their delay is partly the fallback plan's)."""
    text = f" [{len(rows)} of {seeds} seeds]" if len(rows) < seeds else ""
    never = sum(r.get("never_inserted") or 0 for r in rows)
    teleports = sum(r.get("teleports") or 0 for r in rows)
    uncounted = sum(1 for r in rows if _teleports_unknown(r))
    locked = sum(1 for r in rows if r.get("locked_vehicles"))
    viol = sum(r.get("violations") or 0 for r in rows)
    failing = sum(1 for r in rows if r.get("controller_errors"))
    if failing:
        text += f", **controller errors in {failing} run{'s' if failing > 1 else ''}**"
    if never:
        text += f", {never} never inserted"
    if teleports:  # each one cut a trip short and lowered the delay (docs/benchmarks.md)
        text += f", {teleports} teleport{'s' if teleports > 1 else ''}"
    if uncounted:
        text += f", teleports not counted in {uncounted} run{'s' if uncounted > 1 else ''} (kept from before: --fresh)"
    if locked:
        text += f", {locked} locked"
    if viol:
        text += f", **{viol} violation{'s' if viol > 1 else ''}**"
    return text


def _teleports_unknown(row: dict) -> bool:
    """A cell of ours kept from before runs counted teleports, under settings that let SUMO teleport (the
    benchmark and reference profiles never do; the reference script's cells are SUMO runs of its own, not counted)."""
    if row.get("teleports") is not None or row.get("controller") == REFERENCE_CONTROLLER:
        return False
    from signalwise.runtime.profiles import profile_teleport_s

    try:
        teleport_s = row.get("config", {}).get("time_to_teleport_s", profile_teleport_s(row["profile"]))
    except (KeyError, ValueError):  # a profile this version does not know: nothing to say
        return False
    return teleport_s >= 0


def seeds_text(seeds: int) -> str:
    return "seed 1" if seeds == 1 else f"seeds 1–{seeds}"


def tables(grouped, networks, profiles, controllers, seeds: int) -> str:
    """What a sweep prints and keeps in OUT/table.md: the delay table, then the price of safety and the checks
    where the cells kept fill a row of them."""
    sections = [table_header(grouped, seeds) + "\n\n" + table(grouped, networks, profiles, controllers, seeds)]
    sections += [f"Price of safety (delay under the {p} profile / under the benchmark profile):\n\n{text}"
                 for p in SAFETY_PROFILES if p in profiles
                 and (text := price_of_safety(grouped, networks, controllers, p)).count("\n") > 1]
    if (text := checks(grouped, networks)).count("\n") > 1:
        sections.append(f"Checks:\n\n{text}")
    sections.append(software_lines(grouped))
    return "\n\n".join(sections)


def table_header(grouped, seeds: int) -> str:
    """The delay table's first line, as its cells are: over which seeds (a cell with fewer kept says how many),
    and the change against fixed only where a cell shows one."""
    spread = "mean ± 95% CI over " if seeds > 1 else ""
    text = f"Average delay (RESCO definition), s: {spread}{seeds_text(seeds)}"
    if any(len(rows) < seeds for rows in grouped.values()):
        text += f", or over the seeds a cell has where it says [k of {seeds} seeds]"
    if any(c != "fixed" and (net, prof, "fixed") in grouped for net, prof, c in grouped):
        text += "; change vs fixed under the same profile, Welch p"
    return text + "."


def table(grouped, networks, profiles, controllers, seeds: int = 5) -> str:
    from signalwise.analytics.stats import compare

    lines = ["| network | profile | " + " | ".join(controllers) + " |",
             "|---|---|" + "---|" * len(controllers)]
    for net in networks:
        for prof in profiles:
            base = grouped.get((net, prof, "fixed"))
            cells_txt = []
            for c in controllers:
                rows = grouped.get((net, prof, c))
                if not rows:
                    cells_txt.append("–")
                    continue
                mean, half, vals = _stats(rows)
                text = f"{mean:.1f}" + (f" ± {half:.1f}" if not math.isnan(half) else "")
                if base and c != "fixed":
                    _, _, base_vals = _stats(base)
                    cmp = compare(base_vals, vals)
                    p = cmp.p_value
                    text += f" ({cmp.change_pct:+.0f} %, p {'<0.001' if p < 0.001 else f'{p:.3f}'})" \
                        if not math.isnan(p) else f" ({cmp.change_pct:+.0f} %)"
                cells_txt.append(text + cell_notes(rows, seeds))
            if any(t != "–" for t in cells_txt):
                lines.append(f"| {network_label(net)} | {prof} | " + " | ".join(cells_txt) + " |")
    return "\n".join(lines)


def price_of_safety(grouped, networks, controllers, safety: str = "safety") -> str:
    ctrls = [c for c in controllers if c != REFERENCE_CONTROLLER]
    lines = ["| network | " + " | ".join(f"{c}: {safety} / benchmark" for c in ctrls) + " |",
             "|---|" + "---|" * len(ctrls)]
    for net in networks:
        row = []
        for c in ctrls:
            s, b = grouped.get((net, safety, c)), grouped.get((net, "benchmark", c))
            if not s or not b:
                row.append("–")
                continue
            ms, mb = _stats(s)[0], _stats(b)[0]
            row.append(f"{ms:.1f} / {mb:.1f} = **{ms / mb:.2f}×**")
        if any(t != "–" for t in row):
            lines.append(f"| {network_label(net)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def max_pressure_target_s(name: str) -> float | None:
    """What check (a) asks max-pressure to beat on RESCO network `name`: RESCO's published fixed time, on
    arterial4x4 (which has none) the best published result."""
    return PUBLISHED_FIXED.get(name) or (PUBLISHED_BEST_LEARNED[name] if name == "arterial4x4" else None)


def checks(grouped, networks) -> str:
    lines = ["| network | (a) fixed, benchmark vs RESCO's fixed-time | (a) max-pressure, benchmark | "
             "(b) max-pressure, reference vs maxpressure_ref |", "|---|---|---|---|"]
    for net in networks:
        name = net.split(":", 1)[1] if net.startswith("resco:") else network_label(net)
        a_fixed = a_mp = b = "–"
        fixed, mp = grouped.get((net, "benchmark", "fixed")), grouped.get((net, "benchmark", "max-pressure"))
        published = PUBLISHED_FIXED.get(name)
        if fixed and published:
            m = _stats(fixed)[0]
            ok = abs(m - published) <= 0.1 * published
            a_fixed = f"{m:.1f} vs {published:.1f} ({(m / published - 1) * 100:+.0f} %) {'pass' if ok else 'FAIL'}"
        bar = max_pressure_target_s(name)
        if mp and bar:
            m = _stats(mp)[0]
            a_mp = f"{m:.1f} vs < {bar:.1f} {'pass' if m < bar else 'FAIL'}"
        ours, ref = grouped.get((net, "reference", "max-pressure")), grouped.get((net, "reference", REFERENCE_CONTROLLER))
        if ours and ref:
            b = reference_check(net, ours, ref)
        if (a_fixed, a_mp, b) != ("–", "–", "–"):
            lines.append(f"| {name} | {a_fixed} | {a_mp} | {b} |")
    return "\n".join(lines)


def blocks_entries(row: dict) -> bool:
    """A run that left over 1 % of its vehicles never inserted: it blocked entries (without teleports, a lock)."""
    total = row.get("vehicles_total") or 0
    return total == 0 or (row.get("never_inserted") or 0) > REFERENCE_BLOCKED_SHARE * total


def reference_check(network: str, ours: list[dict], ref: list[dict]) -> str:
    """Check (b): our max-pressure under the reference profile against the reference, mean over seeds, ±10 %.

    On a RESCO network over every seed, on the five networks the issue names. Elsewhere on the seeds where
    neither run blocked its entries: without teleports a junction can lock (vehicles and pedestrians waiting
    for one another at a crosswalk, say), which seed does is chaotic, and one locked seed decides a mean."""
    by_seed = {r["seed"]: r for r in ref}  # each seed against the same seed, whatever order the cells came in
    both = [(o, by_seed[o["seed"]]) for o in sorted(ours, key=lambda r: r["seed"]) if o["seed"] in by_seed]
    if network.startswith("resco:"):
        if network.split(":", 1)[1] not in REFERENCE_CHECK:
            return f"{_stats(ours)[0]:.1f} vs {_stats(ref)[0]:.1f} (reference blocks its own entries: not checked)"
        pairs, left_out = both, []
    else:
        pairs = [(o, r) for o, r in both if not blocks_entries(o) and not blocks_entries(r)]
        left_out = [o["seed"] for o, r in both if (o, r) not in pairs]
        if not pairs:
            return (f"{_stats(ours)[0]:.1f} vs {_stats(ref)[0]:.1f} (entries blocked on every seed, ours or the "
                    "reference's: not checked)")
    mo = sum(o["avg_delay_s"] for o, _ in pairs) / len(pairs)
    mr = sum(r["avg_delay_s"] for _, r in pairs) / len(pairs)
    ok = abs(mo - mr) <= 0.1 * mr
    text = f"{mo:.1f} vs {mr:.1f} ({(mo / mr - 1) * 100:+.0f} %) {'pass' if ok else 'FAIL'}"
    if left_out:
        text += (f", seeds {', '.join(str(o['seed']) for o, _ in pairs)}; entries blocked on seed"
                 f"{'s' if len(left_out) > 1 else ''} {', '.join(map(str, left_out))}: "
                 f"{_stats(ours)[0]:.1f} vs {_stats(ref)[0]:.1f} over all")
    return text


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's text as written, each option's default after its description (unless it has none)."""

    def _get_help_string(self, action):
        return action.help if action.default is None or action.default is False else super()._get_help_string(action)


def add_sweep_options(ap: argparse.ArgumentParser, out_name: str) -> None:
    """The options every sweep over cached cells shares (this one, safety_price.py, pressure_variants.py)."""
    ap.add_argument("--seeds", type=at_least_one, default=5, help="seeds 1..N")
    ap.add_argument("--workers", type=at_least_one, default=2,
                    help="parallel worker processes, at most one per CPU this process may use (a larger number "
                         "is cut to that, and the sweep says so)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / out_name,
                    help="where the cells (OUT/cells/) and the table (OUT/table.md) are kept")
    ap.add_argument("--table-only", action="store_true", help="print the table from the cached cells")
    # cells are cached by network, profile (or variant) name, controller and seed: when a profile's or a
    # variant's meaning changes, its cached cells are stale
    ap.add_argument("--fresh", action="store_true",
                    help="run every cell again (ignore the cache; needed after a profile or variant changed); "
                         "each cell's figures are replaced when its new run finishes, and the same command "
                         "after a Ctrl-C runs only the cells this --fresh sweep has not run yet")
    ap.add_argument("--mix-versions", action="store_true",
                    help="use kept cells that another signalwise (version, commit, uncommitted changes) or SUMO "
                         "made beside this one's in one table, which then names each; without it such a sweep is "
                         "refused (--fresh runs them again)")


#: OUT's file that says a --fresh sweep has not run all its cells yet: when it began (its time) and which cells
FRESH_MARK = "fresh.json"


def run_sweep(cells: list[dict], args: argparse.Namespace, ray_address: str | None = None) -> int:
    """The cells `add_sweep_options`' arguments ask for: none with --table-only, every one again with --fresh
    (resumed by the same command: `fresh_since_ns`); the number that failed."""
    if args.table_only:
        if args.fresh:
            refuse("--fresh runs the cells again and --table-only runs none: give one of them")
        refuse_mixed_software(args.out, cells, None, args)
        return 0
    since_ns = fresh_since_ns(args.out, cells) if args.fresh else None
    refuse_mixed_software(args.out, cells, since_ns, args)
    failed = sweep(cells, args.out, usable_workers(args.workers, ray_address), ray_address, since_ns)
    if since_ns is not None and not failed:  # every cell run again: the next --fresh begins anew
        (args.out / FRESH_MARK).unlink(missing_ok=True)
    return failed


#: what a kept cell made before cells recorded their software says of it
SOFTWARE_UNKNOWN = "software not recorded (kept before cells recorded it)"
#: the parts of a cell's software that make its figures (Python's version is said, not compared)
SOFTWARE_KEY = ("signalwise", "commit", "dirty", "sumo")


def cell_software(row: dict) -> tuple[tuple | None, str]:
    """What made a kept cell: its key (None for a cell that does not say) and in words."""
    made = row.get("software")
    if not isinstance(made, dict):
        return None, SOFTWARE_UNKNOWN
    return tuple(made.get(k) for k in SOFTWARE_KEY), software_text(made)


def sweep_software(out: Path, cells: list[dict], since_ns: int | None = None) -> dict[tuple | None, list]:
    """What made the figures a sweep's table would show: per software key, its words and its number of cells,
    the kept cells it would use (with `since_ns`: those its --fresh sweep kept) and this process's for the
    cells it would run."""
    found: dict[tuple | None, list] = {}
    for c in cells:
        row = None
        if is_kept(out, c, since_ns):
            try:
                row = json.loads(cell_path(out, c).read_text())
            except (OSError, ValueError):  # a cell file that does not read is run again
                row = None
        key, words = cell_software(row if row is not None else {"software": software()})
        found.setdefault(key, [words, 0])[1] += 1
    return found


def refuse_mixed_software(out: Path, cells: list[dict], since_ns: int | None, args: argparse.Namespace) -> None:
    """A table whose cells several signalwise versions (commit, uncommitted changes) or SUMOs made mixes two
    codes' figures (after a `git pull` or a SUMO upgrade, a resumed sweep keeps its earlier cells): refused before
    any run, with the counts, unless `--mix-versions` asks for it (then said, and the table names each)."""
    # with --table-only nothing runs: only the kept cells are in the table
    found = sweep_software(out, [c for c in cells if is_kept(out, c, since_ns)] if args.table_only else cells,
                           since_ns)
    if len(found) < 2:
        return
    counts = "; ".join(f"{n} cell(s) by {words}" if key is not None else f"{n} cell(s) with {words}"
                       for key, (words, n) in sorted(found.items(), key=lambda item: -item[1][1]))
    text = f"the table of this selection would mix the figures of several software versions: {counts}"
    if getattr(args, "mix_versions", False):
        print(f"warning: {text}; --mix-versions: the table names each", file=sys.stderr, flush=True)
        return
    refuse(f"{text} (cells kept in {out / 'cells'}; this is {software_text(software())}). --fresh runs every cell "
           "again with this software, --mix-versions uses the kept cells as they are (the table names each "
           "software)")


def software_lines(grouped: dict[tuple, list[dict]]) -> str:
    """What made the table's cells: one software, or each with its count (a sweep with --mix-versions)."""
    counts: dict[str, int] = {}
    for rows in grouped.values():
        for row in rows:
            name = cell_software(row)[1]
            counts[name] = counts.get(name, 0) + 1
    if len(counts) == 1:
        return f"Made with {next(iter(counts))}."
    return "Made with several software versions (--mix-versions):\n\n" + "\n".join(
        f"- {name}: {k} cell(s)" for name, k in sorted(counts.items(), key=lambda item: -item[1]))


def fresh_since_ns(out: Path, cells: list[dict]) -> int:
    """When the --fresh sweep over `cells` began (the file time of OUT/fresh.json, ns): a cell kept before then
    runs again, one kept since is the sweep's own. Old figures are replaced as each new run finishes, never
    deleted up front, and the mark stays until every cell has run, so the same command after a Ctrl-C (or a
    failed cell) resumes the sweep; a --fresh over other cells begins a sweep of its own."""
    names = "\0".join(sorted(cell_path(out, c).relative_to(out).as_posix() for c in cells))
    cells_sha256 = hashlib.sha256(names.encode()).hexdigest()
    mark = out / FRESH_MARK
    try:
        if json.loads(mark.read_text()).get("cells_sha256") == cells_sha256:
            return mark.stat().st_mtime_ns
    except (OSError, ValueError, AttributeError):  # none, or not one of ours: a sweep begins
        pass
    out.mkdir(parents=True, exist_ok=True)
    mark.write_text(json.dumps({"cells_sha256": cells_sha256, "cells": len(cells)}) + "\n")
    return mark.stat().st_mtime_ns  # the clock the cells' files are stamped with


def is_kept(out: Path, cell: dict, since_ns: int | None = None) -> bool:
    """A cell's figures are kept (with `since_ns`: kept after that file time, by a --fresh sweep)."""
    try:
        kept_ns = cell_path(out, cell).stat().st_mtime_ns
    except FileNotFoundError:
        return False
    return since_ns is None or kept_ns > since_ns


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or `taskset`'s limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def usable_workers(workers: int, ray_address: str | None = None) -> int:
    """`--workers`, at most the usable CPUs (said when cut): more processes than CPUs only share them, each
    cell slower. A Ray cluster's CPUs are its own (`--ray-address` other than local): not cut."""
    if ray_address not in (None, "local"):
        return workers
    cpus = usable_cpus()
    if workers > cpus:
        print(f"note: --workers {workers} is more than the {cpus} CPU(s) this process may use: {cpus} run at once",
              file=sys.stderr, flush=True)
        return cpus
    return workers


def refuse(message: str):
    """Stop before any run with one line: what is wrong with the command."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(BAD_INPUT)


def controller_error(controllers: list[str]) -> str | None:
    """Why some of `controllers` cannot be columns (names neither registered nor the bench's own), or None."""
    from signalwise.control import available
    from signalwise.control.base import spec_error

    known = [*available(), REFERENCE_CONTROLLER]
    # `kind:ARG` (ql:PATH) is a registered kind given an argument, `py:MODULE:FACTORY` a user's controller (only
    # read here; each cell imports it); the reference script takes none
    if unknown := [c for c in controllers if c.startswith(f"{REFERENCE_CONTROLLER}:")
                   or (c != REFERENCE_CONTROLLER and spec_error(c))]:
        return (f"unknown controller(s) {', '.join(unknown)}; --controllers takes {', '.join(known)}, "
                "py:MODULE:FACTORY or py:FILE.py:FACTORY (ql:PATH for a model)")
    return None


def reference_script_error(controllers: list[str], profiles: list[str], script: Path, table_only: bool) -> str | None:
    """Why the reference column cannot run, or None: its script is not in the repository (it lives in
    shared/reference/ beside the checkout), and a sweep that finds it missing only at its last cells has run
    every other cell first."""
    runs_reference = REFERENCE_CONTROLLER in controllers and "reference" in profiles and not table_only
    if not runs_reference or script.is_file():
        return None
    return (f"{script}: no reference script there for the {REFERENCE_CONTROLLER} column (it lives in "
            "shared/reference/ beside the checkout, not in it); name it with --reference-script")


#: what a sweep sets per cell: a `--config` file may not set it (the options of this script do)
CELL_SETTINGS = {"scenario": "--networks", "sumocfg": "--networks", "net": "--networks", "routes": "--networks",
                 "duration_s": "--duration", "controller": "--controllers", "seed": "--seeds", "record": None}


def read_run_config(path: Path) -> tuple[dict, str]:
    """A `--config` file's settings and its digest; refused in one line when it cannot be read, or when it sets
    what the sweep sets per cell."""
    from signalwise.runtime.commands import read_config_file

    try:
        settings = read_config_file(path)
    except FileNotFoundError as exc:
        refuse(f"--config {exc}")
    if taken := [k for k in settings if k in CELL_SETTINGS]:
        flags = sorted({CELL_SETTINGS[k] for k in taken if CELL_SETTINGS[k]})
        refuse(f"--config {path}: sets {', '.join(taken)}, which the sweep sets for each cell"
               + (f" (with {', '.join(flags)})" if flags else "") + "; leave it out of the file")
    return settings, hashlib.sha256(path.read_bytes()).hexdigest()


def config_error(cells: list[dict], path: Path) -> str | None:
    """Why a cell's configuration with the `--config` file's settings is no run configuration, or None: said
    before any run, as `signalwise run --config` says it."""
    from pydantic import ValidationError

    from signalwise.runtime.commands import config_problem
    from signalwise.runtime.config import RunConfig

    for cell in cells:
        if cell["controller"] == REFERENCE_CONTROLLER:
            continue
        try:
            RunConfig.model_validate(cell_settings(cell))
        except ValidationError as exc:
            return f"--config {path}: {config_problem(exc)}"
    return None


def say_nothing_kept(out: Path, selection: str) -> None:
    """An empty table would say nothing, and replace the one kept in OUT: say so instead (stderr)."""
    print(f"no cell of this selection is kept in {out / 'cells'} ({selection}): no table, {out / 'table.md'} left "
          "as it was", file=sys.stderr, flush=True)


def keep_table(out: Path, text: str) -> None:
    """Print a sweep's table and keep it as OUT/table.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--networks", default=",".join([*(f"resco:{n}" for n in RESCO), *BUILTIN]),
                    help="comma-separated scenarios (resco:NAME, built-in names) or .sumocfg paths")
    ap.add_argument("--controllers", default=f"fixed,max-pressure,{REFERENCE_CONTROLLER}",
                    help=f"comma-separated controller specs (fixed, max-pressure, ql:PATH, ...; {REFERENCE_CONTROLLER} "
                         "= the plain reference script)")
    ap.add_argument("--profiles", default="safety,benchmark,reference",
                    help="comma-separated: safety, benchmark, reference, and safety+calls (the safety profile with "
                         "its cycle bound counted from calls)")
    add_sweep_options(ap, "resco")
    ap.add_argument("--ray", action="store_true",
                    help="run the cells as Ray tasks (on a cluster, its CPUs, not --workers, say how many run at once)")
    ap.add_argument("--ray-address", default="local", help="with --ray: local (start one here), auto, ray://...")
    ap.add_argument("--reference-script", type=Path, default=REFERENCE_SCRIPT,
                    help=f"the plain max-pressure script the {REFERENCE_CONTROLLER} column runs")
    ap.add_argument("--config", type=Path, default=None, metavar="FILE",
                    help="a `signalwise run --config` YAML file applied to every cell (your controller's "
                         "controller_options, shield or timing keys); its timing keys apply under each profile of "
                         "--profiles. Its digest is part of each cell's key, as is the digest of a py: or plugin "
                         "controller's file: an edited file runs its cells again")
    ap.add_argument("--duration", type=float, default=None, metavar="S",
                    help="simulated seconds of each .sumocfg network (default: its own window; a scenario name "
                         "always runs its own)")
    args = ap.parse_args()
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    networks = [str(Path(n).resolve()) if is_sumocfg(n) else n for n in networks]
    if args.duration is not None and args.duration <= 0:
        refuse("--duration must be above 0 s")
    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    if why := controller_error(controllers):
        refuse(why)
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    known = ("safety", "benchmark", "reference", *PROFILE_CONFIG)
    if unknown := [p for p in profiles if p not in known]:
        refuse(f"unknown profile(s) {', '.join(unknown)}; --profiles takes {', '.join(known)}")
    if why := reference_script_error(controllers, profiles, args.reference_script, args.table_only):
        refuse(why)
    for n in networks:
        try:
            scenario_of(n)
        except ValueError as exc:  # ScenarioError: an unknown name or an unreadable .sumocfg, said before any run
            refuse(str(exc))
    if args.ray and not args.table_only:
        try:
            import ray  # noqa: F401
        except ImportError:
            refuse("--ray needs Ray: pip install 'signalwise[ray]'")
    if args.duration and (named := [network_label(n) for n in networks if not is_sumocfg(n)]):
        # a RESCO network runs over the benchmark's window, the one its published figures (check (a)) are
        # measured over: cut short, it would be another benchmark under the same name and the same cache
        print(f"warning: --duration applies to .sumocfg networks only; {', '.join(named)} run over their own "
              "window (a RESCO network's is the benchmark's, which its published figures are measured over)",
              file=sys.stderr, flush=True)
    for controller in controllers:  # what a learned column's cells under another profile measure, said first
        model = model_dir(controller)
        trained = trained_profile(model) if model is not None else None
        if trained is not None and (others := [p for p in profiles if p.split("+")[0] != trained]):
            print(f"note: {controller} trained under the {trained} timing profile; its {', '.join(others)} cells "
                  "run it under rules it did not learn", file=sys.stderr, flush=True)
    run_config, config_sha256 = read_run_config(args.config) if args.config is not None else (None, None)
    cells = plan(networks, profiles, controllers, range(1, args.seeds + 1), args.reference_script.resolve(),
                 args.duration, run_config, config_sha256)
    if run_config and (why := config_error(cells, args.config)):
        refuse(why)
    failed = run_sweep(cells, args, args.ray_address if args.ray else None)
    grouped = load_cells(args.out, cells)
    if grouped:
        keep_table(args.out, tables(grouped, networks, profiles, controllers, args.seeds))
    else:
        say_nothing_kept(args.out, f"networks {', '.join(map(network_label, networks))}; profiles "
                                   f"{', '.join(profiles)}; controllers {', '.join(controllers)}; "
                                   f"{seeds_text(args.seeds)}")
    if failed:
        print(f"error: {failed} cell(s) failed (their errors above); they are not kept: run the same command "
              "again to run them again", file=sys.stderr)
        raise SystemExit(FAILED)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
