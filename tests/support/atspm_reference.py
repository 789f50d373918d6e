"""Run the PyPI `atspm` package (ODOT) on the same input, and compare its tables with ours.

Used by the agreement tests and `bench/atspm_bench.py`; needs the `dev` extra
(atspm + duckdb<2). Comparison is per bin: the same keys, and values equal
within floating-point tolerance (atspm computes several ratios in float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from signalwise.analytics.atspm.measures import OCCUPANCY_DECIMALS


#: the atspm aggregations that correspond to our agreement-bound measures
def atspm_aggregations(fill_in_missing: bool = True, by_approach: bool = True, red_time_s: int = 5,
                       latency_s: float = 0.0) -> list[dict]:
    return [
        {"name": "actuations", "params": {"fill_in_missing": fill_in_missing}},
        {"name": "arrival_on_green", "params": {"latency_offset_seconds": latency_s}},
        {"name": "platoon_ratio", "params": {}},
        {"name": "split_failures", "params": {"red_time": red_time_s, "red_occupancy_threshold": 0.80,
                                              "green_occupancy_threshold": 0.80, "by_approach": by_approach}},
        {"name": "yellow_red", "params": {"latency_offset_seconds": latency_s}},
        {"name": "terminations", "params": {}},
        {"name": "ped", "params": {}},
    ]


def run_atspm(events, config, bin_min: int = 15, only: tuple[str, ...] | None = None, **kw) -> dict:
    """Run atspm on a DataFrame (or a file path) of events; return {aggregation name: DataFrame}
    (`only` those named)."""
    from atspm import SignalDataProcessor

    aggs = [a for a in atspm_aggregations(**kw) if only is None or a["name"] in only]
    with SignalDataProcessor(raw_data=events, detector_config=config, bin_size=bin_min, verbose=0,
                             aggregations=aggs) as proc:
        proc.load()
        proc.aggregate()
        return {a["name"]: proc.conn.sql(f"SELECT * FROM {a['name']}").df() for a in aggs}


@dataclass
class Agreement:
    measure: str
    rows_theirs: int
    rows_ours: int
    rows_compared: int
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches


KEYS = {
    "actuations": ["TimeStamp", "DeviceId", "Detector"],
    "arrival_on_green": ["TimeStamp", "DeviceId", "Phase"],
    "platoon_ratio": ["TimeStamp", "DeviceId", "Phase"],
    "split_failures": ["TimeStamp", "DeviceId", "Phase"],
    "split_failures_by_lane": ["TimeStamp", "DeviceId", "Detector", "Phase"],
    "yellow_red": ["TimeStamp", "DeviceId", "Phase", "Signal_State", "Red_Offset"],
    "terminations": ["TimeStamp", "DeviceId", "Phase", "PerformanceMeasure"],
    "ped": ["TimeStamp", "DeviceId", "Phase"],
}
VALUES = {
    "actuations": ["Total"],
    "arrival_on_green": ["Total_Actuations", "Percent_AOG"],
    "platoon_ratio": ["Total_Actuations", "Green_Actuations", "Percent_AOG", "Green_Seconds", "Green_Ratio",
                      "Platoon_Ratio", "Arrival_Type"],
    "split_failures": ["Green_Time", "Green_Occupancy", "Red_Occupancy", "Split_Failure"],
    "split_failures_by_lane": ["Green_Time", "Green_Occupancy", "Red_Occupancy", "Split_Failure"],
    "yellow_red": ["Count"],
    "terminations": ["Total"],
    "ped": ["PedServices", "PedActuation"],
}


ROUNDED_OCCUPANCIES = ("Green_Occupancy", "Red_Occupancy")


def _norm(df, keys):
    import pandas as pd

    df = df.copy()
    df["TimeStamp"] = pd.to_datetime(df["TimeStamp"]).astype("datetime64[us]")
    df["DeviceId"] = df["DeviceId"].astype(str)
    for k in keys:
        if k not in ("TimeStamp", "DeviceId", "PerformanceMeasure"):
            df[k] = df[k].astype(float)
    return df


def compare(measure: str, theirs, ours, rtol: float = 1e-5, atol: float = 1e-6,
            ours_only_ok=None) -> Agreement:
    """Same rows (keys) and values within tolerance.

    `ours_only_ok(row_frame) -> bool mask` marks rows we report that atspm
    leaves out by design (e.g. bins with no arrival on green); any other
    extra or missing row is a mismatch.
    """
    keys, values = KEYS[measure], VALUES[measure]
    if "Percent_AOG" in values and "Percent_AOG" in theirs:  # atspm's is a fraction (0-1), ours a percent
        theirs = theirs.assign(Percent_AOG=theirs["Percent_AOG"].astype(float) * 100)
    t, o = _norm(theirs, keys), _norm(ours, keys)
    m = t.merge(o, on=keys, how="outer", suffixes=("_t", "_o"), indicator=True)
    problems = []
    only_t = m[m["_merge"] == "left_only"]
    if len(only_t):
        problems.append(f"{measure}: {len(only_t)} rows only in atspm, e.g. {only_t[keys].head(3).to_dict('records')}")
    only_o = m[m["_merge"] == "right_only"]
    if len(only_o):
        allowed = ours_only_ok(only_o.rename(columns={f"{v}_o": v for v in values})) if ours_only_ok else \
            np.zeros(len(only_o), bool)
        bad = only_o[~np.asarray(allowed, bool)]
        if len(bad):
            problems.append(f"{measure}: {len(bad)} rows only in signalwise, e.g. {bad[keys].head(3).to_dict('records')}")
    both = m[m["_merge"] == "both"]
    for v in values:
        a = both[f"{v}_t"].to_numpy(float)
        b = both[f"{v}_o"].to_numpy(float)
        # ours are rounded to `OCCUPANCY_DECIMALS` (atspm's carry float32 noise): within half their last place
        near = max(atol, 0.5 * 10.0 ** -OCCUPANCY_DECIMALS + 1e-9) if v in ROUNDED_OCCUPANCIES else atol
        close = np.isclose(a, b, rtol=rtol, atol=near, equal_nan=True)
        if not close.all():
            i = np.flatnonzero(~close)
            ex = both.iloc[i[:3]][keys + [f"{v}_t", f"{v}_o"]].to_dict("records")
            problems.append(f"{measure}.{v}: {len(i)} of {len(both)} bins differ, e.g. {ex}")
    return Agreement(measure, len(t), len(o), len(both), problems)
