"""Speed error: each track's speed against the speed of the vehicle it sits on, frame by frame."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .matching import match
from .tracking import FramePairs


@dataclass(frozen=True)
class SpeedGrade:
    rmse_mps: float
    bias_mps: float  # mean of (track - truth): positive when the pipeline reads too fast
    p95_abs_error_mps: float
    pairs: int
    #: share of matched track points that had a speed at all (a track needs about a second before it has one)
    coverage: float

    def as_dict(self) -> dict:
        return asdict(self)


def speed_pairs(frames: list[FramePairs], truth_speed: dict[tuple[int, str], float],
                track_speed: dict[tuple[int, str], float], frame_numbers: list[int]) -> np.ndarray:
    """(track speed, truth speed) for every track point matched to a vehicle (similarity >= 0.5)."""
    out = []
    for f, fp in zip(frame_numbers, frames, strict=True):
        for r, c in match(fp.similarity, 0.5):
            out.append((track_speed.get((f, fp.hyp_ids[c]), np.nan), truth_speed[(f, fp.truth_ids[r])]))
    return np.array(out, dtype=float).reshape(-1, 2)


def grade_speed(pairs: np.ndarray) -> SpeedGrade:
    have = ~np.isnan(pairs[:, 0])
    err = pairs[have, 0] - pairs[have, 1]
    if not len(err):
        return SpeedGrade(float("nan"), float("nan"), float("nan"), 0, 0.0)
    return SpeedGrade(rmse_mps=float(np.sqrt(np.mean(err ** 2))), bias_mps=float(np.mean(err)),
                      p95_abs_error_mps=float(np.percentile(np.abs(err), 95)), pairs=int(len(err)),
                      coverage=float(have.mean()))
