"""The warning on a configured clearance the simulation step cannot show as given.

SUMO changes a signal's state only at a step, so the shield shows each yellow, red clearance and pedestrian
clearance in whole steps, rounded up (`core.timing.ceil_to_step`: a 4.5 s yellow shows 5 s at 1 s steps). A value
derived from the geometry (ITE's 3.3 s yellow) is a minimum, and showing it longer is what docs/configuration.md
says; a value an engineer configured is their policy, so a run says where it shows another one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..core.timing import ceil_to_step
from ..core.types import Intersection

#: the configured clearances a run shows in whole steps, and what each is called in the warning
CLEARANCE_KEYS = {"yellow_s": "yellow", "all_red_s": "red clearance", "ped_clearance_s": "pedestrian clearance"}
#: steps a warning may suggest, longest first: SUMO's step lengths that divide a second
STEP_CHOICES_S = (0.5, 0.25, 0.2, 0.1)
EPS = 1e-6


def configured_clearances(timing, tls_id: str) -> dict[str, tuple[str, float]]:
    """The clearances `timing` (a run's `TimingConfig`) sets at signal `tls_id`: key -> (where it is set, value);
    null ones (derived from the geometry) left out."""
    own = timing.per_intersection.get(tls_id) or {}
    out = {}
    for key in CLEARANCE_KEYS:
        if key in own:
            where, value = f"timing.per_intersection.{tls_id}.{key}", own[key]
        else:
            where, value = f"timing.{key}", getattr(timing, key)
        if value is not None:
            out[key] = (where, float(value))
    return out


def _applies(inter: Intersection, key: str) -> bool:
    """Whether signal `inter` shows the clearance `key`: a pedestrian clearance only where it times walk and
    clearance over a crosswalk."""
    return key != "ped_clearance_s" or bool(inter.crosswalks and inter.timing.ped_intervals)


def exact_step_s(value_s: float, step_s: float) -> float | None:
    """The longest of STEP_CHOICES_S shorter than `step_s` that shows `value_s` exactly (None: none does)."""
    return next((s for s in STEP_CHOICES_S if s < step_s - EPS and abs(value_s / s - round(value_s / s)) < EPS), None)


def clearance_rounding_warnings(intersections: Iterable[Intersection], timing, step_s: float,
                                skip: Mapping[str, object] | None = None) -> list[str]:
    """One line per configured clearance value the step shows longer, naming the signals it is shown at, the value
    configured, the value shown and a step that shows it exactly. `timing`: the run's `TimingConfig`."""
    shown_at: dict[tuple[str, str, float], list[str]] = {}
    for inter in sorted(intersections, key=lambda i: i.id):
        if skip and inter.id in skip:
            continue
        for key, (where, value) in configured_clearances(timing, inter.id).items():
            if _applies(inter, key) and ceil_to_step(value, step_s) > value + EPS:
                shown_at.setdefault((where, key, value), []).append(inter.id)
    out = []
    for (name, key, value), ids in shown_at.items():
        shown = ceil_to_step(value, step_s)
        exact = exact_step_s(value, step_s)
        fix = f"step_length_s {exact:g} shows it exactly" if exact else "a value in whole steps shows it exactly"
        out.append(f"{name} {value:g} s runs as {shown:g} s at signal(s) {', '.join(ids)}: at {step_s:g} s steps "
                   f"each {CLEARANCE_KEYS[key]} is shown in whole steps, rounded up ({fix})")
    return out
