"""The `signalwise vision` commands. OpenCV is imported inside the commands, never at `--help`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

vision_app = typer.Typer(name="vision", no_args_is_help=True,
                         help="Cameras as detectors: run the vision pipeline over a video (docs/vision.md).")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(2)


@vision_app.command("run")
def run_command(
    video: Annotated[str, typer.Option("--video", help="a video file, or a stream URL (rtsp://, http://)")],
    camera: Annotated[Path, typer.Option("--camera", help="the camera file (YAML): calibration, stop lines, "
                                                          "zones, speed limit")],
    out: Annotated[Path, typer.Option("--out", help="directory to write into (itself; created if missing)")],
    signals: Annotated[Path | None, typer.Option(
        "--signals", help="signal states, CSV time_s,device_id,state (a run's signal_states.csv works)")] = None,
    signals_offset: Annotated[float, typer.Option(
        "--signals-offset", help="seconds on the signals file's clock at the video's first frame")] = 0.0,
    fps: Annotated[float | None, typer.Option("--fps", help="frames per second when the container has none")] = None,
    interval: Annotated[float, typer.Option("--interval", help="counting interval, seconds")] = 60.0,
    detector: Annotated[str, typer.Option("--detector", help="blobs (moving and standing), moving-blobs, or onnx "
                                                             "(with --model)")] = "blobs",
    model: Annotated[Path | None, typer.Option("--model", help="a YOLOv8-format ONNX model (--detector onnx)")] = None,
    classes: Annotated[str | None, typer.Option(
        "--classes", help="class ids the ONNX model's detections are kept for, comma-separated (COCO vehicles: "
                          "2,3,5,7); default all")] = None,
    signal_model: Annotated[Path | None, typer.Option(
        "--signal-model", help="a run's signal_model.json: zones and stop lines must name approaches the "
                               "intersection has, and links its state string holds")] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1,
                                                   help="stop after this many frames (a stream never ends)")] = None,
) -> None:
    """Detect, track, count and find violations in a video; write tracks, crossings, violations and counts."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        raise _fail("the vision pipeline needs OpenCV: pip install 'signalwise[vision]'") from None
    from .detector import make_detector
    from .onnx_detector import OnnxModelError
    from .video_run import InputError, check_inputs

    class_ids = None
    if classes:
        try:
            class_ids = tuple(int(c) for c in classes.split(",") if c.strip())
        except ValueError:
            raise _fail(f"--classes {classes!r}: give class ids as integers, e.g. 2,3,5,7") from None
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out}: exists and is not a directory")
    try:
        inputs = check_inputs(video, camera, signals, signals_offset, fps, interval, signal_model)
        det = make_detector(detector, model=str(model) if model else None, classes=class_ids, camera=inputs.camera)
    except (InputError, OnnxModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for note in inputs.notes:
        typer.echo(f"note: {note}", err=True)
    summary = _run_with_progress(inputs, out, det, interval, signals_offset, max_frames)
    v = summary["violations"]
    typer.echo(f"{summary['frames']} frames ({summary['video_s']:.1f} s of video) in {summary['wall_s']:.1f} s: "
               f"{summary['tracks']} tracks, {summary['crossings']} stop-line crossings, {v['red_light']} red-light "
               f"and {v['speeding']} speeding violations -> {out}")
    if summary["status"] != "complete":
        typer.echo(f"status: {summary['status']}", err=True)


def _run_with_progress(inputs, out, det, interval, offset, max_frames) -> dict:
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .video_run import run_video

    if not sys.stderr.isatty():
        return run_video(inputs, out, detector=det, interval_s=interval, signals_offset_s=offset,
                         max_frames=max_frames)
    total = inputs.frame_count if not inputs.live else None
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn()]
    with Progress(*columns, transient=True, console=None) as bar:
        task = bar.add_task(f"{inputs.camera.camera_id}", total=total, rate="")
        import time

        t0 = time.perf_counter()

        def progress(done: int, _n, _t) -> None:
            if done % 10 == 0 or done == total:
                rate = done / max(time.perf_counter() - t0, 1e-6)
                bar.update(task, completed=done, rate=f"{rate:.1f} frames/s")

        return run_video(inputs, out, detector=det, interval_s=interval, signals_offset_s=offset,
                         progress=progress, max_frames=max_frames)


def register(app: typer.Typer) -> None:
    app.add_typer(vision_app, name="vision")
