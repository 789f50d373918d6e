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
- `max-pressure-pays`: `max-pressure-hold` without the young green's bonus:
  a change still pays for its clearance, and the shield's minimum green is
  the only hold. Where greens should be short the bonus holds them too
  long, and a search from there stays near it (CMA-ES moves a weight of
  100 by steps of a few units): on bench/random_networks.py's grid-turns
  (a 4 x 4 grid with 40 m turn pockets) a search from these weights gave
  28.5 s on seeds 1-5, one from `max-pressure-hold` 34.1 s, and the
  max-pressure controller 30.7 s (docs/learning.md, "Networks nobody tuned
  on").

`auto` names none of them: every start above runs on the search's
validation seeds and the search starts from the lowest
(`policy_search.choose_start`).

A phase-score model's directory (or its `meta.json`) is a start too: its
weights and decision period, so that a search fine-tunes a model to another
timing profile or network (a model trained under `--timing benchmark`
searched again under `safety`, a shipped model on your own network). The
search must measure as the model does (`--measure`): its weights are in
those units. A model refined per signal (`--per-signal`) starts each signal
it names from that signal's weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..control.learning.phase_score import ALL_FEATURES, FEATURES


@dataclass(frozen=True)
class SearchStart:
    #: the weights this start names; every other feature weighs 0
    weights: dict[str, float]
    #: decision period, seconds
    period_s: float = 5.0
    #: what the weights' vehicles are measured in (a model's: count | density); None: either
    measure: str | None = None
    #: a per-signal model's own weights, signal id -> feature -> weight (the others run `weights`)
    signal_weights: dict[str, dict[str, float]] = field(default_factory=dict)

    def features(self) -> tuple[str, ...]:
        """FEATURES and any other feature the start weighs, in ALL_FEATURES' order."""
        return tuple(f for f in ALL_FEATURES if f in FEATURES or f in self.weights)

    def adding(self, names) -> SearchStart:
        """This start with `names` weighed too, each from 0 (a weight it already has is kept)."""
        unknown = [n for n in names if n not in ALL_FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)} (known: {', '.join(ALL_FEATURES)})")
        return replace(self, weights={**{n: 0.0 for n in names}, **self.weights})

    def vector(self, features: tuple[str, ...]) -> tuple[float, ...]:
        return tuple(float(self.weights.get(f, 0.0)) for f in features)

    def signal_vectors(self, features: tuple[str, ...]) -> dict[str, list[float]]:
        """Each signal the start weighs on its own: its weights for `features` (0 where it has none)."""
        return {tls: [float(w.get(f, 0.0)) for f in features] for tls, w in self.signal_weights.items()}


STARTS = {
    "max-pressure": SearchStart({"in_halt": 1.0, "out_halt": -1.0}),
    "actuated": SearchStart({"in_halt": 1.0, "out_halt": -1.0, "hold_gap": 100.0}, period_s=1.0),
    "max-pressure-hold": SearchStart({"in_halt": 1.0, "in_moving": 1.0, "out_halt": -1.0, "hold_young": 100.0,
                                      "hold_halt": 0.5, "hold_moving": 0.5}),
    "max-pressure-pays": SearchStart({"in_halt": 1.0, "in_moving": 1.0, "out_halt": -1.0, "hold_halt": 0.5,
                                      "hold_moving": 0.5}),
}
DEFAULT_START = "max-pressure"
#: `--start auto`: validate every start of STARTS, search from the best
AUTO_START = "auto"


def search_start(name: str) -> SearchStart:
    """The start called `name`, or the model at path `name`; ValueError (one line) naming the choices otherwise."""
    if name in STARTS:
        return STARTS[name]
    if Path(name).exists():
        return model_start(Path(name))
    raise ValueError(f"unknown --start {name!r}; choose from {', '.join(STARTS)}, {AUTO_START} or a phase-score "
                     "model's directory")


def model_start(path: Path) -> SearchStart:
    """The weights, period and measure of the phase-score model at `path` (its directory or its meta.json)."""
    meta_file = path if path.is_file() else next((p for p in (path / "meta.json", path / "model" / "meta.json")
                                                  if p.is_file()), None)
    if meta_file is None:
        raise ValueError(f"--start {path}: no meta.json there (give a model's directory)")
    try:
        meta = json.loads(meta_file.read_text())
        policy = meta["policy"] if meta.get("agent") == "phase-score" else None
        if policy:  # a count that does not match, said in the model's terms
            every = {"": policy["weights"], **{f" at signal {tls}": w
                                               for tls, w in (policy.get("signal_weights") or {}).items()}}
            for whose, w in every.items():
                if len(w) != len(policy["features"]):
                    raise ValueError(f"{len(w)} weights{whose} for {len(policy['features'])} features")
        weights = dict(zip(policy["features"], map(float, policy["weights"]), strict=True)) if policy else None
        signals = {str(tls): dict(zip(policy["features"], map(float, w), strict=True))
                   for tls, w in (policy.get("signal_weights") or {}).items()} if policy else {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--start {meta_file}: not a readable model ({exc})") from None
    if weights is None:
        raise ValueError(f"--start {meta_file}: a {meta.get('agent', 'tabular')} model; a search starts from a "
                         "phase-score model's weights")
    unknown = set(weights) - set(ALL_FEATURES)
    if unknown:
        raise ValueError(f"--start {meta_file}: features this version does not know: {', '.join(sorted(unknown))}")
    return SearchStart(weights, float(policy.get("period_s", 5.0)), str(policy.get("measure", "count")), signals)


def search_starts(name: str) -> dict[str, SearchStart]:
    """The starts `--start name` tries: all of STARTS for `auto`, else the one named (ValueError if unknown)."""
    return dict(STARTS) if name == AUTO_START else {name: search_start(name)}
