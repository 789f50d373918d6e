"""Tracking accuracy on the road plane: MOTA and IDF1 (py-motmetrics) and HOTA.

Tracks (`tracks.csv`) carry a point, not a box, so a track and a vehicle are
compared by their distance in road metres: a match within `MATCH_M` (a car is
4.5 m long; its centre and a point anywhere on it are within about 2 m).
HOTA's similarity is 1 - d / (2 * MATCH_M), so HOTA's alpha = 0.5 threshold is
the same 2 m and its localisation score falls linearly with the distance.

HOTA is written here, following Luiten et al., "HOTA: A Higher Order Metric
for Evaluating Multi-Object Tracking" (IJCV 2021) and TrackEval's reference
implementation step for step (alpha from 0.05 to 0.95, a global alignment
score to break ties in the per-frame assignment, AssA weighted per true
positive): TrackEval pulls `opencv-python` and `pycocotools` beside our
headless OpenCV, and py-motmetrics has no HOTA. Its tests check hand-computed
cases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from .matching import distance_matrix, match_with_ignored

MATCH_M = 2.0
ALPHAS = np.arange(0.05, 0.99, 0.05)
_EPS = np.finfo("float").eps


@dataclass(frozen=True)
class FramePairs:
    """One frame: truth ids, hypothesis ids and their similarity (truth x hypotheses), in [0, 1]."""

    truth_ids: np.ndarray
    hyp_ids: np.ndarray
    similarity: np.ndarray
    distance_m: np.ndarray


@dataclass(frozen=True)
class TrackingGrade:
    mota: float
    idf1: float
    hota: float
    deta: float
    assa: float
    id_switches: int
    false_positives: int
    misses: int
    truth_points: int
    match_m: float

    def as_dict(self) -> dict:
        return asdict(self)


def frame_pairs(objects: pd.DataFrame, tracks: pd.DataFrame, care: np.ndarray, match_m: float = MATCH_M,
                frames: range | None = None) -> list[FramePairs]:
    """Per frame: the care vehicles, the tracks not sitting on a don't-care object, and their similarity."""
    objects = objects.assign(care=care)
    if frames is not None:
        objects = objects[objects["frame"].isin(frames)]
        tracks = tracks[tracks["frame"].isin(frames)]
    truth_by_frame = {f: g for f, g in objects.groupby("frame")}
    tracks_by_frame = {f: g for f, g in tracks.groupby("frame")}
    out = []
    for f in sorted(set(truth_by_frame) | set(tracks_by_frame)):
        truth = truth_by_frame.get(f)
        hyps = tracks_by_frame.get(f)
        care_rows = truth[truth["care"]] if truth is not None else objects.iloc[0:0]
        other = truth[~truth["care"]] if truth is not None else objects.iloc[0:0]
        if hyps is None:
            hyps = tracks.iloc[0:0]
        hxy = hyps[["x_m", "y_m"]].to_numpy(float)
        d_care = distance_matrix(care_rows[["x_m", "y_m"]].to_numpy(float), hxy)
        if len(other) and len(hyps):
            # tracks on pedestrians or on vehicles mostly out of frame are left out, as MOT17 does with distractors
            d_other = distance_matrix(other[["x_m", "y_m"]].to_numpy(float), hxy)
            _pairs, ignored = match_with_ignored(_similarity(d_care, match_m), _similarity(d_other, match_m), 0.5)
            keep = np.array([c not in ignored for c in range(len(hyps))], dtype=bool)
            hyps, d_care = hyps[keep], d_care[:, keep]
        out.append(FramePairs(care_rows["object_id"].to_numpy(str), hyps["track_id"].to_numpy(str),
                              _similarity(d_care, match_m), d_care))
    return out


def _similarity(distance_m: np.ndarray, match_m: float) -> np.ndarray:
    return np.clip(1.0 - distance_m / (2.0 * match_m), 0.0, 1.0)


def clear_mot(frames: list[FramePairs], match_m: float = MATCH_M) -> dict:
    """MOTA, IDF1 and their counts, by py-motmetrics on our distance matrices."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    gt_number: dict[str, int] = {}
    hyp_number: dict[str, int] = {}  # py-motmetrics keeps ids as floats: number them
    for fp in frames:
        dist = np.where(fp.distance_m <= match_m, fp.distance_m, np.nan)
        acc.update([gt_number.setdefault(g, len(gt_number)) for g in fp.truth_ids],
                   [hyp_number.setdefault(h, len(hyp_number)) for h in fp.hyp_ids], dist)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "num_false_positives",
                                                        "num_misses", "num_objects"], name="run")
    row = summary.iloc[0]
    return {"mota": float(row["mota"]), "idf1": float(row["idf1"]), "id_switches": int(row["num_switches"]),
            "false_positives": int(row["num_false_positives"]), "misses": int(row["num_misses"]),
            "truth_points": int(row["num_objects"])}


def hota(frames: list[FramePairs], alphas: np.ndarray = ALPHAS) -> dict:
    """HOTA, DetA and AssA averaged over the alpha thresholds (and per alpha)."""
    gt_index = {g: i for i, g in enumerate(sorted({g for fp in frames for g in fp.truth_ids}))}
    hyp_index = {h: i for i, h in enumerate(sorted({h for fp in frames for h in fp.hyp_ids}))}
    n_gt, n_hyp = len(gt_index), len(hyp_index)
    gt_count = np.zeros(n_gt)
    hyp_count = np.zeros(n_hyp)
    potential = np.zeros((n_gt, n_hyp))
    indexed = []
    for fp in frames:
        g = np.array([gt_index[x] for x in fp.truth_ids], dtype=int)
        h = np.array([hyp_index[x] for x in fp.hyp_ids], dtype=int)
        sim = np.asarray(fp.similarity, dtype=float).reshape(len(g), len(h))
        indexed.append((g, h, sim))
        gt_count[g] += 1
        hyp_count[h] += 1
        if len(g) and len(h):
            # each pair's share of the similarity it could have, as in TrackEval
            denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
            potential[g[:, None], h[None, :]] += np.where(denom > _EPS, sim / np.where(denom > _EPS, denom, 1), 0)
    alignment = potential / np.maximum(gt_count[:, None] + hyp_count[None, :] - potential, _EPS)
    tp = np.zeros(len(alphas))
    fn = np.zeros(len(alphas))
    fpos = np.zeros(len(alphas))
    matches = np.zeros((len(alphas), n_gt, n_hyp))
    for g, h, sim in indexed:
        if not len(g) or not len(h):
            fn += len(g)
            fpos += len(h)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], h[None, :]] * sim))
        for a, alpha in enumerate(alphas):
            ok = sim[rows, cols] >= alpha - _EPS
            r, c = rows[ok], cols[ok]
            tp[a] += len(r)
            fn[a] += len(g) - len(r)
            fpos[a] += len(h) - len(r)
            matches[a, g[r], h[c]] += 1
    assa = np.zeros(len(alphas))
    for a in range(len(alphas)):
        ass = matches[a] / np.maximum(1, gt_count[:, None] + hyp_count[None, :] - matches[a])
        assa[a] = (matches[a] * ass).sum() / max(1.0, tp[a])
    deta = tp / np.maximum(1.0, tp + fn + fpos)
    per_alpha = np.sqrt(deta * assa)
    return {"hota": float(per_alpha.mean()), "deta": float(deta.mean()), "assa": float(assa.mean()),
            "hota_per_alpha": [round(float(x), 4) for x in per_alpha]}


def grade_tracking(objects: pd.DataFrame, tracks: pd.DataFrame, care: np.ndarray, match_m: float = MATCH_M,
                   frames: range | None = None) -> TrackingGrade:
    pairs = frame_pairs(objects, tracks, care, match_m, frames)
    mot = clear_mot(pairs, match_m)
    h = hota(pairs)
    return TrackingGrade(mota=mot["mota"], idf1=mot["idf1"], hota=h["hota"], deta=h["deta"], assa=h["assa"],
                         id_switches=mot["id_switches"], false_positives=mot["false_positives"],
                         misses=mot["misses"], truth_points=mot["truth_points"], match_m=match_m)
