"""The run settings a training's episodes run under, from a `--config` file or an API request's `settings`.

A model learns what a change costs under the rules its episodes ran, so a
city trains under its own clearances: a run configuration's `timing`,
`shield`, `step_length_s`, `time_to_teleport_s`, `sumo_options` (a calibrated
network's SUMO settings) and `sumocfg_options` (whether a .sumocfg's own apply). The network, the
controller, the seeds and the durations are the training's own. The
settings are recorded in the model (`training.run`) and `evaluate` runs
under them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..runtime.config import timing_beside

#: the run configuration's settings a training episode takes
EPISODE_SETTINGS = ("timing", "shield", "step_length_s", "time_to_teleport_s", "sumo_options", "sumocfg_options")


def episode_settings(data: Mapping, profile: str | None = None, cycle_calls: bool = False) -> dict:
    """The EPISODE_SETTINGS of `data`, with `profile` (a timing profile's name) and `cycle_calls` set beside its
    timing keys. A profile name alone stays a name, as a model's meta.json has always written it."""
    run = {k: v for k, v in data.items() if k in EPISODE_SETTINGS}
    timing = timing_beside(run.get("timing"), profile, cycle_calls)
    if timing is not None:
        run["timing"] = timing
    return run


def unapplied(data: Mapping) -> list[str]:
    """The settings of `data` a training does not take."""
    return [k for k in data if k not in EPISODE_SETTINGS]
