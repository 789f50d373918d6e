"""`--guide-visits auto`: train each candidate threshold, keep the one that serves best on validation seeds.

Why: how long max-pressure should keep acting before the table may override
it (`guide_visits`, SPIBB's threshold) is what decides whether the learned
policy beats max-pressure, and the right value depends on the network. On
held-out seeds 1-5, 40 episodes each (README, issue 3), 10 gave -21 % delay
on resco:cologne1 and +165 % on resco:ingolstadt1; 30 gave -22 % on
ingolstadt1 and -4 % (not significant) on cologne1. More episodes or gamma
0.99 did not rescue 10 on ingolstadt1 (121 s and 78 s against max-pressure's
42 s). So both are trained from the same seed and validated, and a third
option is the better table deployed behind max-pressure alone (threshold
never reached: max-pressure acts, the table still gives the confidence that
decides the Webster fallback), so that on validation the choice is never
worse than what max-pressure does there.

Validation seeds (`validation_seeds`) are SUMO seeds disjoint from the
training seeds (1,000,000 upward) and from the small held-out seeds
`evaluate` uses; the model records them and `evaluate` refuses them.

The validation runs belong to the training directory (out/validation): a
resumed training validates again and its runs replace the old ones, which
stay in out/validation.previous until the new choice is installed, so a
validation interrupted half-way never stands in for the installed model's.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..control.learning.qtable import Model, ModelError, load_model
from .train import OnEpisode, TrainConfig, TrainingError, check_out, train

#: thresholds trained by `--guide-visits auto`
AUTO_CANDIDATES = (10, 30)
#: the deployment threshold that is never reached: max-pressure always acts
GUIDE_ONLY = 2**31 - 1
VALIDATION_SEEDS = 3


class ValidationFailed(ModelError):
    """A validation run failed: the work ran and failed (exit 1), the input was not wrong."""


def validation_seeds(seed: int, n: int) -> list[int]:
    """SUMO seeds for choosing among candidates: not training seeds (1,000,000+), not small held-out ones."""
    return [500_000 + seed * 1_000 + k for k in range(n)]


def candidate_dir(out: Path, guide_visits: int) -> Path:
    return Path(out) / f"guide-{guide_visits}"


def train_selected(cfg: TrainConfig, candidates: tuple[int, ...] = AUTO_CANDIDATES,
                   n_validation: int = VALIDATION_SEEDS, resume: bool = False,
                   on_episode: OnEpisode | None = None,
                   on_stage: Callable[[str], None] | None = None, executor=None) -> Model:  # noqa: ANN001
    """Train one model per guide threshold into out/guide-N, validate, copy the chosen one to out/model."""
    out = Path(cfg.out)
    check_selected(cfg, candidates, resume)
    paths = {}
    for n in candidates:
        sub = _candidate(cfg, n)
        if on_stage:
            on_stage(f"training guide {n}")
        again = resume and (sub.out / "train_state.json").is_file()
        # a complete candidate runs no episode; its model is installed again from its last checkpoint
        train(sub, resume=again, on_episode=on_episode, executor=executor)
        paths[n] = sub.out / "model"
    if on_stage:
        on_stage(f"validating on {n_validation} seeds")
    t_validation = time.perf_counter()
    choice = validate(cfg, paths, validation_seeds(cfg.seed, n_validation), renew_validation_dir(out))
    # every candidate's training, over all its sessions (a resumed one counts the earlier ones), and this validation
    trained_s = sum(float((json.loads((p / "meta.json").read_text()).get("training") or {}).get("wall_s") or 0.0)
                    for p in paths.values())
    choice["wall_s"] = round(trained_s + time.perf_counter() - t_validation, 1)
    model = _install(out, paths[choice["trained_with"]], choice, choice["wall_s"])
    shutil.rmtree(out / "validation.previous", ignore_errors=True)  # the installed model's runs are in validation/
    return model


def check_selected(cfg: TrainConfig, candidates: tuple[int, ...] = AUTO_CANDIDATES, resume: bool = False) -> None:
    """What `train_selected` refuses before any episode (TrainingError, one line): a training already in
    `cfg.out`, nothing to resume, or what `train.check_out` refuses of a candidate. `signalwise train` calls it
    before it draws any progress."""
    out = Path(cfg.out)
    if not resume and (out / "model").exists():
        raise TrainingError(f"{out}: a training run is already there; use --resume or another --out")
    if len(set(candidates)) < 2:
        raise TrainingError("guide threshold selection needs at least two candidates")
    if resume and not any((candidate_dir(out, n) / "train_state.json").is_file() for n in candidates):
        # as `train` says for one threshold; training from scratch under --resume would hide a wrong --out
        if (out / "train_state.json").is_file():
            raise TrainingError(f"{out} holds a training with one --guide-visits threshold: resume it with the "
                                "--guide-visits it was started with")
        raise TrainingError(f"{out}: nothing to resume (no checkpoint of any guide threshold: "
                            f"{', '.join(candidate_dir(out, n).name for n in candidates)})")
    for n in candidates:
        sub = _candidate(cfg, n)
        check_out(sub, resume and (sub.out / "train_state.json").is_file())


def _candidate(cfg: TrainConfig, guide_visits: int) -> TrainConfig:
    """The training of one candidate threshold, in its own directory."""
    return replace(cfg, out=candidate_dir(cfg.out, guide_visits), hyper=replace(cfg.hyper, guide_visits=guide_visits))


def renew_validation_dir(out: Path) -> Path:
    """out/validation, empty for a new validation (a run never writes into another's directory).

    The runs there are the installed model's evidence: they move to out/validation.previous until the
    new choice is installed. If that is there already, a validation was interrupted (or its model not yet
    installed), and what validation/ holds is that attempt's: dropped, the previous evidence kept.
    """
    vdir, previous = Path(out) / "validation", Path(out) / "validation.previous"
    if previous.exists():
        if vdir.exists():
            shutil.rmtree(vdir)
    elif vdir.exists():
        vdir.rename(previous)
    return vdir


def validate(cfg: TrainConfig, paths: dict[int, Path], seeds: list[int], out: Path) -> dict:
    """Mean delay of every candidate (and of the best table behind max-pressure only) on `seeds`; the choice."""
    from ..runtime.compare import compare_controllers
    from ..runtime.config import RunConfig

    # only the delay chooses: the runs record what it and the audit need (record: lean)
    own = cfg.sumocfg is not None or cfg.net is not None  # then cfg.scenario only names the files (train.py)
    base = RunConfig(scenario=None if own else cfg.scenario, controller="max-pressure", duration_s=cfg.duration_s,
                     sumocfg=cfg.sumocfg, net=cfg.net, routes=list(cfg.routes), record="lean")
    specs = {n: f"ql:{Path(p).resolve()}" for n, p in paths.items()}
    result = compare_controllers(base, ["max-pressure", *specs.values()], seeds, out, cfg.workers)
    _raise_failures(result)
    delay = {c: v["mean"] for c, v in result.summary["metrics"]["avg_delay_s"]["controllers"].items()}
    best = min(specs, key=lambda n: (delay[specs[n]], -n))  # a tie goes to the more cautious threshold
    guide_only = f"{specs[best]}?guide_visits={GUIDE_ONLY}"
    extra = compare_controllers(base, [guide_only], seeds, out / "guide-only", cfg.workers)
    _raise_failures(extra)
    delay[guide_only] = extra.summary["metrics"]["avg_delay_s"]["controllers"][guide_only]["mean"]
    deployed = GUIDE_ONLY if delay[guide_only] < delay[specs[best]] else best
    # the share of steps the shield ran its Webster fallback, the table's confidence being low: training episodes
    # never fall back (a learner acts with confidence 1), so this is where a model's fallback is first seen
    share = {**result.summary.get("fallback_share", {}), **extra.summary.get("fallback_share", {})}
    return {
        "seeds": seeds,
        "metric": "avg_delay_s",
        "max_pressure_avg_delay_s": round(delay["max-pressure"], 3),
        "candidates": {str(n): round(delay[s], 3) for n, s in specs.items()},
        "guide_only_avg_delay_s": round(delay[guide_only], 3),
        "fallback_share": {**{str(n): share.get(s) for n, s in specs.items()}, "guide_only": share.get(guide_only),
                           "max_pressure": share.get("max-pressure")},
        "trained_with": best,
        "guide_visits": deployed,
        "out_dir": str(out),
    }


def _raise_failures(result) -> None:  # noqa: ANN001 - a CompareResult
    if result.failures:
        raise ValidationFailed(f"validation run(s) failed (runs in {result.out_dir}): " + "; ".join(
            f"{c} s{s}: {m}" for (c, s), m in result.failures.items()))


def _install(out: Path, chosen: Path, choice: dict, wall_s: float) -> Model:
    """Copy the chosen candidate to out/model with the choice in its metadata (the table is not touched).

    `wall_s` replaces the candidate's own training.wall_s: the model is the whole training's, every candidate
    (each over its sessions) and the validation that chose, the time `signalwise train` reports."""
    tmp = out / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(chosen, tmp)
    meta = json.loads((tmp / "meta.json").read_text())
    meta["selection"] = choice
    meta["training"]["wall_s"] = wall_s
    meta["deployment"] = {"guide_visits": choice["guide_visits"]}
    try:  # the same table installed again (a resume with nothing left to train): its evaluations still hold
        before = json.loads((out / "model" / "meta.json").read_text())
        same = (before.get("deployment"), (before.get("training") or {}).get("episodes"),
                (before.get("selection") or {}).get("trained_with")) == (
            meta["deployment"], (meta.get("training") or {}).get("episodes"), choice.get("trained_with"))
        if same and before.get("evaluations"):
            meta["evaluations"] = before["evaluations"]
    except (OSError, ValueError, AttributeError):
        pass
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    shutil.rmtree(out / "model", ignore_errors=True)
    tmp.rename(out / "model")
    return load_model(out / "model")
