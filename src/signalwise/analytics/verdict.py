"""Whether a controller's change of a figure against the baseline is one to act on: "better" or "worse" where
the paired p (over the seeds both ran: the same traffic) is below 0.05 and the change at least 1 %, in the figure's
direction (a saving against the baseline, whose own is 0, on the paired p alone); "no clear change" otherwise;
"too few to judge" for a figure averaged over fewer than 10 vehicles or pedestrians in some seed's run (an emergency vehicle's delay rests on the one or two a seed). The one rule of
`signalwise compare`'s summary and report (`runtime.compare.summarize`) and of the API's comparison
(`comparisons.baseline_vs_ai`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .stats import Comparison

#: a change is called "better" or "worse" when the paired p is below this ...
SIGNIFICANT_P = 0.05
#: ... and the change is at least this, in percent of the baseline's mean: a significant +0.4 % of throughput is
#: no change anyone would act on ("no clear change")
MIN_CHANGE_PCT = 1.0
#: a figure averaged over fewer vehicles or pedestrians than this in some seed's run gets no verdict ("too few to
#: judge"): an emergency vehicle's delay rests on the few that ran, one or two a seed in an hour of `corridor`
MIN_PER_SEED = 10
#: what a change that gets no verdict says instead (summary.json `no_verdict`, summary.csv `verdict_note`)
NO_CLEAR_CHANGE = "no clear change"
TOO_FEW = "too few to judge"
#: ... where the baseline's mean is 0 for a figure that is no saving: no change in percent to weigh
NO_PERCENT = "no change in percent: a baseline of 0"

#: figures that are a saving against the baseline run (its own is 0 by definition): judged on the absolute change,
#: the paired p alone deciding, since a change in percent of 0 does not exist
SAVINGS = frozenset({"fuel_saved", "co2_saved"})

#: the direction of each figure that has one: True where less is better. A figure without one (vehicles or
#: pedestrians due, emergency vehicles in the run, preemptions called: the demand, not the control) gets no verdict
LOWER_IS_BETTER: dict[str, bool] = {
    # a run's own metrics (metrics.json "network"): `signalwise compare`'s table, then the others the store keeps
    "avg_delay_s": True, "avg_wait_s": True, "avg_travel_time_s": True, "stops_per_veh": True,
    "throughput_veh": False, "never_inserted": True, "teleports": True, "discarded_veh": True,
    "pedestrians_jammed": True, "locked_veh": True, "avg_queue_veh": True, "co2_kg": True, "fuel_l": True,
    "emergency_delay_s": True, "ped_delay_s": True, "ped_wait_s": True, "ped_wait_p95_s": True,
    "ped_wait_max_s": True, "ped_long_waits": True,
    "max_queue_veh": True, "co2_g": True, "fuel_ml": True, "running_at_end": True, "walking_at_end": True,
    "emergency_stops_per_veh": True, "emergency_stops_max": True, "emergency_wait_s": True,
    "emergency_wait_max_s": True, "safety_violations": True, "fallback_fraction": True, "controller_errors": True,
    # from the interval records (`store.queries.RECORD_METRICS`)
    "avg_wait_time": True, "avg_speed": False, "throughput": False, "total_vehicles_passed": False,
    "fuel_saved": False, "co2_saved": False,
    # per unit of travel: CO2 and fuel over the vehicle-km driven in the same counted window (`runtime.run`)
    "co2_g_per_veh_km": True, "fuel_l_per_100veh_km": True,
}

#: what each per-vehicle or per-pedestrian figure averages over, from a run's metrics (metrics.json "network", as
#: the store keeps them): (the word for them, the count); a count None leaves the run out (metrics from before the
#: count was kept)
def _departed(n: dict) -> int | None:
    """The vehicles that entered the network: every one due but those never inserted."""
    if n.get("vehicles_total") is None or n.get("never_inserted") is None:
        return None
    return n["vehicles_total"] - n["never_inserted"]


PER_SEED_SAMPLE: dict[str, tuple[str, Callable[[dict], int | None]]] = {
    "avg_delay_s": ("vehicles", lambda n: n.get("vehicles_total")),
    "avg_wait_s": ("vehicles", _departed),
    "avg_travel_time_s": ("vehicles", lambda n: n.get("throughput_veh")),
    "stops_per_veh": ("vehicles", _departed),
    "emergency_delay_s": ("vehicles", lambda n: n.get("emergency_vehicles")),
    "ped_delay_s": ("pedestrians", lambda n: n.get("pedestrians")),
    "ped_wait_s": ("pedestrians", lambda n: n.get("pedestrians")),
    "ped_wait_p95_s": ("pedestrians", lambda n: n.get("pedestrians")),
}


def per_seed_sample(key: str, networks: Sequence[dict], of_runs: int | None = None) -> dict | None:
    """How many vehicles or pedestrians each run (its metrics, `networks`: the runs that measured the metric)
    averaged the metric `key` over (`PER_SEED_SAMPLE`): {"of": "vehicles", "min": k, "max": m, "too_few": k <
    MIN_PER_SEED}, and when `of_runs` (all the runs) is given, "runs" (those that measured it) and "of_runs"; None
    for a figure that is no average over them, or when no run counted them."""
    if key not in PER_SEED_SAMPLE:
        return None
    of, count = PER_SEED_SAMPLE[key]
    counts = [int(c) for n in networks if (c := count(n)) is not None]
    if not counts:
        return None
    return {"of": of, "min": min(counts), "max": max(counts), "too_few": min(counts) < MIN_PER_SEED,
            **({"runs": len(counts), "of_runs": of_runs} if of_runs is not None else {})}


def judge(cmp: Comparison, lower_is_better: bool | None, too_few: bool = False, key: str | None = None) -> dict:
    """The verdict of a paired comparison: {"verdict": "better" | "worse"}, or {"no_verdict": TOO_FEW |
    NO_CLEAR_CHANGE | NO_PERCENT}, or {} where no test ran (one seed, no spread: the tables say "p n/a") or the
    figure has no direction (`lower_is_better` None). A saving (`key` in `SAVINGS`) against a baseline of 0 is
    judged on its absolute change: the paired p alone."""
    if too_few:
        return {"no_verdict": TOO_FEW}  # whatever the test gave, "p n/a" (one seed measured it) too
    if lower_is_better is None or math.isnan(cmp.p_value_paired):
        return {}
    if cmp.baseline.mean == 0:
        if key not in SAVINGS:
            return {"no_verdict": NO_PERCENT}
        if cmp.p_value_paired < SIGNIFICANT_P and cmp.candidate.mean != 0:
            lower = cmp.candidate.mean < 0
            return {"verdict": "better" if lower == lower_is_better else "worse"}
        return {"no_verdict": NO_CLEAR_CHANGE}
    if cmp.p_value_paired < SIGNIFICANT_P and abs(cmp.change_pct) >= MIN_CHANGE_PCT:
        lower = cmp.candidate.mean < cmp.baseline.mean
        return {"verdict": "better" if lower == lower_is_better else "worse"}
    return {"no_verdict": NO_CLEAR_CHANGE}
