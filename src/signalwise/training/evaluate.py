"""Evaluate a model on held-out seeds against a baseline, and record the result in the model.

By default a model is evaluated where and how it trained: on its built-in
scenario or the network files it trained on, under its training run's
timing profile (a model trained under `--timing benchmark` and evaluated
under the safety profile would be judged on rules it never saw). A
scenario, network files or a profile given override that.

The seeds are checked against the model's training seeds (evaluation on a
training seed is refused). Before any run, the model is checked against the
network's intersections in a worker process, so a model made for another
layout fails with one clear line instead of a whole evaluation under the
fallback plan.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..control.learning.controller import PHASE_SCORE
from ..control.learning.qtable import (
    ModelError,
    demand_change,
    demand_record,
    load_model,
    trained_duration_s,
    unfinished,
)
from ..sim.processes import fresh_process_context, in_callers_env
from .train import check_heldout, heldout_seeds, network_record, trained_network


@dataclass
class EvaluateResult:
    out_dir: Path
    summary: dict
    evaluation: dict
    #: whether the model's meta.json keeps this evaluation (not for a shipped or read-only model)
    recorded: bool = True


#: the parts of meta.json an evaluation reads, and the kind each is written as (null counts as absent)
RECORD_PARTS = (("training", dict), ("training.config", dict), ("training.run", dict), ("training.seeds", list),
                ("selection", dict), ("selection.seeds", list), ("evaluations", list))


def check_record(model) -> None:  # noqa: ANN001 - a qtable.Model
    """ModelError naming the first part of meta.json that evaluate reads and that is not of its kind (a file edited
    by hand or damaged): one line before any run, not a traceback after them."""
    for key, kind in RECORD_PARTS:
        value = model.meta
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, kind):
            raise ModelError(f"{Path(model.path) / 'meta.json'}: {key} is {type(value).__name__}, not a "
                             f"{'list' if kind is list else 'mapping'}")


def trained_on(meta: dict) -> tuple[dict, dict]:
    """Where a model trained (`scenario`, or its `sumocfg` / `net` and `routes`) and its training run's settings
    (the timing profile; empty for the default's)."""
    training = meta.get("training") or {}
    config = training.get("config") or {}
    if config.get("sumocfg"):
        network = {"sumocfg": config["sumocfg"]}
    elif config.get("net"):
        network = {"net": config["net"], "routes": list(config.get("routes") or [])}
    else:
        network = {"scenario": meta.get("scenario")}
    return network, dict(training.get("run") or {})


def _fit_errors(model_path: str, run_config: str) -> list[str]:
    """Worker: start the run's network in SUMO (no traffic), read its signals, try the model on each."""
    from ..control.learning.controller import controller_from_model
    from ..runtime.config import RunConfig
    from ..runtime.loop import open_field, resolve_scenario, sumo_options

    cfg = RunConfig.model_validate_json(run_config)
    sc = resolve_scenario(cfg)
    field = open_field(cfg, sc, sumo_options(cfg, sc, end_s=sc.begin_s + 1, with_routes=False))
    try:
        inters = field.intersections
    finally:
        field.backend.close()
    model = load_model(Path(model_path))
    errors = []
    for inter in inters:
        try:
            controller_from_model(model, inter)
        except ModelError as exc:
            errors.append(str(exc))
    return errors


def check_fits(model_path: Path, cfg) -> None:
    """The model against every intersection of `cfg`'s network (a `RunConfig`); ModelError with the first misfit."""
    ctx = fresh_process_context(__name__)
    with ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
        errors = pool.submit(in_callers_env(_fit_errors), str(model_path), cfg.model_dump_json()).result()
    if errors:
        raise ModelError(f"model does not fit {'scenario' if cfg.scenario else 'network'} {cfg.scenario_label!r}: {errors[0]}")


def evaluate(model_path: Path, scenario: str | None = None, n_seeds: int = 5, first_seed: int = 1,
             baseline: str = "max-pressure", duration_s: float | None = None, workers: int | None = None,
             out: Path | None = None, controller_options: dict | None = None, timing: str | None = None,
             sumocfg: Path | None = None, net: Path | None = None, routes: list[Path] | None = None,
             demand_scale: float | None = None, settings: dict | None = None,
             on_done: Callable[[str, int, dict | None, str | None], None] | None = None) -> EvaluateResult:
    """`controller_options` go to every run (`model_registry`: where a `ql:@...` baseline is found); `on_done`
    is told of each run as it ends (`compare_controllers`'), for a progress display.

    No `scenario`, `sumocfg` or `net`: the network the model trained on; no `timing`: its training profile;
    no `demand_scale`: the routes as written, whatever scales the training episodes ran. `settings` (run
    settings: timing, shield, ...) replace the training's, key by key.
    """
    from ..runtime.compare import compare_controllers
    from ..runtime.config import RunConfig

    model_path = Path(model_path)
    model = load_model(model_path)
    check_record(model)
    if model.meta.get("agent") == PHASE_SCORE:
        from .registry import check_policy

        check_policy(model)  # its weights, as `models add` checks them: one line, not a worker's traceback
    network, run = trained_on(model.meta)
    if scenario is not None or sumocfg is not None or net is not None:
        network = {"scenario": scenario, "sumocfg": sumocfg, "net": net, "routes": list(routes or [])}
    elif not isinstance(network.get("scenario", ""), str):
        # else RunConfig's default scenario would run, a network the model may never have seen
        raise ModelError(f"{model_path / 'meta.json'} names no network the model trained on: give --scenario, "
                         "--sumocfg or --net")
    if timing is not None:
        run["timing"] = timing
    run.update(settings or {})
    if demand_scale is not None:
        run["demand_scale"] = demand_scale
    options = {**(run.pop("controller_options", None) or {}), **(controller_options or {})}
    # timing keys set beside the profile (a training's --config, --cycle-calls): said with the profile's name
    timing_keys = {k: v for k, v in run["timing"].items() if k != "profile"} \
        if isinstance(run.get("timing"), dict) else {}
    base = RunConfig.model_validate({**run, **network, "controller": baseline, "duration_s": duration_s,
                                     "controller_options": options})
    seeds = heldout_seeds(model, n_seeds, first_seed)
    check_heldout(model, seeds)
    asked = list(range(first_seed, first_seed + n_seeds))
    if seeds != asked:
        # the model trained or was validated on some of these: say so rather than quietly move on
        free = first_seed  # the first --first-seed whose n_seeds seeds in a row are all held out
        while heldout_seeds(model, n_seeds, free) != list(range(free, free + n_seeds)):
            free += 1
        raise ModelError(f"seeds {sorted(set(asked) - set(seeds))} of {first_seed}..{first_seed + n_seeds - 1} were "
                         f"used in training or validation; pass --first-seed {free} ({free}..{free + n_seeds - 1} "
                         "are held out), or fewer --seeds")
    check_fits(model_path, base)
    from ..runtime.loop import resolve_scenario

    resolved = resolve_scenario(base)
    demand = demand_record(resolved.route_files, base.demand_scale)
    # other traffic than it learned on: said on the command line, and kept in the record beside the figures
    other_demand = demand_change((model.meta.get("training") or {}).get("demand"), demand)
    # another network altogether (one whose signals the model fits, or `check_fits` refused it): said first
    network = network_record(resolved.net_file)
    demand.update(network)
    other_network = network_change(trained_network(model.meta), network)
    ql = f"ql:{model_path.resolve()}"
    label = base.scenario_label
    # a model shipped in the package (or one in a directory not ours to write) is read, never written beside
    keeps_record = not _read_only(model_path)
    where = model_path.resolve().parent if keeps_record else Path("runs")
    out = out or where / f"eval-{dt.datetime.now():%Y%m%d-%H%M%S}-{label.replace(':', '-')}"
    result = compare_controllers(base, [baseline, ql], seeds, out, workers or min(os.cpu_count() or 1, 2), on_done)
    if result.failures:
        raise ModelError("evaluation run(s) failed: " + "; ".join(f"{c} s{s}: {m}" for (c, s), m in
                                                                   result.failures.items()))
    delay = result.summary["metrics"]["avg_delay_s"]["controllers"]
    runs = [result.runs[(ql, s)] for s in seeds]
    evaluation = {
        "scenario": label,
        "timing": base.timing.profile,
        **({"timing_keys": timing_keys} if timing_keys else {}),
        **({"demand_scale": base.demand_scale} if base.demand_scale != 1.0 else {}),
        "seeds": seeds,
        "baseline": baseline,
        "controller": "ql",
        "duration_s": duration_s,
        "simulated_s": runs[0].get("simulated_s"),  # the window the runs covered (the network's whole one by default)
        "trained_duration_s": trained_duration_s(model.meta),
        "demand": demand,
        **({"other_network": other_network} if other_network else {}),
        **({"other_demand": other_demand} if other_demand else {}),
        # a checkpoint of a training that had not finished: its figures are not the finished model's
        **({"unfinished": why} if (why := unfinished(model.meta, model_path)) else {}),
        "avg_delay_s": delay[ql]["mean"],
        "baseline_avg_delay_s": delay[baseline]["mean"],
        "change_pct": delay[ql].get("change_pct"),
        "p_paired": delay[ql].get("p_paired"),  # over the same held-out seeds: the table's, and its verdict's
        "p_welch": delay[ql].get("p_welch"),
        "fallback_fraction": round(sum(r["network"]["fallback_fraction"] for r in runs) / len(runs), 4),
        "violations": sum(r.get("safety", {}).get("violations", 0) for r in runs)
        + sum(result.runs[(baseline, s)].get("safety", {}).get("violations", 0) for s in seeds),
        "out_dir": str(Path(out).resolve()),  # read from anywhere later
        "evaluated": dt.datetime.now().isoformat(timespec="seconds"),
        # what made the figures, as the evaluation's summary.json has it: the software, the command, and each
        # learned controller's model with its digest (this model's from before this record was added to meta.json)
        "provenance": result.summary["provenance"],
    }
    if keeps_record:
        _record(model_path, evaluation)
    return EvaluateResult(out, result.summary, evaluation, recorded=keeps_record)


def network_change(trained: dict | None, now: dict) -> str | None:
    """How the network `now` (a `train.network_record`) differs from the one a model trained on, in words; None
    when it is the same file's contents, or the trained one is not known."""
    if not trained or not trained.get("net_sha256") or not now.get("net_sha256") \
            or trained["net_sha256"] == now["net_sha256"]:
        return None
    return (f"{now['net_file']} (digest {now['net_sha256']}), where it trained on {trained.get('net_file')} "
            f"(digest {trained['net_sha256']})")


def _read_only(model_path: Path) -> bool:
    """A model shipped in the package, or one whose directory this process cannot write: its meta.json keeps
    no evaluations and no evaluation lands beside it."""
    from ..control.learning.shipped import SHIPPED_DIR

    resolved = model_path.resolve()
    return resolved.is_relative_to(SHIPPED_DIR.resolve()) or not os.access(resolved, os.W_OK)


def _record(model_path: Path, evaluation: dict) -> None:
    """Append to the model's evaluations (metadata only; the tables never change)."""
    meta_file = model_path / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["evaluations"] = [*(meta.get("evaluations") or []), evaluation]
    tmp = meta_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, meta_file)
