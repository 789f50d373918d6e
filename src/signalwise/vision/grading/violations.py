"""Violation precision and recall against the events the simulation recorded.

A reported violation is right when it names the right vehicle and kind at
the right time. The vehicle comes from the report's track: where that track
was at the report's time (tracks.csv), and which vehicle was there (the
truth). Red-light reports must fall within `RED_LIGHT_TOLERANCE_S` of the
true crossing; speeding reports within the vehicle's time over the
threshold, give or take `SPEEDING_TOLERANCE_S`. Each true event is matched
at most once: a second report of the same event is a false positive, as a
second ticket would be.

Which events the clip holds (`clip_events`) follows the truth's own rule
for speeding, applied to the frames alone: over the threshold, in view, for
`sustain_s` within the clip. So a speeder that went over during the warm-up
and is seen speeding for at least `sustain_s` of the video is a true event
(the camera could establish it from the frames; a report of it is right,
missing it is a miss), even though the simulation dated it before the first
frame. One the clip shows for less than `sustain_s` is neither to be found
nor a mistake to report: a report of it counts neither way
(`unscored_reports`), as a detector's box on a "don't care" object does.
One over before the first frame, or a red-light crossing before it, is not
in the clip at all. `signalwise vision render` prints its event totals by
the same rule, so its summary and the grade agree.
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
#: the render's default `sustain_s` (render.json says which one a render used)
SUSTAIN_S = 1.0
#: float slack on times the simulation rounded to the millisecond
_EPS_S = 1e-6


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
    #: reports of an event the clip shows for less than `sustain_s` (neither right nor wrong)
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


def clip_events(truth_events: pd.DataFrame, fps: float, duration_s: float,
                sustain_s: float = SUSTAIN_S) -> tuple[pd.Series, pd.Series]:
    """(in the clip, seen too briefly): masks over `truth_events` (times from the first frame).

    A red-light event is in the clip when its crossing is. A speeding event is
    when the clip shows it over the threshold for `sustain_s`: from the later
    of its start and the first frame to the earlier of its end and the last
    frame. One that overlaps the clip for less is seen too briefly: neither
    owed nor a mistake to report.
    """
    t, start, end = (truth_events[c].astype(float) for c in ("time_s", "start_s", "end_s"))
    red = truth_events["kind"] == "red_light"
    speeding = truth_events["kind"] == "speeding"
    last_frame_s = duration_s - 1.0 / fps
    shown_s = np.minimum(end, last_frame_s) - np.maximum(start, 0.0)
    overlaps = speeding & (end >= -_EPS_S) & (start <= last_frame_s + _EPS_S)
    shown = overlaps & (shown_s >= sustain_s - _EPS_S)
    in_clip = (red & (t >= 0) & (t < duration_s)) | shown
    return in_clip, overlaps & ~shown


def clip_event_counts(truth_events: pd.DataFrame, fps: float, duration_s: float,
                      sustain_s: float = SUSTAIN_S) -> dict[str, dict[str, int]]:
    """Per kind: the events in the clip, how many of them injected, and how many were seen too briefly."""
    in_clip, brief = clip_events(truth_events, fps, duration_s, sustain_s)
    out = {}
    for kind in KINDS:
        of_kind = truth_events["kind"] == kind
        out[kind] = {"events": int((in_clip & of_kind).sum()),
                     "injected_events": int(truth_events.loc[in_clip & of_kind, "injected"].astype(int).sum()),
                     "seen_too_briefly": int((brief & of_kind).sum())}
    return out


def grade_violations(truth_events: pd.DataFrame, reports: pd.DataFrame, tracks: pd.DataFrame,
                     objects: pd.DataFrame, fps: float, duration_s: float,
                     sustain_s: float = SUSTAIN_S) -> dict[str, ViolationGrade]:
    """Precision and recall per kind over the events in the clip (`clip_events`; times from the first frame)."""
    in_clip, brief = clip_events(truth_events, fps, duration_s, sustain_s)
    out = {}
    for kind in KINDS:
        of_kind = truth_events["kind"] == kind
        ev = truth_events[in_clip & of_kind].reset_index(drop=True)
        before = truth_events[brief & of_kind].reset_index(drop=True)
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
