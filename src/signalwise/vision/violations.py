"""Red-light and speeding violations, decided from tracks, stop-line crossings and the signal's own state.

- Red light: a track crosses a stop line while every link of that stop line
  shows red (SUMO's `r`) and has for at least the camera's `red_grace_s`. A
  stop line whose links disagree (a red left turn beside a green through
  movement) cannot say which movement the vehicle takes: no violation is
  called there; give each lane its own stop line and links for that. For
  the same reason a crossing where two such lines side by side overlap (the
  lane boundary, `stoplines.LineCrossing.beside`) needs all their links red.
- Speeding: a track's mean speed over its last `speed_sustain_s` (at least
  1 s) of usable road positions (the pipeline leaves out boxes cut off by the
  frame's edge), from a straight line fitted to position against time
  (`speed.span_speed`), whose lower bound (the speed minus its uncertainty,
  99.9 % one-sided, the narrower of the residuals' and a pixel-size noise
  model's bound where the residuals agree with the model) is above `speed_limit_mps +
  speed_tolerance_mps`: the tolerance is kept whole for what the fit cannot
  see (a calibration's scale error), the uncertainty is added to it. One
  violation per track, at the first span that shows it, with that span's
  speed, uncertainty, times and distance (and one per vehicle: the pipeline
  withholds a call on a track that continues a ticketed vehicle's broken
  one, `reacquire.py`). A speed over the camera's
  `max_plausible_speed_mps` is a wrong frame rate or calibration, not a
  speeder: it calls no violation (`Pipeline.implausible_tracks` counts such
  tracks).

A kind the camera file or the run cannot judge (no stop lines or no signal
states: no red light; no speed limit: no speeding) is said, not left as a
silent zero (`not_judged`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .speed import SPAN_CONFIDENCE, SpanSpeed, position_noise_m, span_speed

RED_LIGHT, SPEEDING = "red_light", "speeding"
KINDS = (RED_LIGHT, SPEEDING)


@dataclass(frozen=True)
class Violation:
    time_s: float
    track_id: int
    kind: str  # red_light | speeding
    approach: str
    speed_mps: float  # NaN when the track had no speed yet
    camera_id: str
    device_id: str
    stop_line: str = ""  # red light: the stop line crossed
    signal_state: str = ""  # red light: its links' characters at the crossing
    limit_mps: float | None = None  # speeding: the limit (without tolerance)
    evidence_path: str = ""  # relative to the output directory ('' when none was written)
    track: tuple[tuple[float, float, float, float, float], ...] = ()  # (time_s, x_px, y_px, x_m, y_m)
    red_for_s: float | None = None  # red light: how long every link of the line had shown red at the crossing
    speed_span: SpanSpeed | None = None  # speeding: the measurement the call rests on (speed_mps is its speed)


#: the shortest span a speeding call measures over, s (a second of positions: 16 m at a 15.89 m/s threshold)
MIN_SPAN_S = 1.0


class SpeedingRule:
    """`observe(track_id, time_s, x_m, y_m)` -> the `SpanSpeed` a violation is called with, else None.

    Feed it a track's usable road positions only (not those of a box cut off by the frame's edge): each track's
    positions of the last `span_s` (at least `MIN_SPAN_S`) are fitted with a straight line, and a violation is
    called the first time that span's speed minus its uncertainty is above the threshold, once per track."""

    def __init__(self, limit_mps: float, tolerance_mps: float = 0.0, span_s: float = 1.0,
                 confidence: float = SPAN_CONFIDENCE):
        self.limit_mps, self.tolerance_mps = limit_mps, tolerance_mps
        self.span_s, self.confidence = max(span_s, MIN_SPAN_S), confidence
        self._positions: dict[int, deque[tuple[float, float, float, float]]] = {}  # (time_s, x_m, y_m, pixel_m)
        self._done: set[int] = set()

    @property
    def threshold_mps(self) -> float:
        return self.limit_mps + self.tolerance_mps

    def observe(self, track_id: int, time_s: float, x_m: float, y_m: float, pixel_m: float = 0.0) -> SpanSpeed | None:
        """`pixel_m`: the size of a pixel on the road at the position (the largest in the span sets how well a
        position can be known: `span_speed`'s `position_sd_m` and its noise model, `speed.position_noise_m`)."""
        if track_id in self._done:
            return None
        q = self._positions.setdefault(track_id, deque())
        q.append((time_s, x_m, y_m, pixel_m))
        while len(q) > 2 and q[1][0] <= time_s - self.span_s + 1e-9:
            q.popleft()  # the oldest kept is the newest at least a span old
        if time_s - q[0][0] < self.span_s - 1e-9:
            return None
        pixel_m = max(p[3] for p in q)
        measured = span_speed(q, self.confidence, pixel_m / math.sqrt(12.0), position_noise_m(pixel_m))
        if measured is None or not measured.lower_mps > self.threshold_mps:
            return None
        self._done.add(track_id)
        self._positions.pop(track_id, None)
        return measured

    def interrupt(self, track_id: int) -> None:
        """Drop the track's positions so far (a speed no vehicle goes: a jump, not a drive): its span starts anew."""
        self._positions.pop(track_id, None)

    def forget(self, track_ids) -> None:
        """Drop tracks no longer followed, reported ones too, or a long run keeps every speeder it ever called.

        Still once per track: the pipeline forgets a track only after `FORGET_S` unseen, longer than the tracker
        keeps a lost one, and the tracker never gives an id twice, so a forgotten track never comes back."""
        for tid in track_ids:
            self._positions.pop(tid, None)
            self._done.discard(tid)


def not_judged(camera, no_signals: str | None) -> dict[str, str]:
    """Kind -> why no violation of it can be called with this camera (and run): a count of 0 must not read as
    "no one ran the red" when nobody looked. `no_signals`: why the run has no signal states, None when it has."""
    out = {}
    if not camera.stop_lines:
        out[RED_LIGHT] = "the camera file gives no stop_lines"
    elif no_signals:
        out[RED_LIGHT] = no_signals
    if camera.speed_limit_mps is None:
        out[SPEEDING] = "the camera file gives no speed_limit_mps"
    return out


def not_judged_lines(reasons: dict[str, str]) -> list[str]:
    """`not_judged`'s reasons as the lines a person reads: `speeding: not judged (the camera file gives ...)`."""
    return [f"{kind.replace('_', ' ')}: not judged ({why})" for kind, why in reasons.items()]


def implausible_line(tracks: int, limit_mps: float, fastest_mps: float | None) -> str:
    """The summary's flag for tracks measured faster than a vehicle goes: the frame rate or calibration is wrong."""
    fastest = f"; fastest {fastest_mps:.1f} m/s" if fastest_mps is not None else ""
    return (f"{tracks} track(s) at implausible speeds (> {limit_mps * 3.6:.0f} km/h, {limit_mps:g} m/s{fastest}): "
            "check the fps and calibration; their speeds judged no speeding")


@dataclass(frozen=True)
class Footage:
    """Where a run's violations come from, as the store keeps it: `source` identifies the footage (the same video
    gives the same, so its violations are stored once), `name` is for people."""

    source: str  # sha256:<hex of the file's bytes> | stream:<start> (vision run on a URL) | stream:<id>@<created> (API)
    name: str  # the file's name, or the stream
    time_assumed: bool = False  # the instants come from the processing machine's clock, not the camera's
    signals_offset_s: float | None = None  # the signal log's time at the first frame (None: no signal log)
    judged_with: dict | None = None  # what the calls were judged with (`judged_with`); None: not recorded


def judged_with(provenance: dict, calibration_suspect) -> dict | None:
    """What a run's violations were judged with, as the store keeps it (`store/violations.py`): the run's
    provenance (`video_run.RunInputs.provenance`: `camera_file` and `signals_file` as {path, sha256}, the latter
    None without a signal log; `signalwise_version`) and why its calibration was suspect when the calls were
    judged with it anyway ([] when its checks passed). None when the run recorded no provenance."""
    if not provenance:
        return None
    return {"camera_file": provenance["camera_file"], "signals_file": provenance.get("signals_file"),
            "signalwise_version": provenance["signalwise_version"], "calibration_suspect": list(calibration_suspect)}


def violation_record(v: Violation, occurred_at, evidence_root=None, *, frame: int | None = None,
                     footage: Footage | None = None) -> dict:
    """The violation as the store takes it (`store/violations.py` VIOLATION_FIELDS); `occurred_at` is the
    wall-clock instant (zone-aware), `evidence_root` the directory `evidence_path` is relative to, `frame` the
    index of the frame it was called on (its evidence image's), `footage` where it came from and what it was
    judged with (`Footage.judged_with`)."""
    from pathlib import Path

    path = ""
    if v.evidence_path:
        path = str(Path(evidence_root) / v.evidence_path) if evidence_root is not None else v.evidence_path
    offset = footage.signals_offset_s if footage is not None else None
    return {"occurred_at": occurred_at, "camera_id": v.camera_id, "device_id": v.device_id, "approach": v.approach,
            "kind": v.kind, "track_id": v.track_id, "speed_mps": None if math.isnan(v.speed_mps) else v.speed_mps,
            "limit_mps": v.limit_mps, "stop_line": v.stop_line or None, "signal_state": v.signal_state or None,
            "evidence_path": path or None,
            "track": [[round(x, 3) for x in p] for p in v.track],
            "source": footage.source if footage is not None else None,
            "source_name": footage.name if footage is not None else None,
            "time_assumed": footage.time_assumed if footage is not None else None,
            "frame": frame, "video_s": _ms(v.time_s), "signal_log_s": None if offset is None else _ms(v.time_s + offset),
            "red_for_s": None if v.red_for_s is None else _ms(v.red_for_s),
            "judged_with": footage.judged_with if footage is not None else None}


def _ms(seconds: float) -> float:
    """To the millisecond, as violations.csv and events.csv write times: a record reads the same there."""
    return round(seconds, 3)
