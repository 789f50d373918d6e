"""Comparisons across stored runs: each run against the baseline run of the same scenario, seed and conditions.

Statistics over the store's read side (`store/queries.py`, `run_table`): mean,
95 % CI, change and p-values (`analytics/stats.py`), fuel and CO2 saved. Two
runs pair only when their conditions (`queries.run_conditions`: duration,
demand, network files, timing profile, ...) are the same, since a paired test
stands on both controllers meeting the same traffic; where several runs share
scenario, controller, seed and conditions, the latest stored stands for them
and the others are named (`superseded`). Seeds with no baseline say why
(`unpaired_reason`): the conditions the closest stored baseline runs differ
in, and when those are only settings a newer release added, that the baseline
is to be run again.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict

from sqlalchemy import Engine

from signalwise.store.queries import (
    ADDED_CONDITIONS,
    conditions_differ,
    conditions_key,
    latest_runs,
    run_table,
)

from .stats import NON_NEGATIVE, MeanCI, bounded_interval, compare, mean_ci
from .verdict import LOWER_IS_BETTER, SAVINGS, judge, per_seed_sample

#: what each figure of the comparisons is, with its unit: figures of one name-meaning (a throughput, a wait, fuel
#: saved) come from two sources that measure different things, and read side by side they seemed to disagree
RECORD_FIGURE = ("from the run's interval records, per signal, over the whole run (a warm-up included); ")
METRIC_INFO: dict[str, tuple[str, str]] = {
    # from the interval records (`store.queries.RECORD_METRICS`)
    "avg_wait_time": ("s", RECORD_FIGURE + "the mean over intervals and signals of the wait on the signals' "
                      "approaches, each interval weighing the same however many vehicles it served (not per "
                      "vehicle: avg_wait_s is)"),
    "avg_speed": ("km/h", RECORD_FIGURE + "the mean over intervals and signals of the speed on the signals' approaches"),
    "throughput": ("share 0-1", "a share, not vehicles: " + RECORD_FIGURE + "the mean over intervals and signals of the share of the vehicles at "
                   "the stop line that the interval served, passed / (passed + queued at its end): a service ratio, "
                   "not a count (throughput_veh is)"),
    "total_vehicles_passed": ("veh", RECORD_FIGURE + "vehicles across the signals' stop lines, summed over signals "
                              "(a vehicle through three signals counts three times)"),
    "fuel_saved": ("l", RECORD_FIGURE + "fuel the baseline run used on the signals' approach edges minus this run's; "
                   "fuel_ml_saved is network-wide"),
    "co2_saved": ("kg", RECORD_FIGURE + "CO2 the baseline run emitted on the signals' approach edges minus this "
                  "run's; co2_g_saved is network-wide"),
    "emergency_overrides": ("count", RECORD_FIGURE + "emergency preemptions, summed over signals"),
    # the run's own metrics (metrics.json "network"), network-wide, counted after the warm-up when it had one
    "avg_delay_s": ("s", "per vehicle, network-wide: time lost against free flow plus the wait to enter (SUMO's "
                    "timeLoss + departDelay, RESCO's delay)"),
    "avg_wait_s": ("s", "per departed vehicle, network-wide: time standing (below 0.1 m/s)"),
    "avg_travel_time_s": ("s", "per arrived vehicle, network-wide"),
    "stops_per_veh": ("stops/veh", "per departed vehicle, network-wide"),
    "throughput_veh": ("veh", "a count of vehicles: those that reached their destination, network-wide (not the "
                       "0-1 share `throughput` is)"),
    "vehicles_total": ("veh", "vehicles due in the run"),
    "running_at_end": ("veh", "vehicles still driving when the run ended"),
    "never_inserted": ("veh", "vehicles SUMO could not insert"),
    "teleports": ("count", "SUMO's teleports (each cuts a trip short)"),
    "pedestrians_jammed": ("count", "times SUMO found a pedestrian jammed (stood past its jam time at a crosswalk "
                                    "or walking area)"),
    "locked_veh": ("veh", "vehicles locked in junctions"),
    "avg_queue_veh": ("veh", "mean over samples of the vehicles queued at all signals"),
    "max_queue_veh": ("veh", "largest sample of the vehicles queued at all signals"),
    "co2_kg": ("kg", "CO2 emitted, network-wide, a total over the counted window (a vehicle still driving at its "
                     "end counts for the part it drove; co2_g_per_veh_km is per unit of travel)"),
    "co2_g": ("g", "CO2 emitted, network-wide, a total over the counted window (as co2_kg)"),
    "fuel_l": ("l", "fuel used, network-wide, a total over the counted window, petrol and diesel litres added "
                    "together (fuel_l_per_100veh_km is per unit of travel)"),
    "fuel_ml": ("ml", "fuel used, network-wide, a total over the counted window (as fuel_l)"),
    "veh_km": ("veh-km", "vehicle-km driven network-wide in the counted window (SUMO edgeData: sampled seconds x "
                         "mean speed per edge)"),
    "co2_g_per_veh_km": ("g/veh-km", "CO2 per vehicle-km: co2_kg over veh_km, the same counted window"),
    "fuel_l_per_100veh_km": ("l/100 veh-km", "fuel per 100 vehicle-km: fuel_l over veh_km, the same counted "
                                             "window"),
    "emergency_vehicles": ("veh", "emergency vehicles in the run"),
    "emergency_delay_s": ("s", "per emergency vehicle: time lost against free flow"),
    "emergency_stops_per_veh": ("stops/veh", "per emergency vehicle that entered: the times it came to a halt"),
    "emergency_stops_max": ("stops", "the most halts one emergency vehicle made"),
    "emergency_wait_s": ("s", "per emergency vehicle that entered: time standing (SUMO's waitingTime)"),
    "emergency_wait_max_s": ("s", "the longest one emergency vehicle stood"),
    "pedestrians": ("persons", "pedestrians due in the run"),
    "ped_delay_s": ("s", "per pedestrian: time lost"),
    "walking_at_end": ("persons", "pedestrians still walking when the run ended"),
    "ped_wait_s": ("s", "per pedestrian: time standing over its walk (its waits at crosswalks; SUMO's waitingTime)"),
    "ped_wait_p95_s": ("s", "95th percentile over the pedestrians of that wait (nearest rank)"),
    "ped_wait_max_s": ("s", "the longest one pedestrian waited"),
    "ped_long_waits": ("persons", "pedestrians who waited longer than 60 s (sim.metrics.LONG_PED_WAIT_S)"),
    "safety_violations": ("count", "violations the independent safety audit found"),
    "fallback_fraction": ("share 0-1", "share of the decisions the shield's fallback served"),
    "discarded_veh": ("veh", "vehicles SUMO discarded before they departed (left out of the delays)"),
    "unsorted_ignored": ("entries", "route-file entries (vehicles, flows, persons) SUMO skipped as out of departure "
                                    "order: none of their traffic ran"),
    "preemptions": ("count", "emergency preemption calls (event 102), network-wide"),
    "controller_errors": ("count", "decisions the controller raised an error on"),
}

#: the fields of `/environmental-impact` entries, with their units: two sources, two scopes
ENVIRONMENTAL_FIELDS = {
    "recorded_fuel_saved": "l: " + METRIC_INFO["fuel_saved"][1],
    "recorded_co2_saved": "kg: " + METRIC_INFO["co2_saved"][1],
    "fuel_ml": "ml: fuel used, network-wide (the run's metric, after the warm-up when it had one)",
    "baseline_fuel_ml": "ml: the baseline run's fuel_ml",
    "fuel_ml_saved": "ml: baseline_fuel_ml - fuel_ml, network-wide; recorded_fuel_saved (l) counts the signals' "
                     "approach edges only, over the whole run, so the two differ",
    "fuel_ml_saved_pct": "%: fuel_ml_saved / baseline_fuel_ml",
    "co2_g": "g: CO2 emitted, network-wide (the run's metric, after the warm-up when it had one)",
    "baseline_co2_g": "g: the baseline run's co2_g",
    "co2_g_saved": "g: baseline_co2_g - co2_g, network-wide; recorded_co2_saved (kg) counts the signals' approach "
                   "edges only",
    "co2_g_saved_pct": "%: co2_g_saved / baseline_co2_g",
    # per unit of travel: the run's own figures (`runtime.run.per_travel`, as `signalwise compare` reports them)
    "veh_km": "veh-km: " + METRIC_INFO["veh_km"][1],
    "baseline_veh_km": "veh-km: the baseline run's veh_km",
    "co2_g_per_veh_km": "g/veh-km: " + METRIC_INFO["co2_g_per_veh_km"][1] + " (co2_g counts unfinished trips "
                        "only for the part they drove, and their share differs by controller)",
    "baseline_co2_g_per_veh_km": "g/veh-km: the baseline run's co2_g_per_veh_km",
    "co2_g_per_veh_km_saved": "g/veh-km: baseline_co2_g_per_veh_km - co2_g_per_veh_km",
    "co2_g_per_veh_km_saved_pct": "%: co2_g_per_veh_km_saved / baseline_co2_g_per_veh_km",
    "fuel_l_per_100veh_km": "l/100 veh-km: " + METRIC_INFO["fuel_l_per_100veh_km"][1],
    "baseline_fuel_l_per_100veh_km": "l/100 veh-km: the baseline run's fuel_l_per_100veh_km",
    "fuel_l_per_100veh_km_saved": "l/100 veh-km: baseline_fuel_l_per_100veh_km - fuel_l_per_100veh_km",
    "fuel_l_per_100veh_km_saved_pct": "%: fuel_l_per_100veh_km_saved / baseline_fuel_l_per_100veh_km",
}
#: the run metrics `/environmental-impact` sets against the baseline's (`_saved`: baseline minus this run):
#: totals over the counted window, then per unit of travel
ENVIRONMENTAL_METRICS = ("fuel_ml", "co2_g", "co2_g_per_veh_km", "fuel_l_per_100veh_km")


def metric_info(name: str) -> dict:
    """{"unit", "description"} of a comparison's metric (both None for a name it does not know)."""
    unit, description = METRIC_INFO.get(name, (None, None))
    return {"unit": unit, "description": description}


def _f(x) -> float | None:  # noqa: ANN001
    """A finite float for JSON, or None (NaN and infinities are not numbers a client can use)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _latest(runs: list[dict]) -> tuple[dict[tuple, dict], dict[tuple, list[str]]]:
    """The latest stored run per (scenario, controller, seed, conditions), and the runs each supersedes."""
    return latest_runs(runs, lambda r: (r["scenario"], r["controller"], r["seed"], conditions_key(r["conditions"])))


def environmental_impact(engine: Engine, baseline_controller: str, simulation_id: str | None = None,
                         scenario: str | None = None) -> list[dict]:
    """Fuel and CO2 of each run against the baseline run of the same scenario, seed and conditions."""
    runs = run_table(engine, scenario)
    latest, _ = _latest(runs)
    out = []
    for r in runs:
        if simulation_id is not None and r["simulation_id"] != simulation_id:
            continue
        if simulation_id is None and r["controller"] == baseline_controller:
            continue
        base = latest.get((r["scenario"], baseline_controller, r["seed"], conditions_key(r["conditions"])))
        entry = {"simulation_id": r["simulation_id"], "scenario": r["scenario"], "controller": r["controller"],
                 "seed": r["seed"], "baseline_simulation_id": base["simulation_id"] if base else None,
                 "recorded_fuel_saved": r["metrics"].get("fuel_saved"),
                 "recorded_co2_saved": r["metrics"].get("co2_saved")}
        entry["veh_km"] = r["metrics"].get("veh_km")  # absent from a lean run (no edgeData): unknown
        entry["baseline_veh_km"] = base["metrics"].get("veh_km") if base else None
        for metric in ENVIRONMENTAL_METRICS:  # absent from a run that recorded no emissions: unknown, not 0
            value = r["metrics"].get(metric)
            ref = base["metrics"].get(metric) if base else None
            saved = ref - value if value is not None and ref is not None else None
            entry[metric] = value
            entry[f"baseline_{metric}"] = ref
            entry[f"{metric}_saved"] = saved
            entry[f"{metric}_saved_pct"] = _f(saved / ref * 100) if saved is not None and ref else None
        out.append(entry)
    return out


def baseline_vs_ai(engine: Engine, baseline_controller: str, scenario: str | None = None,
                   controller: str | None = None, metrics: list[str] | None = None) -> list[dict]:
    """Per scenario, controller, conditions and metric: mean and 95% CI over seeds of both, change, Welch and
    paired p-values, and the verdict `signalwise compare` gives (`verdict.judge`: "better" or "worse", else why
    not in `verdict_note`, as summary.csv has them)."""
    runs = run_table(engine, scenario)
    latest, superseded = _latest(runs)
    grouped: dict[tuple[str, str, str], dict[int, dict]] = defaultdict(dict)
    conditions: dict[str, dict | None] = {}
    for (scen, ctrl, seed, cond), r in latest.items():
        if seed is not None:
            grouped[(scen, ctrl, cond)][seed] = r
            conditions[cond] = r["conditions"]
    out = []
    for (scen, ctrl, cond), cand_by_seed in sorted(grouped.items()):
        if ctrl == baseline_controller or (controller is not None and ctrl != controller):
            continue
        # the baseline run of the same scenario, seed AND conditions: unpaired runs are listed, never compared
        base_by_seed = grouped.get((scen, baseline_controller, cond), {})
        seeds = sorted(set(base_by_seed) & set(cand_by_seed))
        names = sorted({k for s in seeds for k in cand_by_seed[s]["metrics"]}
                       & {k for s in seeds for k in base_by_seed[s]["metrics"]})
        if metrics:
            names = [n for n in names if n in metrics]
        rows = []
        for name in names:
            pairs = [(base_by_seed[s]["metrics"].get(name), cand_by_seed[s]["metrics"].get(name)) for s in seeds]
            pairs = [(b, c) for b, c in pairs if b is not None and c is not None]
            cmp = compare([b for b, _ in pairs], [c for _, c in pairs], paired=True)
            measured = [m for s in seeds for m in (base_by_seed[s]["metrics"], cand_by_seed[s]["metrics"])
                        if m.get(name) is not None]
            sample = per_seed_sample(name, measured)
            judged = judge(cmp, LOWER_IS_BETTER.get(name), sample is not None and sample["too_few"], name)
            pct_lo, pct_hi = cmp.change_pct_ci
            rows.append({"metric": name, **metric_info(name),
                         "baseline": _level(cmp.baseline, name), "candidate": _level(cmp.candidate, name),
                         # the baseline over all its runs of the scenario and conditions, the paired seeds or not
                         # (`baseline_all_seeds`): its row of `signalwise compare`'s summary.csv, the same for
                         # every candidate
                         "baseline_all": _level(mean_ci([base_by_seed[s]["metrics"].get(name)
                                                         for s in sorted(base_by_seed)]), name),
                         "change_pct": _f(cmp.change_pct),
                         # the change's 95 % CI over the same seeds (the paired differences'), in the figure's
                         # unit and in percent of the baseline's mean, as summary.csv has them
                         "change": _f(cmp.diff), "change_ci_low": _f(cmp.diff_ci_low),
                         "change_ci_high": _f(cmp.diff_ci_high), "change_pct_ci_low": _f(pct_lo),
                         "change_pct_ci_high": _f(pct_hi),
                         "p_value": _f(cmp.p_value),
                         "p_value_paired": _f(cmp.p_value_paired),
                         # as `signalwise compare`'s summary.csv names them (the same values as the two above)
                         "p_welch": _f(cmp.p_value), "p_paired": _f(cmp.p_value_paired),
                         "lower_is_better": LOWER_IS_BETTER.get(name),
                         "verdict": judged.get("verdict"), "verdict_note": judged.get("no_verdict"),
                         **({"per_seed_n": sample} if sample is not None else {})})
        used = {r["simulation_id"] for r in (*cand_by_seed.values(), *base_by_seed.values())}
        older = [sim for (sc, ct, _seed, cd), sims in superseded.items()
                 if (sc, cd) == (scen, cond) and ct in (ctrl, baseline_controller) for sim in sims]
        unpaired = sorted(set(cand_by_seed) - set(base_by_seed))
        out.append({"scenario": scen, "controller": ctrl, "baseline_controller": baseline_controller,
                    "conditions": conditions[cond],
                    "seeds": seeds, "baseline_seeds": seeds,
                    "unpaired_seeds": unpaired,
                    "unpaired_reason": _unpaired_reason(runs, scen, baseline_controller, conditions[cond], unpaired),
                    "baseline_only_seeds": sorted(set(base_by_seed) - set(cand_by_seed)),
                    "baseline_all_seeds": sorted(base_by_seed),
                    "simulation_ids": sorted(used),
                    "superseded": sorted(older),
                    "metrics": rows})
    return out


def _unpaired_reason(runs: list[dict], scenario: str, baseline_controller: str, conditions: dict | None,
                     seeds: list[int]) -> str | None:
    """Why `seeds` have no baseline run: none stored, or the closest stored ones differ in these conditions; when
    they differ only in settings a newer release added (`ADDED_CONDITIONS`), that the baseline must be run again
    (runs published before an upgrade never pair with runs after it, and the administrator would not know)."""
    if not seeds:
        return None
    head = (f"no {baseline_controller} run of {scenario} with the same conditions for seed(s) "
            f"{', '.join(map(str, seeds))}")
    stored = [r for r in runs if r["scenario"] == scenario and r["controller"] == baseline_controller
              and r["seed"] in seeds]
    if not stored:
        return f"{head}: none is stored"
    apart = Counter(tuple(conditions_differ(conditions, r["conditions"])) for r in stored)
    keys = min(apart, key=lambda k: (len(k), k))
    if not keys:
        return head
    added = {f"{section}.{key}": then for (section, key), then in ADDED_CONDITIONS.items()}
    if all(k in added for k in keys):
        then = ", ".join(f"{k} as {json.dumps(added[k])}" for k in keys)
        return (f"{head}; {apart[keys]} stored {baseline_controller} run(s) differ only in {', '.join(keys)}, "
                f"added by a newer release than the one that ran them (they read {then}): run the baseline again")
    return f"{head}; the closest, {apart[keys]} stored {baseline_controller} run(s), differ in {', '.join(keys)}"


def _level(ci: MeanCI, name: str) -> dict:
    """A controller's level as the page gives it: mean, 95 % CI and n, the interval cut to the values the figure
    can take by the rule of `signalwise compare`'s summary (`stats.bounded_interval`: never below 0, but for a
    saving, which is negative where more was used), with `ci_note` where an end was cut."""
    low, high, note = (ci.ci_low, ci.ci_high, "") if name in SAVINGS else \
        bounded_interval(ci.ci_low, ci.ci_high, NON_NEGATIVE)
    return {"mean": _f(ci.mean), "ci_low": _f(low), "ci_high": _f(high), "n": ci.n,
            **({"ci_note": note} if note else {})}
