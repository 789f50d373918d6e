"""Named starting points of the phase-score search (`signalwise train --start NAME`).

CMA-ES searches near where it starts, so a start that already controls the
network well is the cheapest improvement there is. Each start is a known
controller written as phase-score weights (phase_score.py's features):

- `max-pressure`: max-pressure on halting vehicles, re-decided every 5 s with
  no hold (the plain rule; the default).
- `actuated`: actuated control: max-pressure on halting vehicles plus a
  `hold_gap` so large that a green runs while its detectors see traffic,
  decided every second (as scripts/train_shipped_models.py's corridor start).
  It weighs `hold_gap`, so the search gets all features.
- `max-pressure-hold`: our max-pressure controller's defaults, as far as the
  features express them. Every vehicle in (`in_halt` + `in_moving`) minus
  halting vehicles out; a young green held (`hold_young` 100: a bonus of 67
  vehicles per 100 m at 5 s of green, 33 at 10 s, none from 15 s, where
  max-pressure holds 10 s outright); and a change must pay for its clearance:
  max-pressure changes only when the other phase's pressure beats the current
  one's times (hold + clearance) / hold, about 1.5 with a 10 s hold and the
  safety profile's ITE clearances (about 5 s), so the current phase's incoming vehicles
  weigh 1.5 (`hold_halt`, `hold_moving` 0.5). On resco:cologne3 under the
  safety profile (density, seeds 701-703) these weights gave 28.0 s against
  55.2 s for `max-pressure` and 31.0 s for the max-pressure controller;
  `hold_young` 200 gave 25.3 s there but locked up one seed of three under
  the benchmark profile (99.9 s), 100 did not (19.3 s; docs/learning.md).

`auto` names none of them: every start above runs on the search's
validation seeds and the search starts from the lowest
(`policy_search.choose_start`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..control.learning.phase_score import ALL_FEATURES, FEATURES


@dataclass(frozen=True)
class SearchStart:
    #: the weights this start names; every other feature weighs 0
    weights: dict[str, float]
    #: decision period, seconds
    period_s: float = 5.0

    def features(self) -> tuple[str, ...]:
        """FEATURES, or every feature when the start weighs one outside them."""
        return FEATURES if set(self.weights) <= set(FEATURES) else ALL_FEATURES

    def vector(self, features: tuple[str, ...]) -> tuple[float, ...]:
        return tuple(float(self.weights.get(f, 0.0)) for f in features)


STARTS = {
    "max-pressure": SearchStart({"in_halt": 1.0, "out_halt": -1.0}),
    "actuated": SearchStart({"in_halt": 1.0, "out_halt": -1.0, "hold_gap": 100.0}, period_s=1.0),
    "max-pressure-hold": SearchStart({"in_halt": 1.0, "in_moving": 1.0, "out_halt": -1.0, "hold_young": 100.0,
                                      "hold_halt": 0.5, "hold_moving": 0.5}),
}
DEFAULT_START = "max-pressure"
#: `--start auto`: validate every start of STARTS, search from the best
AUTO_START = "auto"


def search_start(name: str) -> SearchStart:
    """The start called `name`; ValueError (one line) naming the known ones otherwise."""
    try:
        return STARTS[name]
    except KeyError:
        raise ValueError(f"unknown --start {name!r}; choose from {', '.join(STARTS)} or {AUTO_START}") from None


def search_starts(name: str) -> dict[str, SearchStart]:
    """The starts `--start name` tries: all of STARTS for `auto`, else the one named (ValueError if unknown)."""
    return dict(STARTS) if name == AUTO_START else {name: search_start(name)}
