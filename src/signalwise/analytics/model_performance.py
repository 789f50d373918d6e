"""A deployed model against the baseline at one intersection, from every source that has figures.

- stored runs: runs in the store that ran the model's files at the
  intersection (their configuration names the model directory: `ql:PATH`, or
  `ql:@…` with the registry's resolved directories), each paired with the
  baseline controller's run of the same scenario and seed; the figures are
  the intersection's own, from its roll-up over the run. Paired t-test.
- submitted: intervals measured elsewhere (`POST /api/v1/ml/metrics`) that
  name the model's version, against intervals that name the baseline
  controller. Welch's t-test (the intervals are not paired).
- live: the live run's intervals at the intersection since the model took
  over there. A live run serves one controller at a time, so it gives the
  model's figures only; the baseline's come from the other sources.

Each source says how many runs or intervals it contributed on each side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from signalwise.store.ml_metrics import get_metrics
from signalwise.store.queries import config_conditions_key, latest_runs
from signalwise.store.tables import IntersectionRollup, Run

from .stats import compare

#: figures of stored runs at one intersection, from its roll-up: name -> (unit, description)
STORED_FIGURES = {
    "avg_wait_s": ("s", "mean over the run's intervals of the mean wait of the vehicles that crossed"),
    "served_share": ("0..1", "mean share of the vehicles present that crossed in an interval"),
    "vehicles_passed": ("veh", "vehicles that crossed the stop bars over the whole run"),
}
#: figures of submitted intervals: name -> (unit, description)
SUBMITTED_FIGURES = {
    "delay_s_per_veh": ("s/veh", "mean control delay per vehicle"),
    "queue_veh": ("veh", "mean queue"),
    "throughput_veh_per_h": ("veh/h", "vehicles served per hour"),
}
#: figures of live intervals: name -> (unit, description)
LIVE_FIGURES = {
    "avg_wait_s": ("s", "mean wait of the vehicles that crossed in the interval"),
    "served_share": ("0..1", "share of the vehicles present that crossed in the interval"),
    "vehicles_passed": ("veh", "vehicles that crossed the stop bars in the interval"),
}


@dataclass(frozen=True)
class Source:
    source: str  # stored_runs | submitted | live
    n_candidate: int
    n_baseline: int
    note: str
    figures: list[dict]
    ids: list[str]  # the runs (simulation ids) or sources that contributed


def _f(x: float) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(float(x), 6)


def figures(candidate: dict[str, list[float]], baseline: dict[str, list[float]], units: dict[str, tuple[str, str]],
            paired: bool) -> list[dict]:
    """Per figure: mean and 95 % CI of both sides, change (%) and the p-values."""
    out = []
    for name, (unit, description) in units.items():
        cand = [v for v in candidate.get(name, []) if v is not None]
        base = [v for v in baseline.get(name, []) if v is not None]
        if not cand:
            continue
        cmp = compare(base or [math.nan], cand, paired=paired and len(base) == len(cand))
        out.append({"metric": name, "unit": unit, "description": description,
                    "candidate": {"mean": _f(cmp.candidate.mean), "ci_low": _f(cmp.candidate.ci_low),
                                  "ci_high": _f(cmp.candidate.ci_high), "n": cmp.candidate.n},
                    "baseline": {"mean": _f(cmp.baseline.mean), "ci_low": _f(cmp.baseline.ci_low),
                                 "ci_high": _f(cmp.baseline.ci_high), "n": cmp.baseline.n} if base else None,
                    "change_pct": _f(cmp.change_pct) if base else None,
                    "p_value": _f(cmp.p_value) if base else None,
                    "p_value_paired": _f(cmp.p_value_paired) if base else None})
    return out


def model_dir_of(config: dict | None, controller: str | None, intersection_id: str) -> str | None:
    """The model directory a stored run ran at the intersection, from its configuration; None if no model."""
    config = config or {}
    spec = str(config.get("controller") or controller or "")
    name, _, arg = spec.partition(":")
    if name != "ql" or not arg:
        return None
    arg = arg.partition("?")[0]
    if not arg.startswith("@"):
        return arg
    resolved = ((config.get("controller_options") or {}).get("registry_models") or {}).get(arg[1:]) or {}
    return resolved.get(intersection_id) or resolved.get("*")


def stored_runs(engine: Engine, holds_model: Callable[[str | None], bool], intersection_id: str,
                baseline_controller: str) -> Source:
    """Runs that ran the model at the intersection, each against the baseline run of the same scenario, seed and
    conditions (`queries.run_conditions`)."""
    R, IR = Run.__table__, IntersectionRollup.__table__
    with engine.connect() as conn:
        runs = conn.execute(select(R.c.id, R.c.simulation_id, R.c.scenario, R.c.controller, R.c.seed, R.c.config)
                            .where(R.c.controller.is_not(None))).mappings().all()
        def paired(r) -> tuple:  # noqa: ANN001 - the same scenario, seed and conditions (duration, demand, ...)
            return r["scenario"], r["seed"], config_conditions_key(r["config"])

        # the latest of repeated runs stands for them, on either side (each would pair with one baseline again); a
        # run is the same as another only with the same model there (`ql:@active` runs whichever was deployed)
        latest, _ = latest_runs(runs, lambda r: (r["controller"], model_dir_of(r["config"], r["controller"],
                                                                              intersection_id), *paired(r)))
        candidates = [r for r in latest.values()
                      if holds_model(model_dir_of(r["config"], r["controller"], intersection_id))]
        baselines = {paired(r): r for r in latest.values() if r["controller"] == baseline_controller}
        pairs = [(c, baselines[paired(c)]) for c in candidates if paired(c) in baselines]
        ids = [r["id"] for pair in pairs for r in pair]
        rolls = {row["run_id"]: row for row in conn.execute(
            select(IR).where(IR.c.run_id.in_(ids), IR.c.intersection_id == intersection_id)).mappings()} if ids else {}
    pairs = [(c, b) for c, b in pairs if c["id"] in rolls and b["id"] in rolls]
    cand: dict[str, list[float]] = {k: [] for k in STORED_FIGURES}
    base: dict[str, list[float]] = {k: [] for k in STORED_FIGURES}
    for c, b in pairs:
        waits = [_mean_wait_s(rolls[run["id"]]) for run in (c, b)]
        for side, run, wait in ((cand, c, waits[0]), (base, b, waits[1])):
            roll = rolls[run["id"]]
            if None not in waits:  # a pair counts in the wait only where both runs measured it (a feed run did not)
                side["avg_wait_s"].append(wait)
            side["served_share"].append(roll["throughput_sum"] / max(1, roll["records"]))
            side["vehicles_passed"].append(float(roll["total_vehicles_passed"]))
    unpaired = len(candidates) - len(pairs)
    note = (f"{len(pairs)} run(s) of the model paired with the {baseline_controller} run of the same scenario, "
            f"seed and conditions" + (f"; {unpaired} without a stored baseline run (or records at {intersection_id}) left out"
                       if unpaired else ""))
    if not candidates:
        note = ("no stored run ran this model here (store runs with `signalwise run -c ql:@active --db …` and the "
                f"{baseline_controller} baseline on the same seeds)")
    return Source("stored_runs", len(pairs), len(pairs), note, figures(cand, base, STORED_FIGURES, paired=True),
                  [r["simulation_id"] for pair in pairs for r in pair])


def _mean_wait_s(roll) -> float | None:
    """A run's mean wait at the intersection over the records that measured one; None when none did."""
    measured = roll["avg_wait_time_samples"]
    return roll["avg_wait_time_sum"] / measured if measured else None


def submitted(engine: Engine, intersection_id: str, version: str, baseline_controller: str) -> Source:
    """Submitted intervals naming the version, against those naming the baseline controller."""
    _total, rows = get_metrics(engine, intersection_id, limit=1_000_000)
    cand = [r for r in rows if r.model_version == version]
    base = [r for r in rows if r.model_version is None and r.controller == baseline_controller]
    side = {name: [getattr(r, name) for r in cand] for name in SUBMITTED_FIGURES}
    ref = {name: [getattr(r, name) for r in base] for name in SUBMITTED_FIGURES}
    note = (f"{len(cand)} interval(s) naming {version}, {len(base)} naming {baseline_controller}"
            if rows else "no figures submitted for this intersection (POST /api/v1/ml/metrics)")
    return Source("submitted", len(cand), len(base), note, figures(side, ref, SUBMITTED_FIGURES, paired=False),
                  sorted({r.source for r in cand + base}))


def live_intervals(records: list[dict], intersection_id: str, since: str | None, note: str) -> Source:
    """The live run's intervals at the intersection that began at `since` (ISO, UTC) or later."""
    rows = [r for r in records if r.get("intersection_id") == intersection_id
            and (since is None or str(r.get("timestamp", "")) >= since)]
    side: dict[str, list[float]] = {k: [] for k in LIVE_FIGURES}
    for r in rows:
        m = r.get("metrics") or {}
        if m.get("avg_wait_time_all_sides") is not None:  # a feed run's intervals measure no wait: not 0 s
            side["avg_wait_s"].append(float(m["avg_wait_time_all_sides"]))
        side["served_share"].append(float(m.get("throughput") or 0.0))
        side["vehicles_passed"].append(float(m.get("total_vehicles_passed") or 0.0))
    return Source("live", len(rows), 0, note, figures(side, {}, LIVE_FIGURES, paired=False),
                  sorted({str(r.get("simulation_id")) for r in rows}))
