"""The point of each true vehicle that a track's anchor stands for, so a track is graded like with like.

A track's road position (`tracks.csv` x_m, y_m) is the camera file's
`anchor` point of its box: `center`, `bottom` (bottom centre, where an
oblique camera sees the vehicle touch the road) or `front` (the box edge it
drives towards: the front bumper, top-down). The truth's x_m, y_m is the
vehicle's centre, 2.25 m behind the front bumper of a 4.5 m car: graded
against the centre, a `front` track sat past the 2 m match and counted as a
miss and a false positive on every frame. So the truth point is the same
point of the vehicle: its centre, its front bumper (`front_x_m`, `front_y_m`,
SUMO's own position), or the bottom centre of its pixel box taken to the road
through the view's homography (`render.json`), as the pipeline takes its box's.

Which anchor the pipeline used is in its `summary.json` (`anchor`); a run
written before that key existed is graded against centres, as the bench's
camera files (`anchor: center`) were.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .files import GradingInputError, Truth

ANCHORS = ("bottom", "center", "front")
#: the anchor a pipeline run that does not say its own is graded with (the grader's only one before `anchor`)
DEFAULT_ANCHOR = "center"


def pipeline_anchor(out_dir: Path) -> str | None:
    """The anchor the pipeline run used (its summary.json), or None when it does not say."""
    try:
        summary = json.loads((Path(out_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    anchor = summary.get("anchor") if isinstance(summary, dict) else None
    return anchor if anchor in ANCHORS else None


def truth_at_anchor(truth: Truth, view: str, anchor: str) -> pd.DataFrame:
    """The truth's objects with x_m, y_m moved to the point of each vehicle that `anchor` stands for."""
    objects = truth.objects
    if anchor == "center":
        return objects
    if anchor == "front":
        if not {"front_x_m", "front_y_m"} <= set(objects.columns):
            raise GradingInputError(f"{view}/truth.csv has no front_x_m, front_y_m (a render older than them): the "
                                    "pipeline ran with anchor front; render again to grade it")
        return objects.assign(x_m=objects["front_x_m"].astype(float), y_m=objects["front_y_m"].astype(float))
    if anchor == "bottom":
        net_to_px = np.asarray(truth.summary["views"][view]["net_to_px"], dtype=float)
        bottom_px = np.c_[(objects["x1"].to_numpy(float) + objects["x2"].to_numpy(float)) / 2,
                          objects["y2"].to_numpy(float)]
        road = _apply(np.linalg.inv(net_to_px), bottom_px)
        return objects.assign(x_m=road[:, 0], y_m=road[:, 1])
    raise GradingInputError(f"anchor {anchor!r}: not one of {', '.join(ANCHORS)}")


def _apply(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """A homography applied to N points (N x 2)."""
    p = np.c_[xy, np.ones(len(xy))] @ h.T
    return p[:, :2] / p[:, 2:3]
