"""Which configured yellows and red clearances are below ITE's for their signal's geometry, as data for the run's
summary: the warnings (`sim.signal_model.below_ite_notes`) say each in a sentence, and the audit counts the
intervals it saw below ITE, but a reader of the summary table saw "0 safety violations" for a run with no red
clearance at all. A value below ITE runs as configured (MUTCD leaves the red clearance optional, and an agency's
policy is its own); the summary says it beside the violations, as a departure from ITE, not a violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..core.timing import ceil_to_step
from ..core.types import Intersection
from ..sim.signal_model import BELOW_ITE_NOTE, ite_timing
from .step_rounding import configured_clearances

#: the settings held to ITE's formulas, the interval each is, and the ITE values signal_model.json records beside it
ITE_HELD = {"yellow_s": ("yellow", "ite_phase_yellow_s"), "all_red_s": ("red clearance", "ite_phase_all_red_s")}
EPS = 1e-9


def below_ite_timing(intersections: Iterable[Intersection], timing, step_s: float = 1.0) -> list[dict]:
    """Per signal and setting, a configured yellow or red clearance below ITE's for a phase it serves: the setting
    (`timing.all_red_s`, or the signal's own override), its value, the value the signal shows at `step_s` steps
    (`shown_s`, whole steps rounded up: 0.5 s shows 1 s at 1 s steps), and the phases with ITE's value for each.
    Only under the safety profile's rules (`timing`, the run's `TimingConfig`): the benchmark and reference
    profiles' 3 s yellow and no all-red are their rules, and a value left null is ITE's."""
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
                            "shown_s": ceil_to_step(value, step_s), "step_s": step_s,
                            "phases": [n for n, _ in short], "ite_s": [need for _, need in short]})
    return out


def _value_text(b: dict) -> str:
    """A setting's value, and the value the signal showed where the step rounded it up: "0.5 s, shown 1 s at 1 s
    steps" (a record without `shown_s`, from before it was kept: the value alone)."""
    shown = b.get("shown_s")
    if shown is None or shown <= b["value_s"] + EPS:
        return f"{b['value_s']:g} s"
    return f"{b['value_s']:g} s, shown {shown:g} s at {b['step_s']:g} s steps"


def _by_setting(below: list[dict]) -> dict[tuple[str, str, float], list[dict]]:
    """`below_ite_timing`'s records by (setting, interval, value), in the order first given."""
    groups: dict[tuple[str, str, float], list[dict]] = {}
    for b in below:
        groups.setdefault((b["setting"], b["interval"], b["value_s"]), []).append(b)
    return groups


def below_ite_summary(below: list[dict]) -> str:
    """The run summary's cell for `below_ite_timing`'s records: each interval and value with the range of ITE's
    values and the number of signals, e.g. 'red clearance 0 s (ITE 1.5-2.4 s) at 5 signals'."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for b in below:
        groups.setdefault((b["interval"], b["value_s"]), []).append(b)
    cells = []
    for (interval, _value), rows in groups.items():
        ite = [s for b in rows for s in b["ite_s"]]
        span = f"{min(ite):g} s" if min(ite) == max(ite) else f"{min(ite):g}-{max(ite):g} s"
        signals = {b["signal"] for b in rows}
        cells.append(f"{interval} {_value_text(rows[0])} (ITE {span}) at {len(signals)} "
                     f"signal{'s' if len(signals) > 1 else ''}")
    return "; ".join(cells)


#: signals a run's below-ITE line names; the rest are counted
NAMED_SIGNALS = 6
#: a run's warning that one signal's configured clearance is below ITE (`sim.signal_model.below_ite_notes`)
_SIGNAL_NOTE = re.compile(r"signal '(?P<signal>[^']+)': " + re.escape(BELOW_ITE_NOTE))


def below_ite_lines(below: list[dict]) -> list[str]:
    """The run's terminal lines for `below_ite_timing`'s records: one per setting and value, naming its signals
    briefly, with the span of ITE's values and the value shown where the step rounded it up. Each phase's ITE
    value and the formula's inputs stay in metrics.json (warnings, one per signal), with each interval the audit
    measured (safety.below_ite)."""
    lines = []
    for (setting, interval, _value), rows in _by_setting(below).items():
        signals = sorted({b["signal"] for b in rows})
        ite = [s for b in rows for s in b["ite_s"]]
        span = f"{min(ite):g} s" if min(ite) == max(ite) else f"{min(ite):g}–{max(ite):g} s"
        named = ", ".join(signals[:NAMED_SIGNALS]) + (
            f" and {len(signals) - NAMED_SIGNALS} more" if len(signals) > NAMED_SIGNALS else "")
        where = f"{len(signals)} signals ({named})" if len(signals) > 1 else f"signal {named}"
        lines.append(f"below ITE at {where}: {setting} {_value_text(rows[0])}, where ITE's {interval} is {span} for "
                     f"{'their' if len(signals) > 1 else 'its'} geometry; the configured value runs (not a safety "
                     "violation); metrics.json gives every phase's ITE value and its inputs (warnings) and each "
                     "interval the audit measured (safety.below_ite)")
    return lines


def run_warning_lines(warnings: Sequence[str], below: list[dict], audit_lines: Sequence[str] = ()) -> list[str]:
    """A run's warnings as its terminal shows them: the per-signal below-ITE notes of the signals `below` records
    give way to `below_ite_lines` (one per setting, where the first of them stood), and the audit's per-interval
    below-ITE lines (`audit_lines`) to a count, for any signal `below` does not record; metrics.json keeps every
    one. A trial's two below-ITE settings gave 5 paragraph-long warnings and 32 audit lines, burying the rest."""
    recorded = {b["signal"] for b in below}
    out: list[str] = []
    grouped = False
    for text in warnings:
        m = _SIGNAL_NOTE.match(text)
        if m is None or m["signal"] not in recorded:
            out.append(text)
        elif not grouped:
            out += below_ite_lines(below)
            grouped = True
    if not grouped:
        out += below_ite_lines(below)
    others = [line for line in audit_lines if _audit_device(line) not in recorded]
    if others:
        devices = sorted({_audit_device(line) for line in others})
        named = ", ".join(devices[:NAMED_SIGNALS]) + (
            f" and {len(devices) - NAMED_SIGNALS} more" if len(devices) > NAMED_SIGNALS else "")
        out.append(f"the audit measured {len(others)} yellow(s) or red clearance(s) below ITE at "
                   f"{len(devices)} signal(s) ({named}), not violations of the run's own timing: metrics.json "
                   "(safety.below_ite) gives each")
    return out


def _audit_device(line: str) -> str:
    """The signal of one of the audit's below-ITE lines ("below ITE: J1 t=28 phase 1 ...")."""
    return line.removeprefix("below ITE: ").split(" ", 1)[0]
