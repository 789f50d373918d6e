"""The camera in the loop: a controller that sees only what the vision pipeline makes of the frames.

Two runs of the same controller on the same traffic (scenario, seed, step):

- **loop detectors:** the ordinary run, its observations from SUMO's lanes
  and induction loops;
- **camera:** SUMO on sumo-gui films the signal every step
  (`sim.camera.FilmingBackend`); each frame goes through the vision pipeline
  with the signal state the controller set itself, and the controller's
  observations come from the pipeline's camera source (zones as virtual
  detectors), never from SUMO's lanes.

The figure is the change in average delay per vehicle (RESCO's delay, from
each run's trips) from the first run to the second.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..sim.camera.filming import FilmingBackend
from ..sim.camera.scene import stop_line_zones
from .config import RunConfig
from .run import execute_run

#: the issue's target: the camera-fed delay within this share of the loop-fed delay
DELAY_TOLERANCE = 0.10


@dataclass
class CameraLoopOptions:
    out_dir: Path
    scenario: str = "single"
    controller: str = "actuated"
    duration_s: float = 600.0
    step_s: float = 0.2
    seed: int = 1
    view_m: float = 133.0  # ground width of the 800-pixel frame (6 px/m)
    zone_m: float = 30.0  # how far upstream of its stop line each presence zone reaches


def run_camera_loop(opts: CameraLoopOptions, say: Callable[[str], None] = print) -> dict:
    """Both runs, their delays and the comparison; written to OUT/camera_loop.json."""
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig(scenario=opts.scenario, controller=opts.controller, seed=opts.seed, duration_s=opts.duration_s,
                    step_length_s=opts.step_s, out_dir=out, emissions=False)
    say(f"camera in the loop: {opts.controller} on {opts.scenario}, {opts.duration_s:g} s, fed by loop detectors")
    t0 = time.perf_counter()
    loops = execute_run(cfg, out / "loop-detectors")
    if loops.metrics["network"]["avg_delay_s"] is None:  # null: nobody to compare the two feeds on
        raise ValueError(f"no vehicle was due to enter {opts.scenario} in {opts.duration_s:g} s: give a longer "
                         "--duration")
    loops_wall = time.perf_counter() - t0
    say(f"camera in the loop: the same run fed by the camera (sumo-gui films every {opts.step_s:g} s step)")
    films: list[FilmingBackend] = []

    def filming(sumo_opts):
        backend = FilmingBackend(sumo_opts, log_dir=out / "camera-film", view_m=opts.view_m)
        films.append(backend)
        return backend

    sources = []

    def camera_source(sumo_source):
        source = camera_source_for(films[-1], cfg, emergency_source=sumo_source, zone_m=opts.zone_m)
        sources.append(source)
        return source

    t0 = time.perf_counter()
    camera = execute_run(cfg, out / "camera", backend_factory=filming, source_wrapper=camera_source)
    camera_wall = time.perf_counter() - t0
    d_loops = loops.metrics["network"]["avg_delay_s"]
    d_camera = camera.metrics["network"]["avg_delay_s"]
    change = (d_camera - d_loops) / d_loops if d_loops else float("nan")
    result = {
        "scenario": opts.scenario, "controller": opts.controller, "seed": opts.seed, "duration_s": opts.duration_s,
        "step_s": opts.step_s, "view_m": opts.view_m, "zone_m": opts.zone_m,
        "loop_detectors": {"avg_delay_s": d_loops, "run_dir": str(loops.run_dir), "wall_s": round(loops_wall, 1),
                           "fallback_fraction": loops.metrics["network"]["fallback_fraction"]},
        "camera": {"avg_delay_s": d_camera, "run_dir": str(camera.run_dir), "wall_s": round(camera_wall, 1),
                   "frames": films[-1].frames if films else 0,
                   "fallback_fraction": camera.metrics["network"]["fallback_fraction"]},
        "delay_change": change,
        "target": f"|change| <= {DELAY_TOLERANCE}",
        "met": abs(change) <= DELAY_TOLERANCE,
    }
    (out / "camera_loop.json").write_text(json.dumps(result, indent=2))
    return result


def camera_source_for(backend: FilmingBackend, cfg: RunConfig, emergency_source=None, zone_m: float = 30.0):
    """The vision pipeline's observation source on this backend's frames, fed every step.

    The camera file is the backend's view with a presence zone per stop line
    (not per approach), each carrying the channel of its lane group's stop-bar
    loop, so a controller that reads loops per lane group finds the camera's
    zones where it looks for them. Each frame goes through the pipeline with
    the signal state the controller set (read back from SUMO after the step).
    Emergency preemption keeps its own input (`emergency_source`, SUMO here):
    a camera zone does not tell an ambulance from a car.
    """
    from ..sim.approach import compass_approach
    from ..sim.detectors import plan_detectors
    from ..vision.camera import camera_from_dict
    from ..vision.pipeline import Pipeline
    from ..vision.source import CameraObservationSource
    from .loop import resolve_scenario, timing_defaults

    scenario = resolve_scenario(cfg)
    inters, _refused = backend.read_signals(timing_defaults(cfg), cfg.timing.per_intersection, cfg.partition)
    layout = plan_detectors(scenario.net_file)
    tls = backend.scene.device_id
    inters = [dataclasses.replace(i, detectors=layout.get(i.id, ())) for i in inters]
    watched = next(i for i in inters if i.id == tls)
    channel_of_lane = {d.lane: d.channel for d in watched.detectors if d.kind == "stopbar"}
    camera = dict(backend.camera)
    camera["zones"] = stop_line_zones(backend.scene, backend.view, channel_of_lane, zone_m)
    config = camera_from_dict(camera, "the filmed view")
    shapes = backend.lane_shapes(dict.fromkeys(lane for i in inters for lane in i.in_lanes))
    approach_of_lane = {lane: compass_approach(shape) for lane, shape in shapes.items()}
    source = CameraObservationSource(inters, approach_of_lane, [config], emergency_source=emergency_source)
    pipeline = Pipeline(config)

    def on_frame(frame, t: float) -> None:
        source.update(config.camera_id, pipeline.process(frame, t, signal_state=backend.signal_state(tls)))

    backend.on_frame = on_frame
    return source
