"""Stop-line counts per approach: the pipeline's counts against every vehicle that crossed."""

from __future__ import annotations

import pandas as pd


def grade_counts(truth_crossings: pd.DataFrame, counts: pd.DataFrame, duration_s: float) -> dict[str, dict]:
    """Per approach: true crossings within the video, counted, and the relative error.

    Times are seconds from the first frame on both sides. Every interval the
    pipeline reports is summed, so a count made late (in the next interval) is
    no error here; per-interval errors are reported beside.
    """
    truth = truth_crossings[(truth_crossings["time_s"] >= 0) & (truth_crossings["time_s"] < duration_s)]
    true_by = truth.groupby("approach").size().to_dict()
    counted_by = counts.groupby("approach")["count"].sum().to_dict()
    out: dict[str, dict] = {}
    for approach in sorted(set(true_by) | set(counted_by)):
        true_n = int(true_by.get(approach, 0))
        counted = int(counted_by.get(approach, 0))
        out[approach] = {"truth": true_n, "counted": counted,
                         "relative_error": (counted - true_n) / true_n if true_n else float("nan")}
    return out


def interval_errors(truth_crossings: pd.DataFrame, counts: pd.DataFrame, interval_s: float) -> pd.DataFrame:
    """Per approach and interval: true crossings and the pipeline's count."""
    t = truth_crossings[truth_crossings["time_s"] >= 0].copy()
    t["interval_start_s"] = (t["time_s"] // interval_s) * interval_s
    truth = t.groupby(["interval_start_s", "approach"]).size().rename("truth")
    counted = counts.groupby(["interval_start_s", "approach"])["count"].sum().rename("counted")
    return pd.concat([truth, counted], axis=1).fillna(0).astype(int).reset_index()
