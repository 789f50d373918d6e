"""Read a render's truth and a pipeline's output directory into tables.

The truth side is written by `signalwise vision render` (the simulation
renderer); the pipeline side by `signalwise vision run`, with the headers the
issue fixes. Nothing here imports either: the files are the interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class GradingInputError(ValueError):
    """A file the grader needs is missing or malformed: says which."""


@dataclass(frozen=True)
class Truth:
    """One rendered view's truth, its times relative to the first frame (as the pipeline's are)."""

    objects: pd.DataFrame  # truth.csv: frame, time_s, object_id, kind, ..., stopped, visible
    crossings: pd.DataFrame  # crossings_truth.csv
    violations: pd.DataFrame  # violations_truth.csv
    first_frame_time_s: float
    frames: int
    fps: float
    speed_threshold_mps: float
    summary: dict


@dataclass(frozen=True)
class PipelineOutput:
    tracks: pd.DataFrame  # frame,time_s,track_id,x_px,y_px,x_m,y_m,speed_mps
    detections: pd.DataFrame | None  # frame,time_s,x1,y1,x2,y2,score (optional file)
    crossings: pd.DataFrame
    violations: pd.DataFrame
    counts: pd.DataFrame


TRACKS = ["frame", "time_s", "track_id", "x_px", "y_px", "x_m", "y_m", "speed_mps"]
DETECTIONS = ["frame", "time_s", "x1", "y1", "x2", "y2", "score"]
CROSSINGS = ["time_s", "track_id", "stop_line", "approach", "signal_state"]
VIOLATIONS = ["time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path"]
COUNTS = ["interval_start_s", "approach", "count"]


def read_truth(render_dir: Path, view: str) -> Truth:
    render_dir = Path(render_dir)
    summary_path = render_dir / "render.json"
    if not summary_path.is_file():
        raise GradingInputError(f"{render_dir}: no render.json (not a `signalwise vision render` directory)")
    summary = json.loads(summary_path.read_text())
    if summary.get("status", "complete") != "complete":
        raise GradingInputError(f"{render_dir}: the render did not complete ({summary.get('reason', 'no reason')})")
    if view not in summary.get("views", {}):
        raise GradingInputError(f"{render_dir}: no view {view!r} (it has {', '.join(summary.get('views', {}))})")
    t0 = float(summary["first_frame_time_s"])
    objects = _csv(render_dir / view / "truth.csv", dtype={"object_id": str, "lane": str})
    objects["time_s"] = objects["time_s"] - t0
    crossings = _csv(render_dir / "crossings_truth.csv", dtype={"vehicle_id": str, "signal_state": str,
                                                                 "link_state": str})
    crossings["time_s"] = crossings["time_s"] - t0
    violations = read_truth_events(render_dir, t0)
    return Truth(objects, crossings, violations, t0, int(summary["frames"]), float(summary["fps"]),
                 float(summary["speed_threshold_mps"]), summary)


def read_truth_events(render_dir: Path, first_frame_time_s: float) -> pd.DataFrame:
    """violations_truth.csv with its times (time_s, start_s, end_s) from the first frame."""
    violations = _csv(Path(render_dir) / "violations_truth.csv", dtype={"vehicle_id": str})
    for col in ("time_s", "start_s", "end_s"):
        violations[col] = violations[col] - first_frame_time_s
    return violations


def read_pipeline(out_dir: Path) -> PipelineOutput:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise GradingInputError(f"{out_dir}: no such pipeline output directory")
    detections = None
    if (out_dir / "detections.csv").is_file():
        detections = _csv(out_dir / "detections.csv", DETECTIONS)
    return PipelineOutput(
        tracks=_csv(out_dir / "tracks.csv", TRACKS, dtype={"track_id": str}),
        detections=detections,
        crossings=_csv(out_dir / "crossings.csv", CROSSINGS, dtype={"track_id": str, "signal_state": str}),
        violations=_csv(out_dir / "violations.csv", VIOLATIONS, dtype={"track_id": str}),
        counts=_csv(out_dir / "counts.csv", COUNTS),
    )


def _csv(path: Path, header: list[str] | None = None, dtype: dict | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise GradingInputError(f"{path}: missing")
    try:
        df = pd.read_csv(path, dtype=dtype, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise GradingInputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if header is not None and list(df.columns)[: len(header)] != header:
        raise GradingInputError(f"{path}: header is {','.join(map(str, df.columns))}, expected {','.join(header)}")
    return df
