"""`signalwise vision render | grade | bench`: video from the simulation, and the pipeline graded on it.

These join the `vision` command group (`signalwise vision run` is the
pipeline's own command); they live in runtime because the bench drives the
simulation, the pipeline and the camera-in-the-loop run together.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated

import typer

from ..exitcodes import BAD_INPUT, FAILED
from ..outdirs import why_unwritable


def _fail(message: str, code: int = BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def _check_out(out: Path) -> None:
    """An --out that cannot be made is refused before anything starts, as run and compare refuse it (exit 2)."""
    why = why_unwritable(out)
    if why:
        raise ValueError(f"--out {out}: {why}")


def vision_errors(fn):
    """One `error:` line for what users cause (a missing Xvfb, a bad directory, a failed pipeline run)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal

        # a `kill` unwinds like Ctrl-C, so sumo-gui and Xvfb are stopped with us, never left behind
        signal.signal(signal.SIGTERM, _exit_on_terminate)
        from ..sim.backend import SimulationError
        from ..sim.camera import DisplayUnavailable, RenderError
        from ..sim.scenario import ScenarioError
        from ..vision.grading import GradingInputError
        from .vision_bench import PipelineFailed

        try:
            return fn(*args, **kwargs)
        except (ScenarioError, SimulationError, DisplayUnavailable, RenderError, GradingInputError,
                FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        except PipelineFailed as exc:
            _fail(str(exc), FAILED)
        except KeyboardInterrupt:
            _fail("interrupted", code=130)

    return wrapper


def _exit_on_terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _progress(label: str):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=True)


def _fault_plan(faults: bool, red_light_every: float, speeder_every: float):
    from ..sim.camera import FaultPlan

    if not faults:
        return None
    if red_light_every <= 0 or speeder_every <= 0:
        raise ValueError("--red-light-every and --speeder-every take a positive number of seconds")
    return FaultPlan(red_light_every_s=red_light_every, speeder_every_s=speeder_every)


def render_command(
    out: Annotated[Path, typer.Option(help="directory to write (new or empty)")],
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="single | corridor | grid | resco:NAME")] = "single",
    duration: Annotated[float, typer.Option(help="recorded simulated seconds")] = 60.0,
    warmup: Annotated[float, typer.Option(help="simulated seconds before the first frame")] = 60.0,
    seed: Annotated[int, typer.Option(help="SUMO's random seed")] = 1,
    step: Annotated[float, typer.Option(help="simulation step = frame period, seconds")] = 0.1,
    tls: Annotated[str | None, typer.Option(help="the traffic light to watch [default: the network's first]",
                                            show_default=False)] = None,
    size: Annotated[int, typer.Option(help="frame width and height, pixels")] = 800,
    view_m: Annotated[float, typer.Option(help="ground width the frame covers, metres")] = 200.0,
    oblique_tilt: Annotated[float, typer.Option(help="oblique view: how much narrower its far edge is "
                                                     "(0 = no oblique view)")] = 0.35,
    faults: Annotated[bool, typer.Option("--faults/--no-faults", help="inject red-light runners and speeders")] = True,
    red_light_every: Annotated[float, typer.Option(help="seconds between red-light runners")] = 20.0,
    speeder_every: Annotated[float, typer.Option(help="seconds between speeders")] = 15.0,
) -> None:
    """Render a scenario to video with exact per-frame truth.

    sumo-gui draws each step under Xvfb; the truth (every vehicle's position,
    pixel box and speed, stop-line crossings, red-light and speeding events)
    comes from SUMO itself, and each view gets a camera file for
    `signalwise vision run`.
    """
    _render(out, scenario, duration, warmup, seed, step, tls, size, view_m, oblique_tilt, faults, red_light_every,
            speeder_every)


@vision_errors
def _render(out, scenario, duration, warmup, seed, step, tls, size, view_m, oblique_tilt, faults, red_light_every,
            speeder_every) -> None:
    _check_out(out)
    from ..sim.camera import RenderOptions, render
    from ..sim.scenario import load

    if duration <= 0 or step <= 0 or warmup < 0 or size < 64 or view_m <= 0:
        raise ValueError("--duration, --step and --view-m must be positive, --warmup not negative, --size >= 64")
    if duration < step:  # not one frame: the render would claim success with nothing in it
        raise ValueError(f"--duration {duration:g} s is shorter than one --step ({step:g} s): no frame to film")
    if not 0 <= oblique_tilt < 0.9:
        raise ValueError("--oblique-tilt must be in [0, 0.9)")
    load(scenario, takes_own_network=False)  # an unknown scenario fails before sumo-gui starts
    opts = RenderOptions(scenario=scenario, out_dir=out, duration_s=duration, warmup_s=warmup, step_s=step,
                         seed=seed, tls_id=tls, frame_px=(size, size), view_m=view_m,
                         oblique_tilt=oblique_tilt or None, faults=_fault_plan(faults, red_light_every, speeder_every))
    n = int(round(duration / step))
    with _progress("render") as bar:
        task = bar.add_task("render", total=n)
        result = render(opts, lambda done, total: bar.update(task, completed=done))
    s = result.summary
    typer.echo(f"rendered {s['frames']} frames ({s['fps']:g} fps) of {s['scenario']} at {s['render_fps']} frames/s "
               f"into {out}")
    typer.echo(f"  calibration: markers within {s['calibration']['marker_error_px']} px; alignment: vehicles hold "
               f"{s['alignment']['colour_share_in_own_box']:.0%} of their colour in their own box "
               f"({s['alignment']['colour_share_one_frame_earlier']:.0%} one frame off)")
    typer.echo(_truth_line(out, s))
    for name, v in s["views"].items():
        typer.echo(f"  {name}: {out / v['video']}  camera {out / v['camera']}")
    typer.echo(f"  run the pipeline: signalwise vision run --video {out / 'topdown/video.avi'} --camera "
               f"{out / 'topdown/camera.yaml'} --signals {out / 'signal_states.csv'} --signals-offset "
               f"{s['first_frame_time_s']:g} --fps {s['fps']:g} --out OUT")


def _truth_line(out: Path, s: dict) -> str:
    """The render's event totals as the grader will count them: the events in the clip (`clip_events`).

    The truth file also keeps events that overlap the clip too briefly to
    establish, and red-light crossings in the step before the first frame;
    those are said apart, so this line and `vision grade`'s true events agree.
    """
    from ..vision.grading.files import read_truth_events
    from ..vision.grading.violations import SUSTAIN_S, clip_event_counts

    events = read_truth_events(out, float(s["first_frame_time_s"]))
    n = clip_event_counts(events, float(s["fps"]), s["frames"] / float(s["fps"]),
                          float(s.get("sustain_s", SUSTAIN_S)))
    brief = sum(c["seen_too_briefly"] for c in n.values())
    return (f"  truth: {s['truth']['crossings']} stop-line crossings; in the clip {n['red_light']['events']} "
            f"red-light ({n['red_light']['injected_events']} injected), {n['speeding']['events']} speeding "
            f"({n['speeding']['injected_events']} injected)"
            + (f"; {brief} more seen too briefly to grade" if brief else ""))


def grade_command(
    render_dir: Annotated[Path, typer.Option("--render", help="a `signalwise vision render` directory")],
    pipeline: Annotated[Path, typer.Option(help="the --out directory of `signalwise vision run` on that video")],
    view: Annotated[str, typer.Option(help="which rendered view the pipeline ran on")] = "topdown",
    json_out: Annotated[Path | None, typer.Option("--json", help="also write every figure to this file",
                                                  show_default=False)] = None,
) -> None:
    """Grade a pipeline run on a rendered video against its truth.

    Prints every figure (detection, tracking, speed, counts, violations) against its target. Exits 1 when any
    target is MISSED (a goal too; a target with nothing to grade, n/a, is not missed), 0 when none is.
    """
    missed = _grade(render_dir, pipeline, view, json_out)
    if missed:
        typer.echo(f"{missed} target(s) MISSED")
        raise typer.Exit(FAILED)


@vision_errors
def _grade(render_dir, pipeline, view, json_out) -> int:
    """Grades and prints; returns how many targets were MISSED (CI reads the exit status)."""
    from ..vision.grading import grade_run, report_json, targets

    report = grade_run(render_dir, view, pipeline)
    if json_out is not None:
        if not json_out.parent.is_dir():
            raise ValueError(f"--json {json_out}: no directory {json_out.parent}")
        json_out.write_text(report_json(report))
    print_report(report)
    items = targets(report)
    print_targets(items)
    for warning in _grading_warnings(render_dir, pipeline):
        typer.secho(f"warning: {warning}", fg="yellow", err=True)
    return sum(t.status == "MISSED" for t in items)


def _grading_warnings(render_dir: Path, pipeline: Path) -> list[str]:
    """What makes a grade not mean what it says: a pipeline run that did not complete, or one over another
    number of frames than the render filmed (another render's video)."""
    import json

    def summary(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    ran, filmed = summary(pipeline / "summary.json"), summary(render_dir / "render.json")
    out = []
    if ran.get("status", "complete") != "complete":
        out.append(f"{pipeline} did not run to the end ({ran['status']}): its figures are over what it processed")
    if ran and "anchor" not in ran:
        out.append(f"{pipeline}/summary.json does not say the camera's anchor (an older run): its tracks were "
                   "graded against vehicle centres")
    if ran.get("frames") and filmed.get("frames") and ran["frames"] != filmed["frames"]:
        out.append(f"{pipeline} processed {ran['frames']} frames, {render_dir} filmed {filmed['frames']}: another "
                   "video, or part of this one")
    return out


def bench_command(
    out: Annotated[Path, typer.Option(help="directory for the render, the pipeline's outputs and bench.json")],
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="the scenario to render")] = "single",
    duration: Annotated[float, typer.Option(help="recorded simulated seconds")] = 500.0,
    seed: Annotated[int, typer.Option(help="SUMO's random seed")] = 1,
    step: Annotated[float, typer.Option(help="simulation step = frame period, seconds")] = 0.2,
    view_m: Annotated[float, typer.Option(help="ground width the 800-pixel frame covers, metres")] = 133.0,
    render_dir: Annotated[Path | None, typer.Option("--render", show_default=False,
                                                    help="grade on this existing render instead of rendering")] = None,
    red_light_every: Annotated[float, typer.Option(help="seconds between red-light runners")] = 6.0,
    speeder_every: Annotated[float, typer.Option(help="seconds between speeders")] = 4.0,
    loop_duration: Annotated[float, typer.Option(help="simulated seconds of each camera-in-the-loop run "
                                                      "(0: leave the comparison out)")] = 600.0,
    loop_controller: Annotated[str, typer.Option(help="the controller fed by loops, then by the camera")] = "actuated",
) -> None:
    """The vision benchmark: render, run the pipeline on each view, grade it.

    Runs `signalwise vision run` on the top-down and oblique videos and prints
    every figure against its target; OUT/bench.json keeps them all.
    """
    _bench(out, scenario, duration, seed, step, view_m, render_dir, red_light_every, speeder_every, loop_duration,
           loop_controller)


@vision_errors
def _bench(out, scenario, duration, seed, step, view_m, render_dir, red_light_every, speeder_every, loop_duration,
           loop_controller) -> None:
    _check_out(out)
    from ..sim.scenario import load
    from .vision_bench import BenchOptions, run_bench

    if render_dir is None:
        load(scenario, takes_own_network=False)
    elif not (render_dir / "render.json").is_file():  # refused before OUT is made
        raise ValueError(f"--render {render_dir}: no render.json (not a `signalwise vision render` directory)")
    else:  # as `vision grade` refuses it: an interrupted render has no views to grade
        import json

        status = json.loads((render_dir / "render.json").read_text()).get("status", "complete")
        if status != "complete":
            raise ValueError(f"--render {render_dir}: the render did not complete ({status})")
    if duration <= 0 or step <= 0 or view_m <= 0 or loop_duration < 0:
        raise ValueError("--duration, --step and --view-m must be positive, --loop-duration not negative")
    opts = BenchOptions(out_dir=out, scenario=scenario, duration_s=duration, seed=seed, step_s=step, view_m=view_m,
                        render_dir=render_dir, faults=_fault_plan(True, red_light_every, speeder_every),
                        loop_duration_s=loop_duration, loop_controller=loop_controller)
    with _progress("render") as bar:
        task = bar.add_task("render", total=int(round(duration / opts.step_s)))
        bench = run_bench(opts, say=lambda m: typer.echo(m, err=True),
                          render_progress=lambda done, total: bar.update(task, completed=done, total=total))
    for report in bench["views"].values():
        print_report(report)
    if "camera_loop" in bench:
        loop = bench["camera_loop"]
        typer.echo(f"\ncamera in the loop ({loop['controller']} on {loop['scenario']}, {loop['duration_s']:g} s): "
                   f"average delay {loop['camera']['avg_delay_s']:.1f} s fed by the camera, "
                   f"{loop['loop_detectors']['avg_delay_s']:.1f} s fed by loops ({loop['delay_change']:+.1%})")
    from ..vision.grading import Target

    print_targets([Target.from_dict(t) for t in bench["targets"]])
    typer.echo(f"bench.json: {out / 'bench.json'}")


def loop_command(
    out: Annotated[Path, typer.Option(help="directory for both runs and camera_loop.json")],
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="the scenario to run")] = "single",
    controller: Annotated[str, typer.Option(help="the controller fed by loops, then by the camera")] = "actuated",
    duration: Annotated[float, typer.Option(help="simulated seconds of each run")] = 600.0,
    step: Annotated[float, typer.Option(help="simulation step = frame period, seconds")] = 0.2,
    seed: Annotated[int, typer.Option(help="SUMO's random seed")] = 1,
    view_m: Annotated[float, typer.Option(help="ground width the 800-pixel frame covers, metres")] = 133.0,
    zone_m: Annotated[float, typer.Option(help="how far upstream of its stop line each presence zone reaches, "
                                               "metres")] = 30.0,
) -> None:
    """The camera in the loop: one controller fed by loops, then by the camera.

    The second run films the signal with sumo-gui every step and feeds the
    controller only what the vision pipeline makes of the frames; prints both
    average delays and the change.
    """
    _loop(out, scenario, controller, duration, step, seed, view_m, zone_m)


@vision_errors
def _loop(out, scenario, controller, duration, step, seed, view_m, zone_m) -> None:
    _check_out(out)
    from ..sim.scenario import load
    from .camera_loop import CameraLoopOptions, run_camera_loop

    load(scenario, takes_own_network=False)
    if duration <= 0 or step <= 0 or zone_m < 5 or not view_m > 0:
        raise ValueError("--duration, --step and --view-m must be positive, --zone-m at least 5")
    loop = run_camera_loop(CameraLoopOptions(out, scenario, controller, duration, step, seed, view_m, zone_m),
                           say=lambda m: typer.echo(m, err=True))
    typer.echo(f"{controller} on {scenario}, {duration:g} s, step {step:g} s: average delay "
               f"{loop['loop_detectors']['avg_delay_s']:.1f} s fed by loops, {loop['camera']['avg_delay_s']:.1f} s "
               f"fed by the camera ({loop['delay_change']:+.1%}; target within 10 %: "
               f"{'met' if loop['met'] else 'MISSED'})")
    typer.echo(f"camera_loop.json: {out / 'camera_loop.json'}")


def print_report(report: dict) -> None:
    typer.echo(f"\n{report['view']}: {report['frames']} frames ({report['duration_s']:g} s)")
    det = report.get("detection")
    if det is not None:
        typer.echo(f"  detection   recall moving {det['recall_moving']:.3f} ({det['truth_moving']} boxes), stopped "
                   f"{det['recall_stopped']:.3f} ({det['truth_stopped']}), precision {det['precision']:.3f} "
                   f"(IoU >= {det['iou_min']})")
    else:
        typer.echo("  detection   not graded: the pipeline wrote no detections.csv")
    tr = report["tracking"]
    typer.echo(f"  tracking    MOTA {tr['mota']:.3f}  IDF1 {tr['idf1']:.3f}  HOTA {tr['hota']:.3f} "
               f"(DetA {tr['deta']:.3f}, AssA {tr['assa']:.3f}), {tr['id_switches']} ID switches, within "
               f"{tr['match_m']:g} m" + (f" of each vehicle's {_ANCHOR_POINT[report['anchor']]} (anchor "
                                         f"{report['anchor']})" if report.get("anchor") in _ANCHOR_POINT else ""))
    sp = report["speed"]
    typer.echo(f"  speed       RMSE {sp['rmse_mps']:.2f} m/s, bias {sp['bias_mps']:+.2f} m/s over {sp['pairs']} "
               f"matched track points ({sp['coverage']:.0%} had a speed)")
    counts = ", ".join(f"{a} {c['counted']}/{c['truth']}" for a, c in report["counts"].items())
    typer.echo(f"  counts      {counts}")
    for kind, g in report["violations"].items():
        unscored = g.get("unscored_reports", 0)
        typer.echo(f"  {kind:<11} precision {_ratio(g['precision'])} recall {_ratio(g['recall'])} ({g['reported']} reported"
                   + (f", {unscored} of an event the clip shows too briefly, unscored" if unscored else "")
                   + f", {g['truth_events']} true events of which {g['injected_events']} injected)")


#: the point of a true vehicle a track is matched to, per anchor (`grading.anchor`)
_ANCHOR_POINT = {"center": "centre", "front": "front bumper", "bottom": "box bottom centre"}


def _ratio(value: float | None) -> str:
    """A precision or recall, or n/a where nothing was reported or nothing happened (as the targets say it)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def print_targets(items) -> None:
    typer.echo("\ntargets")
    for t in items:
        typer.echo("  " + t.line())


def register(app: typer.Typer) -> None:
    """Add render, grade and bench to the `vision` group (created here when the pipeline's commands are absent)."""
    group = next((g.typer_instance for g in app.registered_groups if g.name == "vision"), None)
    if group is None:
        group = typer.Typer(help="Cameras: run the vision pipeline, render the simulation to video, grade on truth.",
                            no_args_is_help=True)
        app.add_typer(group, name="vision")
    group.command("render")(render_command)
    group.command("grade")(grade_command)
    group.command("bench")(bench_command)
    group.command("loop")(loop_command)
