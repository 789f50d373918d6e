"""Violation precision and recall against the events the simulation recorded.

A reported violation is right when it names the right vehicle and kind at
the right time. The vehicle comes from the report's track: where that track
was at the report's time (tracks.csv), and which vehicle was there (the
truth). Red-light reports must fall within `RED_LIGHT_TOLERANCE_S` of the
true crossing; speeding reports within the vehicle's time over the
threshold, give or take `SPEEDING_TOLERANCE_S`. Each true event is matched
at most once: a second report of the same event is a false positive, as a
second ticket would be.

A speeding event the simulation established before the first frame and
that goes on in the video is neither to be found nor a mistake to report:
the camera saw only its end. A report of it counts neither way
(`unscored_reports`), as a detector's box on a "don't care" object does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

RED_LIGHT_TOLERANCE_S = 2.0
SPEEDING_TOLERANCE_S = 2.0
#: a track point this close to a vehicle (road metres) is that vehicle
VEHICLE_MATCH_M = 3.0
KINDS = ("red_light", "speeding")


@dataclass(frozen=True)
class ViolationGrade:
    kind: str
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    missed: int
    truth_events: int
    injected_events: int
    reported: int
    #: reports of an event that began before the first frame (neither right nor wrong)
    unscored_reports: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def vehicle_of_report(report: pd.Series, tracks: pd.DataFrame, objects: pd.DataFrame, fps: float) -> str | None:
    """The vehicle a reported violation refers to: its track's position at the report time, and who was there."""
    rows = tracks[tracks["track_id"] == str(report["track_id"])]
    if rows.empty:
        return None
    row = rows.iloc[int(np.argmin(np.abs(rows["time_s"].to_numpy(float) - float(report["time_s"]))))]
    frame = int(row["frame"])
    here = objects[(objects["frame"] == frame) & (objects["kind"] == "vehicle")]
    if here.empty:
        return None
    d = np.hypot(here["x_m"].to_numpy(float) - float(row["x_m"]), here["y_m"].to_numpy(float) - float(row["y_m"]))
    i = int(np.argmin(d))
    return str(here.iloc[i]["object_id"]) if d[i] <= VEHICLE_MATCH_M else None


def grade_violations(truth_events: pd.DataFrame, reports: pd.DataFrame, tracks: pd.DataFrame,
                     objects: pd.DataFrame, fps: float, duration_s: float) -> dict[str, ViolationGrade]:
    """Precision and recall per kind over the events within the video (times from the first frame)."""
    in_video = (truth_events["time_s"] >= 0) & (truth_events["time_s"] < duration_s)
    seen_ending = (truth_events["time_s"] < 0) & (truth_events["end_s"] >= 0)
    out = {}
    for kind in KINDS:
        of_kind = truth_events["kind"] == kind
        ev = truth_events[in_video & of_kind].reset_index(drop=True)
        before = truth_events[seen_ending & of_kind].reset_index(drop=True)
        rep = reports[reports["kind"] == kind]
        used: set[int] = set()
        tp = unscored = 0
        tol = RED_LIGHT_TOLERANCE_S if kind == "red_light" else SPEEDING_TOLERANCE_S
        for _i, r in rep.sort_values("time_s").iterrows():
            vid = vehicle_of_report(r, tracks, objects, fps)
            free = [c for c in _candidates(ev, r, vid, tol) if c not in used]
            if free:
                used.add(free[0])
                tp += 1
            elif len(_candidates(before, r, vid, tol)):
                unscored += 1
        scored = len(rep) - unscored
        out[kind] = ViolationGrade(kind, precision=tp / scored if scored else float("nan"),
                                   recall=tp / len(ev) if len(ev) else float("nan"), true_positives=tp,
                                   false_positives=scored - tp, missed=len(ev) - len(used), truth_events=len(ev),
                                   injected_events=int(ev["injected"].sum()) if len(ev) else 0, reported=len(rep),
                                   unscored_reports=unscored)
    return out


def _candidates(events: pd.DataFrame, report: pd.Series, vehicle: str | None, tol_s: float) -> pd.Index:
    """The events `report` may be of: its vehicle's (else its approach's) within the event's time, give or take."""
    t = float(report["time_s"])
    window = (events["start_s"] - tol_s <= t) & (t <= events["end_s"] + tol_s)
    if vehicle is not None:
        return events.index[window & (events["vehicle_id"] == vehicle)]
    return events.index[window & (events["approach"] == report["approach"])]  # no track to follow
