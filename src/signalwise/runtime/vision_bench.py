"""The vision benchmark: render the simulation, run the pipeline on each view, grade it on the truth.

    OUT/render/                    `signalwise vision render` (video, camera file, truth per view)
    OUT/pipeline/<view>/           `signalwise vision run` on that view's video
    OUT/grades/<view>.json         every figure of `signalwise.vision.grading.grade_run`
    OUT/bench.json                 all of it, and each target met, missed, or not graded (`graded`:
                                   false, nothing to grade); `status`: complete, or incomplete with
                                   the reason when the bench was stopped

The pipeline runs as its own command, exactly as a user runs it, with the
render's `signal_states.csv` and the simulation time of the first frame as
`--signals-offset`: the bench grades the files the pipeline writes, nothing
it holds in memory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..sim.camera import FaultPlan, RenderOptions, render

Say = Callable[[str], None]


class PipelineFailed(RuntimeError):
    """`signalwise vision run` exited with an error: its last line says why."""


@dataclass
class BenchOptions:
    out_dir: Path
    scenario: str = "single"
    duration_s: float = 500.0
    warmup_s: float = 60.0
    seed: int = 1
    #: 5 frames a second: half the rendering of 10, and the low end of what a traffic camera's analytics run at
    step_s: float = 0.2
    oblique_tilt: float | None = 0.35
    #: ground width of the 800-pixel frame: 133 m is 6 px/m, a car 27 x 11 pixels (200 m is 4 px/m, a car
    #: 18 x 7: docs/vision-bench.md has both)
    view_m: float = 133.0
    #: enough faults for 30 events of each kind in 500 s of `single` (not every pick turns into an event)
    faults: FaultPlan = field(default_factory=lambda: FaultPlan(red_light_every_s=6.0, speeder_every_s=4.0))
    render_dir: Path | None = None  # grade an existing render instead of rendering
    interval_s: float = 60.0
    #: the camera-in-the-loop comparison (its own two runs of `loop_duration_s`); 0 leaves it out
    loop_duration_s: float = 600.0
    loop_controller: str = "actuated"


def pipeline_command(video: Path, camera: Path, signals: Path, offset_s: float, fps: float, interval_s: float,
                     out: Path) -> list[str]:
    return [sys.executable, "-m", "signalwise.cli", "vision", "run", "--video", str(video), "--camera", str(camera),
            "--signals", str(signals), "--signals-offset", f"{offset_s:g}", "--fps", f"{fps:g}",
            "--interval", f"{interval_s:g}", "--out", str(out)]


def run_pipeline(render_dir: Path, view: str, out: Path, interval_s: float = 60.0) -> float:
    """Run `signalwise vision run` on one rendered view; returns its wall time in seconds."""
    summary = json.loads((render_dir / "render.json").read_text())
    cmd = pipeline_command(render_dir / view / "video.avi", render_dir / view / "camera.yaml",
                           render_dir / "signal_states.csv", summary["first_frame_time_s"], summary["fps"],
                           interval_s, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # a session of its own: the bench alone tells it to stop, once (a terminal's Ctrl-C reached both, and a
    # second signal from the bench cut the pipeline's own clean-up short)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate()
        except BaseException:
            _let_it_finish(proc)
            raise
    if proc.returncode != 0:
        last = (stderr.strip() or stdout.strip() or f"exit code {proc.returncode}").splitlines()[-1]
        raise PipelineFailed(f"signalwise vision run on {view} failed: {last}")
    return time.perf_counter() - t0


#: how long a stopped pipeline gets to close its files and write summary.json before it is killed
PIPELINE_FINISH_S = 30.0


def _let_it_finish(proc: subprocess.Popen) -> None:
    """Stop the pipeline as Ctrl-C stops it, and wait for it to write its files out.

    subprocess.run kills the child a quarter of a second after Ctrl-C, which left its CSV files cut
    mid-row and no summary.json. The pipeline runs in its own session, so whatever stopped the bench
    (Ctrl-C, SIGTERM, `kill -INT`), it gets one SIGTERM from here, which `vision run` takes as Ctrl-C
    (SIGINT would be ignored by a pipeline started from a script that runs the bench in the background),
    and then the time to finish.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=PIPELINE_FINISH_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.communicate()


def run_bench(opts: BenchOptions, say: Say = print, render_progress=None) -> dict:
    """Render (unless given a render), run and grade the pipeline on every view; write and return bench.json."""
    from ..vision.grading import report_json

    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench: dict = {"status": "running",
                   "options": {"scenario": opts.scenario, "duration_s": opts.duration_s, "seed": opts.seed,
                               "step_s": opts.step_s, "oblique_tilt": opts.oblique_tilt, "view_m": opts.view_m}}
    try:
        _run_bench(opts, out, bench, say, render_progress)
    except BaseException as exc:  # what was graded stays readable, marked as a bench that did not finish
        bench["status"] = "incomplete"
        bench["reason"] = _stop_reason(exc)
        (out / "bench.json").write_text(report_json(bench))
        raise
    bench["status"] = "complete"
    (out / "bench.json").write_text(report_json(bench))
    return bench


def _stop_reason(exc: BaseException) -> str:
    from ..termination import stop_reason

    if isinstance(exc, KeyboardInterrupt):
        return stop_reason(exc)
    if isinstance(exc, SystemExit):  # `vision_errors` turns SIGTERM into SystemExit(128 + signal)
        code = exc.code if isinstance(exc.code, int) else 0
        if code - 128 in {int(s) for s in signal.Signals}:
            return f"terminated ({signal.Signals(code - 128).name})"
        return f"exited ({exc.code})"
    return f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _run_bench(opts: BenchOptions, out: Path, bench: dict, say: Say, render_progress) -> None:  # noqa: ANN001
    """Fill `bench` as each part finishes, so that a stopped bench still holds what was done."""
    from ..vision.grading import grade_run, report_json, targets

    if opts.render_dir is None:
        render_dir = out / "render"
        say(f"rendering {opts.duration_s:g} s of {opts.scenario} (+{opts.warmup_s:g} s warm-up) into {render_dir}")
        result = render(RenderOptions(scenario=opts.scenario, out_dir=render_dir, duration_s=opts.duration_s,
                                      warmup_s=opts.warmup_s, step_s=opts.step_s, seed=opts.seed,
                                      oblique_tilt=opts.oblique_tilt, view_m=opts.view_m, faults=opts.faults),
                        render_progress)
        summary = result.summary
    else:
        render_dir = Path(opts.render_dir)
        summary = json.loads((render_dir / "render.json").read_text())
    bench["render"] = {k: summary[k] for k in ("frames", "fps", "first_frame_time_s", "calibration", "alignment",
                                               "truth", "faults", "render_fps") if k in summary}
    bench["render"]["dir"] = str(render_dir)
    reports, all_targets = {}, []
    bench["views"] = reports
    for view in summary["views"]:
        pipe_out = out / "pipeline" / view
        say(f"running the pipeline on the {view} view")
        wall = run_pipeline(render_dir, view, pipe_out, opts.interval_s)
        report = grade_run(render_dir, view, pipe_out)
        report["pipeline_wall_s"] = round(wall, 1)
        report["pipeline_fps"] = round(summary["frames"] / wall, 1) if wall else None
        (out / "grades").mkdir(exist_ok=True)
        (out / "grades" / f"{view}.json").write_text(report_json(report))
        reports[view] = report
        all_targets += targets(report)
    if opts.loop_duration_s > 0:
        from ..vision.grading import Target
        from .camera_loop import DELAY_TOLERANCE, CameraLoopOptions, run_camera_loop

        loop = run_camera_loop(CameraLoopOptions(out / "camera-loop", opts.scenario, opts.loop_controller,
                                                 opts.loop_duration_s, opts.step_s, opts.seed, opts.view_m), say)
        bench["camera_loop"] = loop
        all_targets.append(Target(f"camera in the loop: delay change ({loop['controller']}, "
                                  f"{loop['camera']['avg_delay_s']:.1f} s vs {loop['loop_detectors']['avg_delay_s']:.1f} s)",
                                  loop["delay_change"], f"|x| <= {DELAY_TOLERANCE}", loop["met"]))
    bench["targets"] = [t.as_dict() for t in all_targets]
