"""The `signalwise vision` commands. OpenCV is imported inside the commands, never at `--help`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exitcodes import BAD_INPUT, FAILED, INTERRUPTED
from ..outdirs import why_not_fresh

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
    out: Annotated[Path, typer.Option("--out", help="directory to write into (itself, new or empty; created if missing)")],
    signals: Annotated[Path | None, typer.Option(
        "--signals", help="signal states, CSV time_s,device_id,state (a run's signal_states.csv works)")] = None,
    signals_offset: Annotated[float, typer.Option(
        "--signals-offset", help="seconds on the signals file's clock at the video's first frame")] = 0.0,
    fps: Annotated[float | None, typer.Option("--fps", help="frames per second when the container has none")] = None,
    fps_override: Annotated[bool, typer.Option(
        "--fps-override", help="use --fps even though the container states another rate (speeds and red-light "
                               "times scale with it)")] = False,
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
    db: Annotated[str | None, typer.Option(
        "--db", help="also write the violations (with their evidence paths) into this database URL, as the API's "
                     "streams do ('default' = SIGNALWISE_DATABASE_URL or the embedded SQLite signalwise.db)")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="the wall-clock instant of the first frame, ISO 8601 (e.g. 2026-05-04T07:30:00+02:00; no "
                        "offset = local time): stamps the stored violations (--db) and events.csv [default: with "
                        "--db, when the run starts; events.csv on the signals file's clock]")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="with --db: remove the violations stored earlier from this video (same camera) and store "
                          "this run's in their place (without it a video already stored is refused)")] = False,
    accept_suspect_calibration: Annotated[bool, typer.Option(
        "--accept-suspect-calibration", help="judge red light and speeding even when the run's own checks say the "
                                             "calibration (or fps) is wrong; with --db they are stored marked "
                                             "(judged_with.calibration_suspect: the checks' reasons)")] = False,
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
    if replace and db is None:
        raise _fail("--replace replaces violations stored with --db; give --db too")
    start_wall = _start_instant(start) if start is not None else None
    why = why_not_fresh(out, "a vision run")  # an earlier run's evidence images would outlive its rows
    if why:
        raise _fail(f"--out {out}: {why}")
    try:
        inputs = check_inputs(video, camera, signals, signals_offset, fps, interval, signal_model, fps_override)
        det = make_detector(detector, model=str(model) if model else None, classes=class_ids, camera=inputs.camera)
    except (InputError, OnnxModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    db_url = _db_url(db) if db is not None else None  # a bad SIGNALWISE_* setting: its own error line, exit 2
    writer = _violation_writer(db_url, replace) if db_url is not None else None
    footage, replace_earlier = (_footage_once(writer, video, inputs.camera.camera_id, replace, db_url,
                                              inputs.provenance["camera_file"]["sha256"])
                                if writer is not None else (None, None))
    if db is not None and start_wall is None:
        import datetime as dt

        start_wall = dt.datetime.now().astimezone()
        inputs.notes.append(f"no --start: the stored violations are stamped from this run's start "
                            f"({start_wall.isoformat(timespec='seconds')}) plus their video time, not the camera's "
                            "clock (summary.json: first_frame_at_assumed)")
    for note in inputs.notes:
        typer.echo(f"note: {note}", err=True)
    from ..termination import sigterm_as_interrupt

    try:  # `docker stop`, systemd and `timeout` stop a stream's run (it has no end) as Ctrl-C does: files flushed
        with sigterm_as_interrupt():
            summary = _run_with_progress(inputs, out, det, interval, signals_offset, max_frames, writer, start_wall,
                                         start is None, footage, accept_suspect_calibration, replace_earlier)
    finally:
        if writer is not None:
            writer.flush()
            writer.close()
    v = summary["violations"]
    for line in _summary_lines(summary, out):
        typer.echo(line)
    if summary["status"] != "complete":
        typer.echo(f"status: {summary['status']}", err=True)
    if summary["violations_withheld"] is not None:
        n = sum(summary["violations_withheld"].values())
        typer.secho(f"error: the calibration is suspect ({'; '.join(summary['calibration_suspect'])}): red light "
                    f"and speeding not judged, {n} violation(s) withheld (not in violations.csv"
                    f"{', not stored' if writer is not None else ''}); fix the camera file, or give "
                    "--accept-suspect-calibration to judge with it anyway", fg="red", err=True)
        raise typer.Exit(FAILED)
    if summary["not_stored"]:
        typer.secho(f"error: --db {_shown(db_url)}: {summary['not_stored']}", fg="red", err=True)
        raise typer.Exit(FAILED)
    if writer is not None:
        st = writer.stats()
        lost = v["red_light"] + v["speeding"] - st["written"] - st["already_stored"]
        racing = st["already_stored"] - st["held_unsourced"]
        if racing:  # another run of this video storing at the same time: the store kept one of each
            typer.echo(f"{racing} violation(s) already stored from this video: not stored again")
        if st["replaced_unsourced"]:
            typer.echo(f"note: --replace: {st['replaced_unsourced']} violation(s) stored with no recorded source (by a "
                       "release before schema 0018) at this run's camera, kinds, tracks and instants were removed, "
                       "with their counts; this run's are stored in their place", err=True)
        if lost:
            typer.secho(f"error: {lost} violation(s) not stored in {_shown(db_url)}: {st['last_error']}", fg="red",
                        err=True)
            raise typer.Exit(1)
        typer.echo(f"{st['written']} violation(s) stored in {_shown(db_url)}")
        if st["held_unsourced"]:
            raise _fail(_unsourced_refusal(db_url, inputs.camera.camera_id, st["already_stored"],
                                           st["held_unsourced"]))
    if summary["status"].startswith(("interrupted", "terminated")):
        raise typer.Exit(INTERRUPTED)  # as every other command stopped by Ctrl-C or SIGTERM


def _summary_lines(summary: dict, out: Path) -> list[str]:
    """What the run found, and plainly what it could not look for: a kind not judged is said, never a bare 0, and
    tracks measured faster than any vehicle (a wrong fps or calibration) are flagged."""
    from .violations import KINDS, implausible_line, not_judged_lines

    unjudged = summary["not_judged"]
    found = {"red_light": "red-light", "speeding": "speeding"}
    judged = [f"{summary['violations'][k]} {found[k]}" for k in KINDS if k not in unjudged]
    head = (f"{summary['frames']} frames ({summary['video_s']:.1f} s of video) in {summary['wall_s']:.1f} s: "
            f"{summary['tracks']} tracks, {summary['crossings']} stop-line crossings")
    if judged:
        head += ", " + " and ".join(judged) + " violations"
    lines = [f"{head} -> {out}", *not_judged_lines(unjudged)]
    if summary["crossings_not_judged"] and "red_light" not in unjudged:
        first, last = summary["signals_cover_s"]
        lines.append(f"red light: {summary['crossings_not_judged']} of {summary['crossings']} crossings not judged "
                     f"(outside the signal log's coverage, {first:.1f}-{last:.1f} s on the video's clock)")
    if summary.get("crossings_front_unseen") and "red_light" not in unjudged:
        lines.append(f"red light: {summary['crossings_front_unseen']} of {summary['crossings']} crossings not judged "
                     "(the vehicle's front was past the stop line when its track began)")
    fast = summary["implausible_speeds"]
    if fast["tracks"]:
        lines.append(implausible_line(fast["tracks"], fast["limit_mps"], fast["fastest_mps"]))
    typical = summary["typical_speed"]
    if typical["implausible"]:
        lines.append(f"85th-percentile speed {typical['p85_mps']:.1f} m/s over {typical['tracks']} moving tracks is "
                     f"more than twice the speed limit ({typical['limit_mps']:g} m/s): check the calibration (road "
                     "points in feet?) and the fps; every distance and speed the red-light and speeding calls "
                     "rest on is suspect")
    if summary["suspect_calibration_accepted"]:
        lines.append("calibration suspect, accepted (--accept-suspect-calibration): the violations were judged with "
                     "it anyway")
    lines.append(f"calibration: {summary['calibration_pairs']} surveyed pairs, RMS error "
                 f"{summary['calibration_rms_error_m']:.3f} m")
    return lines


def _start_instant(text: str):
    import datetime as dt

    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--start {text!r}: not an ISO 8601 instant (e.g. 2026-05-04T07:30:00+02:00)") from None
    return at if at.tzinfo is not None else at.astimezone()


def _db_url(db: str) -> str:
    """'default' (or empty) = the configured database (SIGNALWISE_DATABASE_URL or signalwise.db), else the URL;
    a bad SIGNALWISE_* setting is one error line, exit 2, as for every command (`settings_or_exit`)."""
    from ..store.cli_engine import settings_or_exit

    return settings_or_exit().database_url if db in ("", "default") else db


def _shown(url: str) -> str:
    """The database URL without its secrets (`core.redaction.shown_url`)."""
    from ..core.redaction import shown_url

    return shown_url(url)


def _violation_writer(url: str, replace: bool = False):
    """The store's batching writer on `url`, migrated; `replace`: rows stored with no source that this run's
    violations match are replaced. One error line when it cannot be opened: exit 2 for a URL that names no
    database, exit 1 for one that cannot be reached or opened (`exitcodes`, as every `--db`)."""
    from ..store import get_engine
    from ..store.cli_engine import first_line
    from ..store.engine import DatabaseURLError
    from ..store.violations import ViolationWriter

    try:
        engine = get_engine(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL, a server away, a file that is not a database
        typer.secho(f"error: --db {_shown(url)}: cannot open it ({first_line(exc)})", fg="red", err=True)
        raise typer.Exit(BAD_INPUT if isinstance(exc, DatabaseURLError) else FAILED) from None
    return ViolationWriter(engine, replace_unsourced=replace)


def _unsourced_refusal(db_url: str, camera_id: str, stored: int, unsourced: int) -> str:
    """Why violations of this run were not stored: rows stored before schema 0018 (no source) hold them."""
    return (f"--db {_shown(db_url)}: {stored} violation(s) of camera {camera_id} from this video are stored already, "
            f"{unsourced} of them rows with no recorded source (stored by a release before schema 0018, found by "
            "camera, kind, track and instant): not stored again; --replace stores this run's in their place, or "
            "leave out --db")


def _footage_once(writer, video: str, camera_id: str, replace: bool, db_url: str, camera_sha256: str | None = None):
    """The video's identity in the store (`video_run.video_footage`), refused when violations of this camera from
    it are stored already (a second run would store each twice), unless `replace`: then with the function that
    removes them, called once this run's violations are to be stored in their place (a run whose violations are
    withheld leaves them)."""
    from ..store.violations import remove_source, stored_from
    from .video_run import video_footage

    footage = video_footage(video)
    stored = stored_from(writer.engine, camera_id, footage.source)
    if stored and not replace:
        writer.close()
        raise _fail(f"--db {_shown(db_url)}: {stored} violation(s) of camera {camera_id} from this video "
                    f"({footage.name}, {footage.source[:23]}...) are stored already; --replace stores this run's in "
                    "their place, or leave out --db")
    if not stored:
        return footage, None
    for line in _replaced_camera_files(writer.engine, camera_id, footage.source, camera_sha256):
        typer.echo(f"note: --replace: {line}", err=True)

    def remove_earlier() -> None:
        removed = remove_source(writer.engine, camera_id, footage.source)
        typer.echo(f"note: --replace: the {removed} violation(s) stored earlier from this video were removed, with "
                   "their counts (their evidence images stay where that run wrote them)", err=True)

    return footage, remove_earlier


def _replaced_camera_files(engine, camera_id: str, source: str, camera_sha256: str | None) -> list[str]:
    """What `--replace` says of the camera files the violations it removes were judged with: each run's
    summary.json (beside its evidence/ folder) records its camera file's SHA-256."""
    import json

    from ..store.violations import evidence_paths_from

    runs = {Path(p).parent.parent for p in evidence_paths_from(engine, camera_id, source)}
    earlier, unknown = {}, 0
    for run in sorted(runs):
        try:
            cam = json.loads((run / "summary.json").read_text())["camera_file"]
            earlier[cam["sha256"]] = cam["path"]
        except (OSError, ValueError, KeyError, TypeError):
            unknown += 1
    lines = [f"the violations removed were judged with another camera file, {path} (sha256 {sha[:12]}...); this "
             f"run's has sha256 {(camera_sha256 or '')[:12]}..." for sha, path in earlier.items() if sha != camera_sha256]
    if unknown or not runs:
        lines.append("the camera file the violations removed were judged with is not known (their run's summary.json "
                     "is gone or does not record it)")
    return lines


def _run_with_progress(inputs, out, det, interval, offset, max_frames, store=None, start_wall=None,
                       start_assumed=False, footage=None, accept_suspect=False, before_store=None) -> dict:
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .video_run import run_video

    if not sys.stderr.isatty():
        return run_video(inputs, out, detector=det, interval_s=interval, signals_offset_s=offset,
                         max_frames=max_frames, store=store, start_wall=start_wall,
                         start_assumed=start_assumed, footage=footage, accept_suspect=accept_suspect,
                         before_store=before_store)
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
                         progress=progress, max_frames=max_frames, store=store, start_wall=start_wall,
                         start_assumed=start_assumed, footage=footage, accept_suspect=accept_suspect,
                         before_store=before_store)


def register(app: typer.Typer) -> None:
    app.add_typer(vision_app, name="vision")
