"""Many camera streams: each with its reader, and (given a camera file) a pipeline thread of its own.

The API's `/api/v1/streams` routes drive a `StreamManager`. Per stream a
worker thread takes frames from the reader and runs the camera's `Pipeline`;
what it finds goes out through callbacks the caller wires:

- `publish(topic, payload)`: the live WebSocket (topic `vision`), a summary at
  most `publish_hz` times a second per stream, crossings and violations always;
- `on_violations(records)`: the store (records as `violation_record` gives), once their evidence images are
  written (from the evidence writer's thread), so the store hashes images that are on disk;
- `source`: the live run's cameras (`runtime.live.cameras.LiveCameras`), when a live run is attached: each
  camera is checked against the run's signals when its stream is added (refused with 422 otherwise), and each
  frame's result goes to the run (`update`) with the frame's time on the run's clock (`frame_time_s`, from when
  it was decoded); with `--field none` the zones are a source of its loop. No red light is judged live: the
  run's signal states are its shadow decisions (or a simulation's), not the lights the camera films.
  The pipeline itself keeps the stream's own seconds (tracking and speeds are physical at any `--speed`);
- `profiler.add(stage, seconds)`: `vision_frame` (all streams) and `vision_frame.<id>`, `vision_detect`,
  `vision_track`.

A camera whose calibration `vision run` would call suspect before a run (`suspect_calibration`: its surveyed
points' residual, a zone seen too coarsely) is refused (`add`, 422) unless the spec accepts it; accepted, its
warnings say why and every violation it stores carries the reasons (`judged_with.calibration_suspect`, with the
camera as `spec.camera_file` names it).

A stream that ends (a file's last frame, `loop` off) ends its camera in the
source (`end`): its zones close at once, not when the run notices its silence.
A monitor thread (1 Hz) marks down streams in the source and hands the flat
figures (`monitoring.flat`) to `on_metrics`, where alert rules read them. A
deleted stream is reported not down (`vision_stream_down.<id>` 0, and not blank
or frozen), so an alert raised on it clears like any other instead of staying
active with nothing left to clear it.

Each decoded frame is also checked for a picture (`monitoring.ImageCheck`):
a stream whose frames are blank, or the same frame repeated, for
`IMAGE_BAD_AFTER_S` is streaming but blind. Its status says so (`image`; while
no frames come there is no picture, and `image_last` says what the last ones
showed), the figures `vision_stream_blank.<id>` / `vision_stream_frozen.<id>`
raise their alerts (held while the stream is down after it, until a frame with
a picture comes), and its results reach the live run marked down with the reason
(`update(..., down=reason)`: with `--field none` its signal falls back), in
the same call as the results, since a result alone marks a camera up again.

A stream started again keeps its pipeline, and its frame times go on from
where they stopped (see `_resumed_clock_s`).

Nothing here raises into a caller's thread; a stream's status and last error
say what went wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .camera import CameraConfig
from .monitoring import FrameMeter, ImageCheck, flat, not_down
from .streams import StreamReader, shown
from .violations import Footage, not_judged

log = logging.getLogger("signalwise.vision.manager")

#: deleted streams reported not down (so their alerts clear), at most this many, the most recently deleted
REMOVED_KEPT = 1000


class StreamError(ValueError):
    """A stream request that cannot be done; `status` is the HTTP status that says so."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StreamSpec:
    id: str
    url: str
    camera: CameraConfig | None = None
    detector: str = "blobs"
    model: str | None = None
    buffer_size: int = 2  # the worker takes the newest frame: deeper, the buffer only holds frames it drops
    fps: float | None = None
    loop: bool = False  # a file starts over at its end
    pace: bool = True  # a file is read at its frame rate, like a camera
    # run the camera though its calibration is suspect (`calibration_suspect`): refused otherwise (`add`)
    accept_suspect_calibration: bool = False
    # the camera as its stored violations' `judged_with.camera_file` names it ({path, sha256}: `camera_identity`);
    # None: they record no `judged_with`
    camera_file: dict | None = None


def image_check(spec: StreamSpec) -> ImageCheck:
    """The picture check with the camera file's thresholds (`blank_below_std`, `image_bad_after_s`), the
    defaults where it gives none or there is no camera file."""
    cam = spec.camera
    if cam is None:
        return ImageCheck()
    return ImageCheck(after_s=cam.image_bad_after_s, blank_std=cam.blank_below_std)


class ManagedStream:
    def __init__(self, spec: StreamSpec):
        self.spec = spec
        self.reader: StreamReader | None = None
        self.pipeline = None
        self.worker: threading.Thread | None = None
        self.stop_event = threading.Event()
        self.meter = FrameMeter()
        self.image = image_check(spec)  # is the picture any good: blank, frozen or ok (a new one at each start)
        self.wanted_running = False
        self.error: str | None = None
        self.counts = {"crossings": 0, "red_light": 0, "speeding": 0}
        self.last_frame_time_s: float | None = None  # on the pipeline's clock (reader's clock + offset)
        self.last_frame_decoded_at: float | None = None  # time.monotonic() when that frame was decoded
        self.clock_offset_s = 0.0  # added to the reader's frame times: a restarted reader's clock starts at 0
        self.created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        # its violations' source in the store: this stream, from its creation to the microsecond (a stream added
        # again under the same id numbers its tracks from 1 again: its violations are other ones)
        # and what they were judged with: the camera, and why its calibration was suspect when accepted ([]: its
        # checks passed); no signal log (a stream judges no red light)
        self.suspect = suspect_calibration(spec.camera)
        self.footage = Footage(f"stream:{spec.id[:90]}@{dt.datetime.now(dt.UTC).isoformat()}", shown(spec.url),
                               judged_with=stream_judged_with(spec, self.suspect))
        self.warnings = stream_warnings(spec.camera, self.suspect)


#: why a stream judges no red light: it is given no signal states (a live run's are its own decisions, not the
#: lights the camera films)
NO_SIGNALS = "a stream has no signal states; red lights are judged by `signalwise vision run --signals`"


def stream_warnings(camera: CameraConfig | None, suspect: list[str] | None = None) -> list[str]:
    """What `vision run` notes about a camera file, for the API's answer: a key close to one of ours (a typo that
    leaves a check off: `speed_limit_mp`), each kind of violation the stream cannot judge, and each reason its
    calibration is suspect (`suspect`, from `suspect_calibration`: a stream runs with one only when accepted)."""
    from .camera import keys_like_ours
    from .violations import not_judged, not_judged_lines

    if camera is None:
        return []
    return [*keys_like_ours(camera), *not_judged_lines(not_judged(camera, NO_SIGNALS)),
            *(f"the calibration is suspect, accepted: {why}; every violation stored is marked with it "
              "(judged_with.calibration_suspect)" for why in suspect or [])]


def suspect_calibration(camera: CameraConfig | None) -> list[str]:
    """Why the camera's calls cannot be trusted, by the checks `vision run` makes before a run
    (`video_run.calibration_suspect`: the surveyed points' residual, a zone seen too coarsely); [] when they pass."""
    if camera is None:
        return []
    from .video_run import calibration_suspect

    return calibration_suspect(camera)


def suspect_refusal(reasons: list[str], accept: str) -> str:
    """Why a stream of a camera whose calibration is suspect (`reasons`) is not run; `accept` is how to run it
    anyway (`--accept-suspect-calibration`, the API's `"accept_suspect_calibration": true`)."""
    return (f"the calibration is suspect: {'; '.join(reasons)}; the red-light and speeding calls made with it cannot "
            f"be trusted (vision run withholds them); {accept} runs it anyway, every violation it stores marked with "
            "these reasons (judged_with.calibration_suspect)")


def camera_identity(path: str | Path | None = None, contents: dict | None = None) -> dict:
    """A stream's camera as `judged_with.camera_file` names it: a camera file by its absolute path and the SHA-256
    of its bytes (as `vision run` names it); a camera given inline over the API (`contents`) as `body.camera`
    and the SHA-256 of its JSON, keys sorted and no spaces (`json.dumps(camera, sort_keys=True,
    separators=(",", ":"))`: ASCII, other characters as `\\uXXXX` escapes)."""
    import hashlib
    import json

    if path is not None:
        from .video_run import file_identity

        return file_identity(path)
    text = json.dumps(contents, sort_keys=True, separators=(",", ":"))
    return {"path": "body.camera", "sha256": hashlib.sha256(text.encode()).hexdigest()}


def stream_judged_with(spec: StreamSpec, suspect: list[str]) -> dict | None:
    """What a stream's violations are judged with (`violations.judged_with`): its camera (`spec.camera_file`), no
    signal log, the release, and why its calibration is suspect ([] when its checks passed); None when the spec
    names no camera file."""
    from .. import __version__
    from .violations import judged_with

    if spec.camera is None or spec.camera_file is None:
        return None
    return judged_with({"camera_file": spec.camera_file, "signals_file": None, "signalwise_version": __version__},
                       suspect)


class StreamManager:
    def __init__(self, *, publish: Callable[[str, dict], None] | None = None,
                 on_violations: Callable[[list[dict]], None] | None = None, source=None, profiler=None,
                 on_metrics: Callable[[dict[str, float]], None] | None = None, evidence_dir: str | Path | None = None,
                 max_streams: int = 16, publish_hz: float = 4.0, monitor_every_s: float = 1.0):
        self.publish, self.on_violations, self.source = publish, on_violations, source
        self.profiler, self.on_metrics = profiler, on_metrics
        self.evidence_dir = Path(evidence_dir) if evidence_dir is not None else None
        self.max_streams, self.publish_hz = max_streams, publish_hz
        self._streams: dict[str, ManagedStream] = {}
        self._removed: OrderedDict[str, None] = OrderedDict()  # ids of deleted streams, newest last
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, args=(monitor_every_s,), name="signalwise-vision-monitor",
                                         daemon=True)
        self._monitor.start()

    # -- operations -----------------------------------------------------------------------------------
    def add(self, spec: StreamSpec, start: bool = True) -> dict:
        suspect = suspect_calibration(spec.camera)  # the checks `vision run` makes before a run, made here too
        if suspect and not spec.accept_suspect_calibration:
            raise StreamError(suspect_refusal(suspect, "accept_suspect_calibration"), 422)
        with self._lock:
            if spec.id in self._streams:
                raise StreamError(f"stream {spec.id!r} exists already", 409)
            if len(self._streams) >= self.max_streams:
                raise StreamError(f"{self.max_streams} streams at most; delete one first", 409)
            ms = ManagedStream(spec)
            self._join_run(spec)
            self._streams[spec.id] = ms
            self._removed.pop(spec.id, None)
        if start:
            try:
                self.start(spec.id)
            except BaseException:  # a stream that could not start is not left listed as if it were there
                with self._lock:
                    self._streams.pop(spec.id, None)
                self._leave_run(spec)
                raise
        return self.get(spec.id)

    def _join_run(self, spec: StreamSpec) -> None:
        """The live run takes the stream's camera as an input, or refuses it (422, the reason)."""
        if spec.camera is None or not hasattr(self.source, "add"):
            return
        try:
            self.source.add(spec.camera)
        except ValueError as exc:  # CameraFileError: not a signal of the run, an approach it lacks, ...
            raise StreamError(str(exc), 422) from None

    def _leave_run(self, spec: StreamSpec) -> None:
        if spec.camera is not None and hasattr(self.source, "remove"):
            self.source.remove(spec.camera.camera_id)

    def _get(self, stream_id: str) -> ManagedStream:
        ms = self._streams.get(stream_id)
        if ms is None:
            known = ", ".join(sorted(self._streams)) or "none"
            raise StreamError(f"no stream {stream_id!r} (streams: {known})", 404)
        return ms

    def start(self, stream_id: str) -> dict:
        """Start (or restart) a stream; one that cannot start keeps why as its `error` (status `failed`) until
        the next start, so a GET says it."""
        ms = self._get(stream_id)
        if ms.worker is not None and ms.worker.is_alive():
            return self.get(stream_id)
        try:
            return self._start(ms)
        except Exception as exc:
            ms.error = f"could not start: {exc}"
            raise

    def _start(self, ms: ManagedStream) -> dict:
        spec = ms.spec
        ms.stop_event = threading.Event()
        ms.error = None
        ms.reader = StreamReader(spec.url, name=spec.id, buffer_size=spec.buffer_size, fps=spec.fps,
                                 loop=spec.loop, pace=spec.pace, drop_oldest=True)
        if spec.camera is not None and ms.pipeline is None:
            ms.pipeline = self._pipeline(spec)
        ms.clock_offset_s = _resumed_clock_s(ms)
        ms.image = image_check(spec)
        ms.wanted_running = True
        ms.reader.start()
        ms.worker = threading.Thread(target=self._work, args=(ms,), name=f"signalwise-vision-{spec.id}", daemon=True)
        ms.worker.start()
        return self.get(spec.id)

    def stop(self, stream_id: str) -> dict:
        ms = self._get(stream_id)
        ms.wanted_running = False
        ms.stop_event.set()
        if ms.reader is not None:
            ms.reader.stop()
        if ms.worker is not None:
            ms.worker.join(5.0)
        return self.get(stream_id)

    def remove(self, stream_id: str) -> None:
        self.stop(stream_id)
        with self._lock:
            ms = self._streams.pop(stream_id, None)
            self._removed[stream_id] = None
            self._removed.move_to_end(stream_id)
            while len(self._removed) > REMOVED_KEPT:
                self._removed.popitem(last=False)
        if ms is not None:
            self._leave_run(ms.spec)
        if ms is not None and ms.pipeline is not None and ms.pipeline.evidence is not None:
            ms.pipeline.evidence.close()

    def close(self) -> None:
        self._stop.set()
        for sid in list(self._streams):
            self.remove(sid)

    # -- reading ------------------------------------------------------------------------------------------
    def get(self, stream_id: str) -> dict:
        ms = self._get(stream_id)
        stats = ms.reader.stats() if ms.reader is not None else None
        status = "stopped" if stats is None else stats.status
        if ms.error is not None:
            status = "failed"
        return {
            "id": ms.spec.id, "url": shown(ms.spec.url), "status": status, "wanted_running": ms.wanted_running,
            "camera_id": ms.spec.camera.camera_id if ms.spec.camera else None,
            # vision run's notes on the camera file (a key like one of ours) and the violations it cannot judge
            "warnings": ms.warnings,
            "device_id": ms.spec.camera.device_id if ms.spec.camera else None,
            "detector": ms.spec.detector if ms.spec.camera else None, "created_at": ms.created_at,
            "error": ms.error or (stats.last_error if stats else None),
            # the picture while frames come: "blank" or "frozen" for IMAGE_BAD_AFTER_S of its frames, "ok"; None
            # before a frame and while none come (reconnecting, ended): there is no picture to judge then
            "image": ms.image.state if status == "streaming" else None,
            "image_bad_s": round(ms.image.bad_s, 1) if status == "streaming" else None,
            # while no frames come, what the last ones showed (a camera frozen before it dropped: "frozen"), else None
            "image_last": ms.image.state if stats is not None and status != "streaming" else None,
            # an outage that is over: what the camera's operator looks up after a `vision_stream_down` cleared
            "previous_error": stats.previous_error if stats else None,
            "previous_error_at": stats.previous_error_at if stats else None,
            "stream": {"fps": stats.fps if stats else 0.0, "frames_read": stats.frames_read if stats else 0,
                       "frames_dropped": stats.frames_dropped if stats else 0,
                       "drop_share": stats.drop_share if stats else 0.0,
                       "latency_ms_p50": stats.latency_ms_p50 if stats else None,
                       "reconnects": stats.reconnects if stats else 0, "attempts": stats.attempts if stats else 0,
                       "source_fps": stats.source_fps if stats else None},
            "pipeline": None if ms.spec.camera is None else {
                "fps": ms.meter.fps(), "frames": ms.meter.frames, "ms_per_frame": ms.meter.ms(), **ms.counts,
                # a kind the stream cannot judge (red light: no signal states) is null, never a count of 0
                **dict.fromkeys(not_judged(ms.spec.camera, NO_SIGNALS)),
                # tracks measured over the camera's max_plausible_speed_mps: a wrong fps or calibration
                "implausible_speed_tracks": ms.pipeline.implausible_tracks if ms.pipeline is not None else 0,
                "evidence": ms.pipeline.evidence.stats() if ms.pipeline is not None and ms.pipeline.evidence else None},
        }

    def list(self) -> list[dict]:
        out = []
        for sid in sorted(self._streams):
            try:
                out.append(self.get(sid))
            except StreamError:
                continue  # removed while we read
        return out

    def metrics(self) -> dict[str, float]:
        return self._figures(self.list())

    def _figures(self, streams: list[dict]) -> dict[str, float]:
        """The alert figures of these streams, and a deleted stream's down figure at 0: nothing reports on it
        any more, and an alert engine keeps an alert whose figure is missing active for ever."""
        with self._lock:
            removed = [sid for sid in self._removed if sid not in self._streams]
        # deleted last: `streams` may have been read just before a stream was deleted
        gone = {k: v for sid in removed for k, v in not_down(sid).items()}
        return {**flat(streams), **gone}

    # -- the worker ---------------------------------------------------------------------------------------
    def _pipeline(self, spec: StreamSpec):
        from .detector import make_detector
        from .evidence import EvidenceWriter
        from .pipeline import Pipeline

        evidence = None
        if self.evidence_dir is not None:
            evidence = EvidenceWriter(self.evidence_dir / _safe(spec.id), block=False)
        det = make_detector(spec.detector, model=spec.model, camera=spec.camera)
        return Pipeline(spec.camera, det, evidence=evidence)

    def _work(self, ms: ManagedStream) -> None:
        reader, pipe = ms.reader, ms.pipeline
        run = self.source if hasattr(self.source, "frame_time_s") else None  # a live run's cameras
        next_publish = 0.0
        try:
            while not ms.stop_event.is_set():
                frame = reader.read_latest(0.5)  # behind? skip to the newest frame; the skipped count as drops
                if frame is None:
                    if not reader.running:  # ended or failed: the reader's status says which
                        self._ended(ms)
                        return
                    continue
                time_s = ms.clock_offset_s + frame.time_s
                ms.image.add(frame.image, time_s)
                if pipe is None:
                    continue  # decode only (no camera file): figures, no results
                down = ms.image.reason()  # blank or frozen: the results go to the run marked down
                down = None if down is None else f"stream {ms.spec.id} {down}"
                # no signal state, so no red light is judged: a live run's states are its shadow decisions (or a
                # simulation's), not the lights this camera films, and a violation is evidence against a driver
                result = pipe.process(frame.image, time_s)
                ms.meter.add(result.timing_s["total"])
                ms.last_frame_time_s, ms.last_frame_decoded_at = time_s, frame.decoded_at
                self._profile(ms.spec.id, result.timing_s)
                if run is not None:  # the frame placed on the run's clock by when it was decoded
                    run.update(ms.spec.camera.camera_id, result, run.frame_time_s(frame.decoded_at), down=down)
                elif self.source is not None:
                    self.source.update(ms.spec.camera.camera_id, result, down=down)
                ms.counts["crossings"] += len(result.crossings)
                for v in result.violations:
                    ms.counts[v.kind] += 1
                if result.violations and self.on_violations is not None:
                    self._store(ms, result, frame)
                now = time.monotonic()
                if self.publish is not None and (result.crossings or result.violations or now >= next_publish):
                    next_publish = now + 1.0 / self.publish_hz
                    self.publish("vision", _payload(ms.spec, result))
        except Exception as exc:  # noqa: BLE001 - a broken pipeline stops its stream, never the server
            ms.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            log.exception("stream %s stopped", ms.spec.id)
            reader.stop()

    def _ended(self, ms: ManagedStream) -> None:
        """A stream whose reader ended (a file's last frame) closes its camera's zones in the live run at once
        (`end`), rather than when the run notices its silence; a failed one is marked down by the monitor."""
        stats = ms.reader.stats()
        if stats.status != "ended" or ms.spec.camera is None or not hasattr(self.source, "end"):
            return
        self.source.end(ms.spec.camera.camera_id, f"stream {ms.spec.id} ended")

    def _store(self, ms: ManagedStream, result, frame) -> None:
        from .violations import violation_record

        wall = time.time() - (time.monotonic() - frame.decoded_at)
        root = ms.pipeline.evidence.root if ms.pipeline.evidence is not None else None
        records = []
        for v in result.violations:
            at = dt.datetime.fromtimestamp(wall - (result.time_s - v.time_s), dt.UTC)
            records.append(violation_record(v, at, root, frame=result.frame_index, footage=ms.footage))

        def hand_over() -> None:
            try:
                self.on_violations(records)
            except Exception:  # noqa: BLE001 - a store problem must not stop the camera
                log.exception("violations of %s not stored", ms.spec.id)

        if root is not None and any(r["evidence_path"] for r in records):
            # once their images are on disk (the evidence writer's thread calls it): the store hashes each image
            # as it stores its row, and an image still being encoded would leave the row without its digest
            ms.pipeline.evidence.then(hand_over)
        else:
            hand_over()

    def _profile(self, stream_id: str, timing: dict) -> None:
        if self.profiler is None:
            return
        self.profiler.add("vision_frame", timing["total"])
        self.profiler.add(f"vision_frame.{stream_id}", timing["total"])
        self.profiler.add("vision_detect", timing["detect"])
        self.profiler.add("vision_track", timing["track"])

    def _watch(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                streams = self.list()
                if self.source is not None:
                    for s in streams:
                        if s["camera_id"] and s["wanted_running"] and s["status"] in ("reconnecting", "failed"):
                            self.source.mark_down(s["camera_id"], f"stream {s['id']} {s['status']}: {s['error']}")
                if self.on_metrics is not None:
                    self.on_metrics(self._figures(streams))
            except Exception:  # noqa: BLE001 - the monitor keeps going
                log.debug("vision monitor failed", exc_info=True)


def _resumed_clock_s(ms: ManagedStream) -> float:
    """Where a (re)started stream's frame times begin: after its pipeline's last frame, by the time since then.

    A stream started again keeps its pipeline rather than a new one: its tracker numbers tracks on (a new one
    would start at 1 again, and a violation's evidence image, named by camera, track and time, would overwrite an
    earlier one), its zones send the detector-off that pairs an on sent before the stop, and its counts per
    interval go on. But a new reader's clock starts at 0, and the pipeline refuses time going back. So the new
    frames are placed after the last one by the wall time since it was decoded: the pipeline sees the gap as long
    as it was, and tracks from before it are lost rather than joined to whatever is in view now."""
    if ms.last_frame_time_s is None or ms.last_frame_decoded_at is None:
        return 0.0
    return ms.last_frame_time_s + max(0.0, time.monotonic() - ms.last_frame_decoded_at)


def _payload(spec: StreamSpec, result) -> dict:
    return {
        "stream_id": spec.id, "camera_id": spec.camera.camera_id, "device_id": spec.camera.device_id,
        "time_s": round(result.time_s, 3), "frame": result.frame_index, "signal_state": result.signal_state,
        "tracks": [{"track_id": t.track_id, "x_m": round(t.x_m, 2), "y_m": round(t.y_m, 2),
                    "speed_mps": None if t.speed_mps != t.speed_mps else round(t.speed_mps, 2)} for t in result.tracks],
        "zones": [dataclasses.asdict(z) | {"idle_s": None if z.idle_s == float("inf") else z.idle_s}
                  for z in result.zones],
        "crossings": [dataclasses.asdict(c) for c in result.crossings],
        "violations": [{"time_s": v.time_s, "track_id": v.track_id, "kind": v.kind, "approach": v.approach,
                        "speed_mps": None if v.speed_mps != v.speed_mps else round(v.speed_mps, 2)}
                       for v in result.violations],
    }


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
