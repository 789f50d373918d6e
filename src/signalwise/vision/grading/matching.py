"""One-to-one matching of what the pipeline saw to what was there, frame by frame.

Hungarian assignment (scipy) on a score; a pair below the threshold is no
match. Objects the truth marks as "don't care" (pedestrians, vehicles mostly
outside the frame) are matched after the real ones: a detection on one of them
is neither right nor wrong, as in the MOT benchmarks' distractor handling.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a (N x 4) and b (M x 4), each x1, y1, x2, y2."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between points a (N x 2) and b (M x 2)."""
    a = np.asarray(a, dtype=float).reshape(-1, 2)
    b = np.asarray(b, dtype=float).reshape(-1, 2)
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)


def match(score: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Pairs (row, column) maximising the total score, each with score >= minimum."""
    if score.size == 0:
        return []
    valid = score >= minimum
    rows, cols = linear_sum_assignment(np.where(valid, score, -1.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if valid[r, c]]


def match_with_ignored(score_care: np.ndarray, score_ignore: np.ndarray, minimum: float) -> tuple[
        list[tuple[int, int]], set[int]]:
    """Match columns (predictions) to care rows first, then the rest to ignore rows.

    Returns the care matches and the set of prediction columns that fell on
    a don't-care object (to be left out of the false positives).
    """
    pairs = match(score_care, minimum)
    used = {c for _r, c in pairs}
    left = [c for c in range(score_care.shape[1] if score_care.ndim == 2 else 0) if c not in used]
    ignored: set[int] = set()
    if left and score_ignore.size:
        sub = score_ignore[:, left]
        for _r, c in match(sub, minimum):
            ignored.add(left[c])
    return pairs, ignored
