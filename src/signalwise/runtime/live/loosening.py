"""How far an operator may loosen a safety function while a live run goes on: the one rule the alert rules, the
shield's settings and the signals' clearances follow.

An operator's change may tighten a safety function freely, and loosen it as far as its limit (the edge where it
still does its work), never past it; a run that started looser (its `--config`, read before the run starts, by
whoever deploys it) may keep what it started with (`live_bound`). The `--config` is where a looser value is set: a
change at run time comes from any key with the `operate` scope, one that also holds a phase or acknowledges an
alert, and a lasting one is applied again at every restart.

- alert rules (`alerts.operator_rules`): a safety alert's threshold and hold, within `alerts.SAFETY_LIMITS`;
- the shield (`shield_refusal`): emergency preemption stays on, the confidence fallback's threshold stays at
  least `SHIELD_LIMITS`'s, and the preemption's dwell and distance at most its (the data-age fallback and the
  preemption minimums have their limits in the run configuration itself, the same for a `--config`:
  `config.ShieldSettings`, whose preemption maximums are these);
- the clearances (`clearance_refusal`), under the safety profile: each phase's yellow and red clearance stays at
  least ITE's for the signal's geometry, the value a `--config` below it runs as given and is said
  (docs/configuration.md, `timing.all_red_s`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from ..config import PREEMPT_MAX_DISTANCE_M, PREEMPT_MAX_DWELL_S

#: which way a setting is looser: a lower confidence threshold, a higher alert threshold
Looser = Literal["lower", "higher"]
LOWER, HIGHER = "lower", "higher"


def live_bound(limit, started, looser: Looser):  # noqa: ANN001, ANN201 - numbers, booleans, ordered alike
    """How far a change at run time may loosen a setting: its `limit`, or what the run `started` with where that is
    looser already (never refused for keeping it)."""
    return min(limit, started) if looser == LOWER else max(limit, started)


def past_bound(asked, bound, looser: Looser) -> bool:  # noqa: ANN001
    """Whether `asked` is looser than `bound` (`live_bound`)."""
    return asked < bound - 1e-9 if looser == LOWER else asked > bound + 1e-9


#: said after every refusal of this rule: where a looser value can be set, and why not here
CONFIG_INSTEAD = ("it can be tightened, not switched off or loosened past that through the API; a run's --config "
                  "may set it (read when the run starts: stop the run and start it with that file)")

#: the shield's settings an operator may not loosen at run time past these, and why each: (limit, which way is
#: looser, what a value past it does). A setting the run started looser keeps its own value as its bound.
SHIELD_LIMITS: dict[str, tuple[float | bool, Looser, str]] = {
    "preempt": (True, LOWER, "false switches emergency-vehicle preemption off at every signal"),
    # the shield's default, and the scale the learning controller's confidence is made on: a state its model
    # knows well, with sound data, gives at least 0.5 (control/learning/controller.py); 0 follows every decision,
    # a model that cannot be used (confidence 0) included: the confidence fallback switched off
    "confidence_threshold": (0.5, LOWER, "below it the shield follows decisions its fallback would replace (0 "
                                         "follows every one, a model that cannot be used included: the confidence "
                                         "fallback switched off)"),
    # MUTCD permits ending a walk for preemption; a run that starts without it keeps its walks whole
    "preempt_ends_walk": (False, HIGHER, "true cuts a pedestrian's walk short when an emergency vehicle calls"),
    # the run configuration's own maximums (config.PREEMPT_MAX_DWELL_S and PREEMPT_MAX_DISTANCE_M say why), which
    # a --config cannot pass either: a change at run time is refused by the configuration's check first
    "preempt_max_dwell_s": (PREEMPT_MAX_DWELL_S, HIGHER, "longer, a stuck call holds the cross streets red past "
                                                         "the longest maximum green the safety profile allows"),
    "preempt_distance_m": (PREEMPT_MAX_DISTANCE_M, HIGHER, "farther, a call holds a green for a vehicle more "
                                                           "than a minute away"),
    # the shield's default entry minimum (the default vehicle minimum green): a run that starts with it cuts only
    # minimums longer than 5 s when an emergency vehicle calls
    "preempt_entry_min_green_s": (5.0, LOWER, "shorter, a green that began just before a preemption call ends "
                                              "sooner after it began"),
}


def shield_refusal(started, asked) -> str | None:  # noqa: ANN001 - `config.ShieldSettings`
    """Why a change may not put shield settings `asked` in place at run time (None: it may), the run having started
    with `started`: each `SHIELD_LIMITS` setting loosened past its bound, in one line."""
    said = []
    for name, (limit, looser, why) in SHIELD_LIMITS.items():
        bound = live_bound(limit, getattr(started, name), looser)
        value = getattr(asked, name)
        if past_bound(value, bound, looser):
            shown = _shown(bound)
            started_looser = past_bound(getattr(started, name), limit, looser)
            said.append(f"shield.{name} {_shown(value)}: {why}; at run time it stays "
                        + (f"{shown}" if isinstance(bound, bool) else
                           f"at {'least' if looser == LOWER else 'most'} {shown}")
                        + (" (the run started with it)" if started_looser else ""))
    if not said:
        return None
    return "; ".join(said) + f": {CONFIG_INSTEAD}"


def shield_differences(before, after) -> list[str]:  # noqa: ANN001 - `config.ShieldSettings`
    """Each shield setting a change moved, `name old -> new`, in the settings' order."""
    old, new = before.model_dump(), after.model_dump()
    return [f"{k} {_shown(old[k])} -> {_shown(new[k])}" for k in new if new[k] != old.get(k)]


def _shown(value) -> str:  # noqa: ANN001
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def clearance_floors(intersections: Iterable) -> dict[str, dict[str, list[tuple[float, float] | None]]]:
    """Per signal, per clearance key (`yellow_s`, `all_red_s`), each phase's (ITE's value for its geometry, the value
    it started with), None for a phase serving no vehicle link: the bound is the lower (`live_bound`)."""
    from ...sim.signal_model import ite_change_intervals_s

    out: dict[str, dict[str, list[tuple[float, float] | None]]] = {}
    for inter in intersections:
        ite = dict(zip(("yellow_s", "all_red_s"), ite_change_intervals_s(inter.phases, inter.approach_speed_mps,
                                                                          inter.width_m), strict=True))
        t = inter.timing
        started = {"yellow_s": [t.yellow_of(p.index) for p in inter.phases],
                   "all_red_s": [t.all_red_of(p.index) for p in inter.phases]}
        out[inter.id] = {key: [None if need is None else (need, started[key][k]) for k, need in enumerate(ite[key])]
                         for key in ("yellow_s", "all_red_s")}
    return out


def clearance_refusal(tls: str, phases, timing, floors: Mapping[str, list]) -> str | None:  # noqa: ANN001
    """Why signal `tls` may not run `timing` (a `Timing`) at run time under the safety profile: each phase whose
    yellow or red clearance would be below its bound (ITE's for the signal's geometry, or the lower value the run
    started with), naming the phase, the value asked and the minimum; None when none is."""
    said = []
    for p in phases:
        short = []
        for key in ("yellow_s", "all_red_s"):
            floor = floors[key][p.index] if p.index < len(floors[key]) else None
            if floor is None:
                continue
            ite, started = floor
            bound = live_bound(ite, started, LOWER)
            value = timing.yellow_of(p.index) if key == "yellow_s" else timing.all_red_of(p.index)
            if past_bound(value, bound, LOWER):
                short.append(f"{key} {value:g} s below " + (f"the {bound:g} s it started with (ITE {ite:g} s)"
                                                             if bound < ite - 1e-9 else f"ITE's {bound:g} s"))
        if short:
            said.append(f"phase {p.number} " + " and ".join(short))
    return f"signal {tls!r}: " + "; ".join(said) if said else None


#: where the minimums of `clearance_refusal` come from, said once after its lines
ITE_SOURCE = ("ITE's yellow, 1 s + v / (2 x 3.05 m/s2), and red clearance, (path + 6.1 m) / v, of each phase's "
              "links: signal_model.json timing.ite_phase_yellow_s and ite_phase_all_red_s, docs/configuration.md "
              "timing.all_red_s")
