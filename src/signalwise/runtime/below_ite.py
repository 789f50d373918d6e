"""Which configured yellows and red clearances are below ITE's for their signal's geometry, as data for the run's
summary: the warnings (`sim.signal_model.below_ite_notes`) say each in a sentence, and the audit counts the
intervals it saw below ITE, but a reader of the summary table saw "0 safety violations" for a run with no red
clearance at all. A value below ITE runs as configured (MUTCD leaves the red clearance optional, and an agency's
policy is its own); the summary says it beside the violations, as a departure from ITE, not a violation.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.types import Intersection
from ..sim.signal_model import ite_timing
from .step_rounding import configured_clearances

#: the settings held to ITE's formulas, the interval each is, and the ITE values signal_model.json records beside it
ITE_HELD = {"yellow_s": ("yellow", "ite_phase_yellow_s"), "all_red_s": ("red clearance", "ite_phase_all_red_s")}
EPS = 1e-9


def below_ite_timing(intersections: Iterable[Intersection], timing) -> list[dict]:
    """Per signal and setting, a configured yellow or red clearance below ITE's for a phase it serves: the setting
    (`timing.all_red_s`, or the signal's own override), its value, and the phases with ITE's value for each. Only
    under the safety profile's rules (`timing`, the run's `TimingConfig`): the benchmark and reference profiles' 3 s
    yellow and no all-red are their rules, and a value left null is ITE's."""
    if not (timing.ped_intervals and timing.protected_yellow):
        return []
    out = []
    for inter in sorted(intersections, key=lambda i: i.id):
        given = {k: v for k, v in configured_clearances(timing, inter.id).items() if k in ITE_HELD}
        if not given:
            continue
        ite = ite_timing(inter)
        for key, (where, value) in given.items():
            interval, ite_key = ITE_HELD[key]
            of = inter.timing.yellow_of if key == "yellow_s" else inter.timing.all_red_of
            short = [(p.number, need) for p, need in zip(inter.phases, ite[ite_key], strict=True)
                     if need is not None and of(p.index) < need - EPS]
            if short:
                out.append({"signal": inter.id, "setting": where, "interval": interval, "value_s": value,
                            "phases": [n for n, _ in short], "ite_s": [need for _, need in short]})
    return out


def below_ite_summary(below: list[dict]) -> str:
    """The run summary's cell for `below_ite_timing`'s records: each interval and value with the range of ITE's
    values and the number of signals, e.g. 'red clearance 0 s (ITE 1.5-2.4 s) at 5 signals'."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for b in below:
        groups.setdefault((b["interval"], b["value_s"]), []).append(b)
    cells = []
    for (interval, value), rows in groups.items():
        ite = [s for b in rows for s in b["ite_s"]]
        span = f"{min(ite):g} s" if min(ite) == max(ite) else f"{min(ite):g}-{max(ite):g} s"
        signals = {b["signal"] for b in rows}
        cells.append(f"{interval} {value:g} s (ITE {span}) at {len(signals)} signal{'s' if len(signals) > 1 else ''}")
    return "; ".join(cells)
