"""Grade one pipeline run on one rendered view, and hold the figures against the issue's targets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .counts import grade_counts
from .detection import care_mask, grade_detections
from .files import read_pipeline, read_truth
from .speed import grade_speed, speed_pairs
from .tracking import MATCH_M, clear_mot, frame_pairs, hota
from .violations import grade_violations

#: the issue's targets: (figure, comparison, bound)
DETECTION_MOVING_RECALL_MIN = 0.90
DETECTION_PRECISION_MIN = 0.85
DETECTION_STOPPED_RECALL_GOAL = 0.80
SPEED_RMSE_MAX_MPS = 1.5
COUNT_ERROR_MAX = 0.10
VIOLATION_PR_MIN = 0.80
VIOLATION_EVENTS_MIN = 30


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    bound: str  # e.g. ">= 0.90"
    met: bool
    #: why the target is missed when the value alone does not say (too few events to grade, nothing to grade)
    note: str = ""

    def line(self) -> str:
        missing = self.value is None or (isinstance(self.value, float) and math.isnan(self.value))
        shown = "n/a" if missing else f"{self.value:.3f}"
        status = "met" if self.met else "MISSED"
        note = self.note or ("nothing to grade" if missing and not self.met else "")
        return f"{self.name:<44} {shown:>8}  target {self.bound:<10} {status}" + (f" ({note})" if note else "")


def grade_run(render_dir: Path, view: str, pipeline_dir: Path, match_m: float = MATCH_M) -> dict:
    """Every grade of one pipeline run (`signalwise vision run --out pipeline_dir`) on one rendered view."""
    truth = read_truth(render_dir, view)
    out = read_pipeline(pipeline_dir)
    frames = range(truth.frames)
    duration_s = truth.frames / truth.fps
    care = care_mask(truth.objects)
    report: dict = {"view": view, "frames": truth.frames, "duration_s": duration_s}
    if out.detections is not None:
        report["detection"] = grade_detections(truth.objects, out.detections, frames=frames).as_dict()
    pairs = frame_pairs(truth.objects, out.tracks, care, match_m, frames)
    mot = clear_mot(pairs, match_m)
    report["tracking"] = {**mot, **hota(pairs), "match_m": match_m}
    frame_numbers = sorted(set(truth.objects["frame"]).union(out.tracks["frame"]) & set(frames))
    truth_speed = {(int(f), str(o)): float(s) for f, o, s in
                   truth.objects.loc[care, ["frame", "object_id", "speed_mps"]].itertuples(index=False)}
    track_speed = {(int(f), str(tid)): float(s) for f, tid, s in
                   out.tracks[["frame", "track_id", "speed_mps"]].itertuples(index=False)}
    report["speed"] = grade_speed(speed_pairs(pairs, truth_speed, track_speed, frame_numbers)).as_dict()
    report["counts"] = grade_counts(truth.crossings, out.counts, duration_s)
    report["violations"] = {k: g.as_dict() for k, g in grade_violations(
        truth.violations, out.violations, out.tracks, truth.objects, truth.fps, duration_s).items()}
    return report


def targets(report: dict) -> list[Target]:
    """The issue's targets that this report can speak to."""
    out = []
    det = report.get("detection")
    view = report["view"]
    if det is not None:
        out += [Target(f"{view}: detection recall, moving", det["recall_moving"], f">= {DETECTION_MOVING_RECALL_MIN}",
                       det["recall_moving"] >= DETECTION_MOVING_RECALL_MIN),
                Target(f"{view}: detection precision", det["precision"], f">= {DETECTION_PRECISION_MIN}",
                       det["precision"] >= DETECTION_PRECISION_MIN),
                Target(f"{view}: detection recall, stopped (goal)", det["recall_stopped"],
                       f">= {DETECTION_STOPPED_RECALL_GOAL}", det["recall_stopped"] >= DETECTION_STOPPED_RECALL_GOAL)]
    rmse = report["speed"]["rmse_mps"]
    out.append(Target(f"{view}: speed RMSE (m/s)", rmse, f"<= {SPEED_RMSE_MAX_MPS}", rmse <= SPEED_RMSE_MAX_MPS))
    for approach, c in report["counts"].items():
        err = c["relative_error"]
        out.append(Target(f"{view}: count error, {approach} ({c['counted']}/{c['truth']})", err,
                          f"|x| <= {COUNT_ERROR_MAX}", abs(err) <= COUNT_ERROR_MAX))
    for kind, g in report["violations"].items():
        enough = g["truth_events"] >= VIOLATION_EVENTS_MIN
        for figure in ("precision", "recall"):
            out.append(Target(f"{view}: {kind} {figure} ({g['truth_events']} events)", g[figure],
                              f">= {VIOLATION_PR_MIN}", enough and g[figure] >= VIOLATION_PR_MIN,
                              "" if enough else f"too few events to grade: {VIOLATION_EVENTS_MIN} needed"))
    return out


def report_json(report) -> str:
    """A report (or a bench of them) as strict JSON: a figure with nothing to divide (0 of 0 counts) is null,
    not the bare NaN Python writes, which no JSON reader takes."""
    import json

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if hasattr(x, "item") and not isinstance(x, str):  # numpy scalars
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    return json.dumps(clean(report), indent=2, allow_nan=False, default=float)
