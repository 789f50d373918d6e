"""Grade one pipeline run on one rendered view, and hold the figures against the issue's targets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .anchor import DEFAULT_ANCHOR, pipeline_anchor, truth_at_anchor
from .counts import grade_counts
from .detection import care_mask, grade_detections
from .files import read_pipeline, read_truth
from .speed import grade_speed, speed_pairs
from .tracking import MATCH_M, clear_mot, frame_pairs, hota
from .violations import SUSTAIN_S, grade_violations

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
    """One figure against its bound: met, MISSED, or n/a when there was nothing to grade.

    A figure with nothing to grade (no vehicle crossed an approach and none
    was counted there; no moving box to find) is neither met nor missed:
    `met` stays False, as it is no success, and `graded` says it was not a
    failure either. A missing figure that hides a failure (vehicles counted
    where none crossed) is graded, and its note says why it is missed.
    """

    name: str
    value: float
    bound: str  # e.g. ">= 0.90"
    met: bool
    #: why the target is missed, or not graded, when the value alone does not say (too few events to grade)
    note: str = ""
    #: False when there was nothing to grade: shown as n/a, not MISSED
    graded: bool = True

    @property
    def status(self) -> str:
        if not self.graded:
            return "n/a"
        return "met" if self.met else "MISSED"

    def line(self) -> str:
        shown = "n/a" if _missing(self.value) else f"{self.value:.3f}"
        note = self.note or ("nothing to grade" if not self.graded else "")
        return f"{self.name:<44} {shown:>8}  target {self.bound:<10} {self.status}" + (f" ({note})" if note else "")

    def as_dict(self) -> dict:
        """As bench.json keeps it."""
        return {"name": self.name, "value": self.value, "bound": self.bound, "met": self.met, "note": self.note,
                "graded": self.graded}

    @classmethod
    def from_dict(cls, d: dict) -> Target:
        return cls(d["name"], d["value"], d["bound"], d["met"], d.get("note", ""), d.get("graded", True))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ratio_target(name: str, value, bound: float, nothing_to_grade: str) -> Target:
    """A ratio target (>= bound); with nothing to divide by it is n/a, saying why."""
    if _missing(value):
        return Target(name, value, f">= {bound}", False, nothing_to_grade, graded=False)
    return Target(name, value, f">= {bound}", value >= bound)


def grade_run(render_dir: Path, view: str, pipeline_dir: Path, match_m: float = MATCH_M) -> dict:
    """Every grade of one pipeline run (`signalwise vision run --out pipeline_dir`) on one rendered view."""
    truth = read_truth(render_dir, view)
    out = read_pipeline(pipeline_dir)
    anchor = pipeline_anchor(pipeline_dir) or DEFAULT_ANCHOR
    objects = truth_at_anchor(truth, view, anchor)  # each vehicle's point that the tracks' anchor stands for
    frames = range(truth.frames)
    duration_s = truth.frames / truth.fps
    care = care_mask(truth.objects)
    report: dict = {"view": view, "frames": truth.frames, "duration_s": duration_s, "anchor": anchor}
    if out.detections is not None:
        report["detection"] = grade_detections(truth.objects, out.detections, frames=frames).as_dict()
    pairs = frame_pairs(objects, out.tracks, care, match_m, frames)
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
        truth.violations, out.violations, out.tracks, objects, truth.fps, duration_s,
        float(truth.summary.get("sustain_s", SUSTAIN_S))).items()}
    return report


def targets(report: dict) -> list[Target]:
    """The issue's targets that this report can speak to."""
    out = []
    det = report.get("detection")
    view = report["view"]
    if det is not None:
        out += [_ratio_target(f"{view}: detection recall, moving", det["recall_moving"], DETECTION_MOVING_RECALL_MIN,
                              "nothing to grade: no moving vehicle in view"),
                _ratio_target(f"{view}: detection precision", det["precision"], DETECTION_PRECISION_MIN,
                              "nothing to grade: no detection"),
                _ratio_target(f"{view}: detection recall, stopped (goal)", det["recall_stopped"],
                              DETECTION_STOPPED_RECALL_GOAL, "nothing to grade: no stopped vehicle in view")]
    rmse = report["speed"]["rmse_mps"]
    if _missing(rmse):  # no matched track point had a speed: a failure unless nothing was there to match
        nothing = not report["tracking"].get("truth_points", 1)
        out.append(Target(f"{view}: speed RMSE (m/s)", rmse, f"<= {SPEED_RMSE_MAX_MPS}", False,
                          "nothing to grade" if nothing else "no matched track point had a speed",
                          graded=not nothing))
    else:
        out.append(Target(f"{view}: speed RMSE (m/s)", rmse, f"<= {SPEED_RMSE_MAX_MPS}", rmse <= SPEED_RMSE_MAX_MPS))
    for approach, c in report["counts"].items():
        err = c["relative_error"]
        name, bound = f"{view}: count error, {approach} ({c['counted']}/{c['truth']})", f"|x| <= {COUNT_ERROR_MAX}"
        if c["truth"] == 0 and c["counted"] == 0:
            out.append(Target(name, err, bound, False, "nothing to grade: none crossed, none counted", graded=False))
        elif c["truth"] == 0:
            out.append(Target(name, err, bound, False, f"{c['counted']} counted where none crossed"))
        else:
            out.append(Target(name, err, bound, abs(err) <= COUNT_ERROR_MAX))
    for kind, g in report["violations"].items():
        enough = g["truth_events"] >= VIOLATION_EVENTS_MIN
        for figure in ("precision", "recall"):
            name = f"{view}: {kind} {figure} ({g['truth_events']} events)"
            if _missing(g[figure]):  # nothing to divide: no true event (recall), none reported (precision)
                why = "no true event in the clip" if figure == "recall" else "no report to score"
                out.append(_ratio_target(name, g[figure], VIOLATION_PR_MIN, f"nothing to grade: {why}"))
            elif not enough:  # the target asks for a figure over enough events: missed, and the note says why
                out.append(Target(name, g[figure], f">= {VIOLATION_PR_MIN}", False,
                                  f"too few events to grade: {g['truth_events']} of the {VIOLATION_EVENTS_MIN} "
                                  "needed"))
            else:
                out.append(_ratio_target(name, g[figure], VIOLATION_PR_MIN, "nothing to grade: none reported"))
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
