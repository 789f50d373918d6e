"""`signalwise vision run`: one video (file or stream URL) through one camera's pipeline, into CSV files.

Every input is checked before anything is written (the camera file, the
signal file and its device, the video opening and its first frame against the
camera's zones), so bad input leaves no half-written directory. Then frames
are decoded by a reader thread (a file is read whole, no frame dropped; a
live stream hands over its newest frame, skipping and counting the ones
processing could not keep up with) and each goes through `Pipeline.process`.
Rows are written as they come (with a store, violations also go into the
database); `summary.json` is written last.

Files (headers exactly as docs/vision.md lists them): tracks.csv,
crossings.csv (`joined`: true for a crossing on the path between a lost track
and the one continuing it, which calls no red light), violations.csv, counts.csv, detections.csv, events.csv (the
zones' 82/81 in the hi-res format, times on the signals' clock), evidence/,
summary.json.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.eventlog import COLUMNS as EVENT_COLUMNS
from ..core.eventlog import format_timestamp
from .camera import CameraConfig, CameraFileError, keys_like_ours, load_camera
from .signals import SignalTimeline
from .violations import Footage, not_judged

HEADERS = {
    "tracks.csv": ("frame", "time_s", "track_id", "x_px", "y_px", "x_m", "y_m", "speed_mps"),
    "crossings.csv": ("time_s", "track_id", "stop_line", "approach", "signal_state", "joined"),
    "violations.csv": ("time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path",
                       "speed_uncertainty_mps", "span_start_s", "span_end_s", "span_m"),
    "counts.csv": ("interval_start_s", "approach", "count"),
    "detections.csv": ("frame", "time_s", "x1", "y1", "x2", "y2", "score"),
    "events.csv": EVENT_COLUMNS,
}

Progress = Callable[[int, int | None, float], None]  # (frames done, frames in the file or None, video seconds)


class InputError(ValueError):
    """Bad input to `run_video`: one line naming what and where."""


@dataclass
class RunInputs:
    video: str
    camera: CameraConfig
    signals: SignalTimeline | None
    fps: float | None
    frame_count: int | None
    first_frame_hw: tuple[int, int]
    live: bool
    notes: list[str] = field(default_factory=list)
    #: what the run's violations were judged with: the camera file's and signal log's path and SHA-256
    provenance: dict = field(default_factory=dict)
    #: why the calibration is wrong by the checks made before the run (a surveyed point missing the fit)
    calibration_suspect: list[str] = field(default_factory=list)


def _num(x: float, digits: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fps_measured(first: tuple[int, float] | None, last: tuple[int, float] | None) -> float | None:
    """Frames per second a stream delivered from the first frame processed to the last ((index decoded, time)
    each: the frames decoded between them over the seconds between them); None without two frames apart."""
    if first is None or last is None or last[1] <= first[1]:
        return None
    return round((last[0] - first[0]) / (last[1] - first[1]), 2)


def _violation_row(v) -> tuple:
    """A violation as violations.csv writes it: a speeding call with the span its speed was measured over."""
    m = v.speed_span
    span = ("", "", "", "") if m is None else (_num(m.uncertainty_mps), _num(m.start_s), _num(m.end_s),
                                               _num(m.distance_m, 2))
    return (_num(v.time_s), v.track_id, v.kind, v.approach, _num(v.speed_mps), v.evidence_path, *span)


def check_inputs(video: str, camera_path: str | Path, signals_path: str | Path | None = None,
                 signals_offset_s: float = 0.0, fps: float | None = None, interval_s: float = 60.0,
                 signal_model: str | Path | None = None, fps_override: bool = False) -> RunInputs:
    """Everything that can be wrong before the first row is written; InputError says what.

    `fps_override`: `fps` may differ from the rate the container states (else refused: every speed and
    red-light time scales with it)."""
    from .signals import SignalFileError
    from .streams import VideoOpenError, is_raw_stream, is_url, probe_video, shown

    if not (math.isfinite(interval_s) and interval_s >= MIN_INTERVAL_S):
        # a count per interval shorter than this is a row per frame, or thousands of empty ones per frame
        raise InputError(f"--interval must be at least {MIN_INTERVAL_S:g} s, not {interval_s:g}")
    if not math.isfinite(signals_offset_s):
        raise InputError(f"--signals-offset must be a finite number of seconds, not {signals_offset_s:g}")
    if fps is not None and not (0 < fps <= 1000):
        raise InputError(f"--fps must be between 0 and 1000 frames per second, not {fps:g}")
    camera = check_camera_file(camera_path)
    signals = None
    if signals_path is not None:
        try:
            signals = SignalTimeline.from_csv(signals_path, signals_offset_s)
        except SignalFileError as exc:
            raise InputError(str(exc)) from None
        if camera.device_id not in signals.devices:
            raise InputError(f"{signals_path}: no signal states for device {camera.device_id!r} (the camera's "
                             f"device_id); it has {', '.join(signals.devices)}")
    n_links = signals.n_links(camera.device_id) if signals is not None else None
    approaches = None
    if signal_model is not None:
        approaches, model_links = _approaches_from_model(signal_model, camera.device_id)
        n_links = model_links if n_links is None else n_links
    try:
        camera.check_intersection(approaches, n_links, str(camera_path))
    except CameraFileError as exc:
        raise InputError(str(exc)) from None
    live = is_url(video)
    try:
        probe = probe_video(video)
    except VideoOpenError as exc:
        raise InputError(f"--video {shown(video)}: {exc}") from None
    src_fps, count = probe.fps, probe.frame_count
    notes = []
    if fps is None and src_fps is None and not live:
        what = ("a raw stream with no container (concatenated JPEGs, an H.264/H.265 bitstream): nothing in it "
                "states its frame rate" if is_raw_stream(video) else "the container states no frame rate")
        raise InputError(f"--video {shown(video)}: {what}; give it with --fps")
    if fps is not None and src_fps is not None and abs(fps - src_fps) > 1e-3:
        if not fps_override:
            raise InputError(f"--fps {fps:g}: the video states {src_fps:g} frames/s; every speed and red-light time "
                             f"scales with the frame rate (read at {fps:g}, a vehicle moves {fps / src_fps:.3g} times "
                             f"as fast and a crossing comes at {src_fps / fps:.3g} times its time): give "
                             "--fps-override too to use it anyway")
        notes.append(f"--fps {fps:g} overrides the container's {src_fps:g} frames/s (--fps-override)")
    h, w = probe.height_px, probe.width_px
    try:
        camera.check_frame(w, h, str(camera_path))
    except CameraFileError as exc:
        raise InputError(str(exc)) from None
    notes += keys_like_ours(camera)
    notes += calibration_notes(camera)
    rate = fps or src_fps
    if signals is not None and count and rate:
        outside = outside_coverage(signals, camera.device_id, (count - 1) / rate, signals_offset_s)
        if outside:
            notes.append(f"red light will not be judged: {outside}")
    provenance = {"camera_file": file_identity(camera_path),
                  "signals_file": None if signals_path is None else file_identity(signals_path),
                  "signalwise_version": _version()}
    return RunInputs(video, camera, signals, rate, count, (h, w), live, notes, provenance,
                     calibration_suspect(camera))


def file_identity(path: str | Path) -> dict:
    """A file a run was judged with: its path (absolute) and the SHA-256 of its bytes."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"path": str(Path(path).resolve()), "sha256": digest}


def _version() -> str:
    from .. import __version__

    return __version__


def calibration_suspect(camera: CameraConfig) -> list[str]:
    """Why the camera's calls cannot be trusted by the checks made before a run: its residual, and a zone seen at
    too few pixels per metre for vehicles to be told apart; [] when they pass."""
    out = []
    rms = camera.homography.rms_error_m
    if rms > CALIBRATION_RMS_WARN_M:
        out.append(f"the {len(camera.calibration)} surveyed points miss the fit by {rms:.2f} m RMS (above "
                   f"{CALIBRATION_RMS_WARN_M:g} m)")
    coarse = too_coarse(camera)
    if coarse:
        out.append(coarse)
    return out


#: the fewest image pixels per road metre, along the lane at a zone's centre, at which the detector separates
#: vehicles. Rendered clips of `single` (`vision render --size`, 60 s, 3 red-light runners and 3 speeders; see
#: docs/vision.md): top-down at 2.4 px/m found 40 % of the moving vehicles and none of the red-light runners, at
#: 2.8 px/m 93 % and all of them; an oblique view whose coarsest zone was 2.27 px/m called 1 runner of 3 and 2
#: false speeders, one at 2.84 px/m all runners and 1 false speeder
MIN_ZONE_PX_PER_M = 2.75


def too_coarse(camera: CameraConfig) -> str | None:
    """Why the camera sees a zone too coarsely for its calls (`MIN_ZONE_PX_PER_M`), or None."""
    from .lanes import road_arms

    arms = road_arms(camera)
    if not arms:
        return None
    coarsest = min(arms, key=lambda a: a.px_per_m)
    if coarsest.px_per_m >= MIN_ZONE_PX_PER_M:
        return None
    return (f"zone {coarsest.name} is seen at {coarsest.px_per_m:.2f} px per road metre, under the "
            f"{MIN_ZONE_PX_PER_M:g} the detector needs to tell vehicles apart (a vehicle merges with its neighbours "
            "and red-light runners are missed): a larger frame or a closer view, or road points not in metres")


#: a calibration whose surveyed points miss the fit by more than this (RMS, road metres) has a wrong point: a
#: mis-clicked pixel or a mistyped coordinate, which skews speeds by several per cent near it. A survey picked to
#: a pixel at 4-8 px/m misses by 0.1-0.3 m
CALIBRATION_RMS_WARN_M = 0.5
#: a homography fits 4 pairs exactly (RMS 0): a wrong one leaves no residual to see it by
MIN_CHECKED_PAIRS = 5


def calibration_notes(camera: CameraConfig) -> list[str]:
    """What a run says of the camera's calibration: a residual over `CALIBRATION_RMS_WARN_M`, or only 4 pairs."""
    rms, pairs = camera.homography.rms_error_m, len(camera.calibration)
    out = []
    if rms > CALIBRATION_RMS_WARN_M:
        out.append(f"calibration: the {pairs} surveyed points miss the fit by {rms:.2f} m RMS (above "
                   f"{CALIBRATION_RMS_WARN_M:g} m): a point is wrong (a mis-clicked pixel, a mistyped metre); "
                   "speeds near it are off")
    if pairs < MIN_CHECKED_PAIRS:
        out.append(f"calibration: {pairs} pairs, the least a homography takes, fit exactly whatever they are: a wrong "
                   f"point cannot show; survey {MIN_CHECKED_PAIRS} or more so the RMS error checks them")
    return out


def outside_coverage(signals: SignalTimeline, device_id: str, video_end_s: float, offset_s: float) -> str | None:
    """Why no crossing of a video 0..`video_end_s` can be judged, when the signal log covers none of it."""
    first, last = signals.coverage(device_id) or (math.inf, -math.inf)
    if first <= video_end_s and last >= 0:
        return None
    return (f"the signal log covers {first:.1f}-{last:.1f} s on the video's clock; the video is 0-{video_end_s:.1f} s; "
            f"check --signals-offset (now {offset_s:g})")


#: the traffic's speed is taken as the 85th percentile over moving tracks (of each track's median speed while
#: moving), the figure speed limits are set from: near the limit on a road whose calibration is right, where the
#: median falls to queue speeds at a busy signal
TYPICAL_SPEED_PERCENTILE = 85.0
#: when that is over this many times the speed limit, the calibration or fps is wrong (road points in feet read as
#: metres make every speed 3.28 times the real one)
TYPICAL_SPEED_WARN_FACTOR = 2.0
#: ... judged over at least this many moving tracks
TYPICAL_SPEED_MIN_TRACKS = 3


def typical_speed(pipe, limit_mps: float | None) -> dict:
    """The traffic's 85th-percentile speed against the limit: all traffic at twice the limit is a wrong
    calibration or frame rate, not a road of speeders."""
    p85, tracks = pipe.typical_speed_mps(TYPICAL_SPEED_PERCENTILE)
    implausible = (p85 is not None and limit_mps is not None and tracks >= TYPICAL_SPEED_MIN_TRACKS
                   and p85 > TYPICAL_SPEED_WARN_FACTOR * limit_mps)
    return {"p85_mps": None if p85 is None else round(p85, 2), "tracks": tracks, "limit_mps": limit_mps,
            "implausible": implausible}


def check_camera_file(camera_path: str | Path) -> CameraConfig:
    """The camera file alone (what can be checked of a stream without opening it); InputError says what."""
    try:
        return load_camera(camera_path)
    except CameraFileError as exc:
        raise InputError(str(exc)) from None


def _approaches_from_model(path: str | Path, device: str) -> tuple[set[str], int]:
    """A run's signal_model.json: the device's approaches (north/south/east/west) and its number of links."""
    path = Path(path)
    try:
        model = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--signal-model {path}: not a readable signal_model.json ({exc})") from None
    if not isinstance(model, list):
        raise InputError(f"--signal-model {path}: not a run's signal_model.json (a list of intersections)")
    for entry in model:
        if isinstance(entry, dict) and entry.get("id") == device:
            approaches, n_links = entry.get("approaches") or {}, entry.get("n_links") or 0
            if not isinstance(approaches, dict) or not isinstance(n_links, int) or isinstance(n_links, bool):
                raise InputError(f"--signal-model {path}: {device}'s entry needs approaches as {{lane: approach}} "
                                 "and n_links as a whole number, as a run writes them")
            return {a for a in approaches.values() if a}, n_links or None
    ids = [e.get("id") for e in model if isinstance(e, dict)]
    raise InputError(f"--signal-model {path}: no intersection {device!r} (it has {', '.join(map(str, ids))})")


def video_footage(video: str, started: dt.datetime | None = None) -> Footage:
    """Where a run's stored violations come from: a file by the SHA-256 of its bytes (the same video under another
    name or path is the same footage, so its violations are stored once), a stream by when this run of it started
    (`started`, default now): no two runs of a stream see the same frames."""
    from .streams import is_url, shown

    if is_url(video):
        started = (started or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        return Footage(f"stream:{started.isoformat()}", shown(video))
    with open(video, "rb") as fh:
        return Footage(f"sha256:{hashlib.file_digest(fh, 'sha256').hexdigest()}", Path(video).name)


#: why a run without --signals judges no red light
NO_SIGNALS = "no --signals: the signal states are unknown"

#: the shortest counting interval a run takes, s
MIN_INTERVAL_S = 1.0


def run_video(inputs: RunInputs, out_dir: str | Path, *, detector=None, interval_s: float = 60.0,
              signals_offset_s: float = 0.0, progress: Progress | None = None,
              max_frames: int | None = None, store=None, start_wall: dt.datetime | None = None,
              start_assumed: bool = False, footage: Footage | None = None, accept_suspect: bool = False,
              before_store: Callable[[], None] | None = None) -> dict:
    """Run the pipeline over the whole video; returns the summary (also written to summary.json).

    `store`: something with `put(records)` (a `store.violations.ViolationWriter`) that takes each violation as
    `violation_record` gives it, stamped `start_wall` (the first frame's instant, zone-aware; default: now) plus
    its time in the video, its evidence path absolute, its frame, and where it came from (`footage`, default
    `video_footage`), with whether that instant was assumed (no `start_wall`, or `start_assumed`: the caller took
    it from its own clock) rather than the camera's, as the summary says too. A violation's image is on disk
    before its record is put: the store takes the image's SHA-256 when it stores the row.

    Violations are written (violations.csv, the store) when the run ends, after the calibration's checks over the
    whole run (`suspect_reasons`): when they say the calibration (or frame rate) is wrong, every distance and speed
    a call rests on is wrong too, so the violations are withheld (kinds `not_judged`, images removed, nothing
    stored, `violations_withheld` in the summary) unless `accept_suspect`. Every stored row says what it was
    judged with (`violations.judged_with`): the camera file and signal log (path, SHA-256), the release, and
    `calibration_suspect`, the checks' reasons when they were accepted ([] when the checks passed). A stream's
    calls are stored as they come, marked with the checks made before it began; with a suspect calibration not
    accepted they are written but not stored (`summary["not_stored"]` says why).
    `before_store` is called just before this run's violations are stored (not when none are to be: withheld, or
    not stored): where a run replaces an earlier one's rows, they go only when these take their place."""
    from .evidence import EvidenceWriter
    from .pipeline import Pipeline
    from .streams import StreamReader, shown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evidence = EvidenceWriter(out, block=not inputs.live)
    pipe = Pipeline(inputs.camera, detector, signals=inputs.signals, evidence=evidence, interval_s=interval_s)
    reader = StreamReader(inputs.video, fps=inputs.fps, drop_oldest=inputs.live, buffer_size=16,
                          max_attempts=None if inputs.live else 1, name=inputs.camera.camera_id)
    files = {name: open(out / name, "w", newline="") for name in HEADERS}
    writers = {name: csv.writer(fh) for name, fh in files.items()}
    for name, header in HEADERS.items():
        writers[name].writerow(header)
    totals = {"frames": 0, "detections": 0, "track_points": 0, "crossings": 0, "red_light": 0, "speeding": 0,
              "events": 0}
    timing = {"detect": [], "track": [], "rest": [], "total": []}
    tracks_seen: set[int] = set()
    held: list = []  # (violation, frame index): written when the run ends, if the calibration's checks pass or
    # are accepted
    # events.csv: on the camera's clock when the first frame's instant is known (`start_wall`, not assumed: the
    # hi-res log's naive local time in its own zone), else on the signal log's clock
    events_at = None if start_wall is None or start_assumed else start_wall.replace(tzinfo=None)
    start_assumed = store is not None and (start_wall is None or start_assumed)
    if store is not None:
        from .violations import judged_with, violation_record

        start_wall = start_wall or dt.datetime.now().astimezone()
        # a stream's calls are stored as they come: marked with the checks made before it began
        footage = dataclasses.replace(footage or video_footage(inputs.video), time_assumed=start_assumed,
                                      signals_offset_s=signals_offset_s if inputs.signals is not None else None,
                                      judged_with=judged_with(inputs.provenance, inputs.calibration_suspect))
    wall0 = time.perf_counter()
    last_t = 0.0
    first = last = None  # the first and last frames processed (index, time): a stream's measured rate
    status = "complete"
    failed = False
    reader.start()
    try:
        for frame in (reader if not inputs.live else reader.newest_frames()):
            t = frame.time_s
            r = pipe.process(frame.image, t)
            last_t = t
            last = (frame.index, t)
            first = last if first is None else first
            totals["frames"] += 1
            for k, v in r.timing_s.items():
                timing[k].append(v)
            w = writers["detections.csv"]
            for (x1, y1, x2, y2), s in zip(r.detections.xyxy.tolist(), r.detections.confidence.tolist(), strict=True):
                w.writerow((r.frame_index, _num(t), _num(x1, 1), _num(y1, 1), _num(x2, 1), _num(y2, 1), _num(s, 3)))
            totals["detections"] += len(r.detections)
            w = writers["tracks.csv"]
            for tp in r.tracks:
                w.writerow((r.frame_index, _num(t), tp.track_id, _num(tp.x_px, 1), _num(tp.y_px, 1), _num(tp.x_m),
                            _num(tp.y_m), _num(tp.speed_mps)))
                tracks_seen.add(tp.track_id)
            totals["track_points"] += len(r.tracks)
            for c in r.crossings:
                writers["crossings.csv"].writerow((_num(c.time_s), c.track_id, c.stop_line, c.approach,
                                                   c.signal_state, "true" if c.joined else "false"))
            totals["crossings"] += len(r.crossings)
            if inputs.live:
                # a stream may not end, nor its run end cleanly: its calls are written and stored as they come,
                # the residual checked before it began; the speeds' check at its end warns only
                for v in r.violations:
                    writers["violations.csv"].writerow(_violation_row(v))
                    totals[v.kind] += 1
                if store is not None and r.violations and (accept_suspect or not inputs.calibration_suspect):
                    if before_store is not None:
                        before_store()
                        before_store = None
                    evidence.flush()  # the images written, for the store to hash
                    store.put([violation_record(v, start_wall + dt.timedelta(seconds=v.time_s), evidence.root,
                                                frame=r.frame_index, footage=footage) for v in r.violations])
            else:
                held += [(v, r.frame_index) for v in r.violations]
            for e in r.events:
                stamp = (format_timestamp(e.time_s + signals_offset_s) if events_at is None
                         else format_timestamp(e.time_s + events_at.microsecond / 1e6,
                                               events_at.replace(microsecond=0)))
                writers["events.csv"].writerow((stamp, e.device_id, e.event_code, e.parameter))
            totals["events"] += len(r.events)
            for row in pipe.closed_counts():
                writers["counts.csv"].writerow((_num(row[0], 1), row[1], row[2]))
            if progress is not None:
                progress(totals["frames"], inputs.frame_count, t)
            if max_frames is not None and totals["frames"] >= max_frames:
                status = f"stopped after {max_frames} frames"
                break
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM under `termination.sigterm_as_interrupt`
        status = "interrupted" if type(exc) is KeyboardInterrupt else f"terminated ({exc})"
    except BaseException:
        failed = True
        raise
    finally:
        reader.stop()
        for row in pipe.closed_counts(final=True):
            writers["counts.csv"].writerow((_num(row[0], 1), row[1], row[2]))
        evidence.close()
        for fh in files.values():
            fh.close()
        if failed:  # a failed run makes no call: a file's were held for its end, and their images go with them
            _remove_images(out, [v for v, _ in held])  # (a stream's were written and stored as they came)
    stats = reader.stats()
    if reader.status == "failed" or (inputs.live and stats.last_error and status == "complete"):
        status = f"stream ended: {stats.last_error}"
    elif status == "complete" and _ended_early(totals["frames"], inputs.frame_count):
        status = (f"the video ended after {totals['frames']} of the {inputs.frame_count} frames its container "
                  "states (truncated or damaged)")
    judged = [k for k in ("red_light", "speeding")
              if k not in not_judged(inputs.camera, _no_red_light(inputs, pipe, last_t, signals_offset_s))]
    typical = typical_speed(pipe, inputs.camera.speed_limit_mps)
    suspect = suspect_reasons(inputs, typical)
    withheld = bool(suspect and judged and not accept_suspect and not inputs.live)
    not_stored = None
    live_calls = inputs.live and (totals["red_light"] or totals["speeding"])
    if live_calls and store is not None and inputs.calibration_suspect and not accept_suspect:
        not_stored = (f"{totals['red_light'] + totals['speeding']} violation(s) judged with a suspect calibration "
                      "are not stored (violations.csv keeps them); --accept-suspect-calibration stores them, marked "
                      "(judged_with.calibration_suspect)")
    if withheld:
        _remove_images(out, [v for v, _ in held])
    else:
        with open(out / "violations.csv", "a", newline="") as fh:
            w = csv.writer(fh)
            for v, _ in held:
                w.writerow(_violation_row(v))
                totals[v.kind] += 1
        if store is not None and before_store is not None and not inputs.live:  # a stream's replaced at its first
            before_store()
        if store is not None and held:  # marked with every reason the checks gave (accepted), or [] (passed)
            footage = dataclasses.replace(footage, judged_with=judged_with(inputs.provenance, suspect))
            store.put([violation_record(v, start_wall + dt.timedelta(seconds=v.time_s), evidence.root,
                                        frame=frame, footage=footage) for v, frame in held])
    wall = time.perf_counter() - wall0
    unjudged = not_judged(inputs.camera, _no_red_light(inputs, pipe, last_t, signals_offset_s))
    if withheld:
        why = ("the calibration is suspect: " + "; ".join(suspect) + "; --accept-suspect-calibration judges with "
               "it anyway")
        unjudged |= dict.fromkeys(judged, why)
    summary = {
        "video": shown(inputs.video), "camera_id": inputs.camera.camera_id, "device_id": inputs.camera.device_id,
        "status": status, "detector": getattr(pipe.detector, "name", type(pipe.detector).__name__),
        "frames": totals["frames"], "video_s": round(last_t, 3), "wall_s": round(wall, 3),
        "frames_per_wall_s": round(totals["frames"] / wall, 2) if wall > 0 else None,
        # the rate the frames came at (a file's: the one its times are read at; a stream's: measured, frames decoded
        # over its seconds) and the one the source states (an MJPEG stream over HTTP states none: FFmpeg says 25)
        "fps_source": _fps_measured(first, last) if inputs.live else inputs.fps,
        "fps_declared": inputs.fps, "interval_s": interval_s, "signals_offset_s": signals_offset_s,
        "detections": totals["detections"], "tracks": len(tracks_seen), "track_points": totals["track_points"],
        "crossings": totals["crossings"], "violations": {"red_light": totals["red_light"],
                                                        "speeding": totals["speeding"]},
        # calls withheld as a second ticket of a vehicle whose track broke: both track ids (`reacquire.py`)
        "repeat_calls": [c.record() for c in pipe.repeat_calls],
        "events": totals["events"],
        "ms_per_frame": {k: _percentiles(v) for k, v in timing.items()},
        "stream": {"frames_read": stats.frames_read, "frames_dropped": stats.frames_dropped,
                   "reconnects": stats.reconnects, "last_error": stats.last_error or stats.previous_error},
        "evidence": evidence.stats(), "calibration_rms_error_m": round(inputs.camera.homography.rms_error_m, 4),
        "calibration_pairs": len(inputs.camera.calibration),
        "anchor": inputs.camera.anchor, "red_entry_m": inputs.camera.red_entry_m,
        # a kind nobody looked for is said, not a silent 0 (no speed limit, no stop lines or signal states, a
        # signal log that covers no crossing)
        "not_judged": unjudged,
        "signals_cover_s": _coverage(inputs), "crossings_not_judged": pipe.unjudged_crossings,
        "crossings_front_unseen": pipe.front_unseen_crossings,
        "typical_speed": typical,
        "calibration_suspect": suspect, "suspect_calibration_accepted": bool(suspect and accept_suspect),
        "violations_withheld": ({k: sum(v.kind == k for v, _ in held) for k in ("red_light", "speeding")}
                                if withheld else None),
        "not_stored": not_stored,
        "implausible_speeds": {"tracks": pipe.implausible_tracks,
                               "limit_mps": inputs.camera.max_plausible_speed_mps,
                               "fastest_mps": None if pipe.fastest_implausible_mps is None
                               else round(pipe.fastest_implausible_mps, 2)},
        "notes": inputs.notes,
        **inputs.provenance,
    }
    if store is not None:  # the instant the stored violations count from, and whether the camera's clock gave it
        summary["first_frame_at"] = start_wall.isoformat()
        summary["first_frame_at_assumed"] = start_assumed
        summary["source"], summary["source_name"] = footage.source, footage.name
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def suspect_reasons(inputs: RunInputs, typical: dict) -> list[str]:
    """Why the run's own checks say its calibration (or frame rate) is wrong: a surveyed point missing the fit
    (before the run), the traffic's 85th-percentile speed over twice the limit (over the run)."""
    out = list(inputs.calibration_suspect)
    if typical["implausible"]:
        out.append(f"the traffic's 85th-percentile speed, {typical['p85_mps']:.1f} m/s over {typical['tracks']} "
                   f"tracks, is more than {TYPICAL_SPEED_WARN_FACTOR:g} times the speed limit "
                   f"({typical['limit_mps']:g} m/s): road points in feet, or a wrong fps")
    return out


def _remove_images(out: Path, violations) -> None:
    """The evidence images of withheld violations: an image of a call not made must not be taken for one."""
    for v in violations:
        if v.evidence_path:
            (out / v.evidence_path).unlink(missing_ok=True)


def _coverage(inputs: RunInputs) -> list[float] | None:
    """The video times the signal log covers for the camera's device (`SignalTimeline.coverage`)."""
    cover = inputs.signals.coverage(inputs.camera.device_id) if inputs.signals is not None else None
    return None if cover is None else [round(c, 3) for c in cover]


def _no_red_light(inputs: RunInputs, pipe, video_end_s: float, offset_s: float) -> str | None:
    """Why the run judged no red light at all (None: it judged some crossings, or had none to judge): no signal
    file, or one that covers none of the video or none of its crossings."""
    if inputs.signals is None:
        return NO_SIGNALS
    outside = outside_coverage(inputs.signals, inputs.camera.device_id, video_end_s, offset_s)
    if outside is None and pipe.unjudged_crossings and not pipe.judged_crossings:
        first, last = inputs.signals.coverage(inputs.camera.device_id)
        outside = (f"none of the {pipe.unjudged_crossings} crossings is within the signal log's coverage, "
                   f"{first:.1f}-{last:.1f} s on the video's clock; check --signals-offset (now {offset_s:g})")
    return outside


def _ended_early(frames: int, stated: int | None) -> bool:
    """Fewer frames decoded than the container states, beyond the frame or two its estimate may be off by."""
    return stated is not None and frames + max(2, 0.01 * stated) < stated


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    ms = np.asarray(values) * 1000
    p50, p95 = np.percentile(ms, [50, 95])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "max": round(float(ms.max()), 2)}
