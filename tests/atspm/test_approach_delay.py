"""Approach delay (UDOT ATSPM's): an arrival on red waits for the next begin green, one on green or yellow 0 s.

The expected figures are computed here from the definition and the raw events (each detector-on shifted by
distance / speed, its red-to-red cycle from the phase's begin reds), not from the code under test.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from atspm_cases import T0, make_events

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame
from signalwise.analytics.atspm.approach_delay import approach_delay

DIST_M, SPEED_MPS = 100.0, 10.0  # the advance detector: 10 s from the stop bar


def _signal_rows(phase: int, greens_s: list[float], green_s: float = 20.0, yellow_s: float = 4.0):
    """Begin green, begin yellow, end yellow and begin red clearance of each green of a phase on device J."""
    rows = []
    for g in greens_s:
        rows += [(g, "J", 1, phase), (g + green_s, "J", 8, phase), (g + green_s + yellow_s, "J", 9, phase),
                 (g + green_s + yellow_s, "J", 10, phase)]
    return rows


def _expected(rows, phase: int, channel: int, bin_s: float):
    """{bin start (s): (volume, arrivals on red, total delay s)} from the definition: cycles run from one begin
    red (10) to the next, an arrival (detector on + travel time) before its cycle's begin green waits for it."""
    reds = sorted(t for t, _, code, p in rows if code == 10 and p == phase)
    greens = sorted(t for t, _, code, p in rows if code == 1 and p == phase)
    out = defaultdict(lambda: [0, 0, 0.0])
    for t, _, code, p in rows:
        if code != 82 or p != channel:
            continue
        arrival = t + DIST_M / SPEED_MPS
        starts = [r for r in reds if r <= arrival]
        ends = [r for r in reds if r > arrival]
        if not starts or not ends:  # before the first begin red or in the open cycle: not measured
            continue
        start = starts[-1]
        green = min(g for g in greens if g > start)
        b = out[start // bin_s * bin_s]
        b[0] += 1
        if arrival < green:
            b[1] += 1
            b[2] += green - arrival
    return {k: tuple(v) for k, v in out.items()}


def _config():
    return detectors_from_frame(pd.DataFrame({
        "DeviceId": ["J", "J"], "Phase": [2, 4], "Parameter": [5, 6], "Function": ["Advance", "Advance"],
        "DistanceToStopbar_m": [DIST_M, DIST_M], "ApproachSpeed_mps": [SPEED_MPS, SPEED_MPS]}))


def _hand_log():
    # phase 2: greens at 0, 60, 120, 180 s (yellow at +20, red at +24); phase 4 the rest of each minute
    rows = _signal_rows(2, [0, 60, 120, 180]) + _signal_rows(4, [26, 86, 146, 206], green_s=30.0)
    # phase 2's advance detector (channel 5): arrivals 10 s later, on red, green, yellow, and outside any cycle
    for t in (5, 20, 35, 52, 72, 100, 101.5, 200):
        rows += [(t, "J", 82, 5), (t + 0.3, "J", 81, 5)]
    # phase 4's (channel 6): every arrival on green
    for t in (90, 100, 150, 160):
        rows += [(t, "J", 82, 6), (t + 0.3, "J", 81, 6)]
    return sorted(rows, key=lambda r: (r[0], r[2]))


def test_hand_log_delays_are_the_definition():
    rows = _hand_log()
    table = approach_delay(events_from_frame(make_events(rows)), _config(), bin_min=1)
    got = {((ts - pd.Timestamp(T0)).total_seconds(), ph): (v, r, d)
           for ts, ph, v, r, d in zip(table["TimeStamp"], table["Phase"], table["Volume"], table["Arrivals_On_Red"],
                                      table["Total_Delay_veh_h"] * 3600, strict=True)}
    expected = _expected(rows, 2, 5, 60)
    assert {k for k, ph in got if ph == 2} == set(expected)
    for start, (volume, on_red, delay_s) in expected.items():
        v, r, d = got[(start, 2)]
        assert (v, r) == (volume, on_red)
        assert d == pytest.approx(delay_s, abs=1e-6)
    assert sum(r for r in (e[1] for e in expected.values())) > 0, "the log has arrivals on red"
    # a bin's delay per vehicle counts its green and yellow arrivals with 0 s
    row2 = table[table["Phase"] == 2]
    assert np.allclose(row2["Delay_Per_Vehicle_s"], row2["Total_Delay_veh_h"] * 3600 / row2["Volume"])
    # phase 4: every arrival on green, no delay
    four = table[table["Phase"] == 4]
    assert four["Volume"].sum() == sum(v for v, _, _ in _expected(rows, 4, 6, 60).values()) > 0
    assert (four["Arrivals_On_Red"] == 0).all() and (four["Total_Delay_veh_h"] == 0).all()


def test_binned_by_the_cycle_start_as_udot_bins_it():
    """An arrival at 01:02 in the cycle that began (begin red) at 00:24 counts in the 00:00 bin."""
    rows = _signal_rows(2, [0, 60, 120]) + [(52, "J", 82, 5), (52.3, "J", 81, 5)]
    table = approach_delay(events_from_frame(make_events(rows)), _config(), bin_min=1)
    assert list(table["TimeStamp"]) == [pd.Timestamp(T0)]
    assert list(table["Volume"]) == [1] and list(table["Arrivals_On_Red"]) == [0]


def test_in_compute_all_with_complete_and_no_detectors_warning():
    rows = _hand_log()
    log = events_from_frame(make_events(rows))
    res = compute_all(log, _config(), bin_min=15, only=("approach_delay",))
    table = res.tables["approach_delay"]
    assert list(table.columns) == ["TimeStamp", "DeviceId", "Phase", "Volume", "Arrivals_On_Red",
                                   "Total_Delay_veh_h", "Delay_Per_Vehicle_s", "Complete"]
    expected = _expected(rows, 2, 5, 900)
    assert table.loc[table["Phase"] == 2, "Total_Delay_veh_h"].sum() * 3600 == pytest.approx(
        sum(d for _, _, d in expected.values()))
    bare = compute_all(log, None, only=("approach_delay",))
    assert "approach_delay" not in bare.tables
    assert any("need one (--detectors)" in w for w in bare.warnings)


# ---------------------------------------------------------------------------
# A real SUMO run
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sumo_run(tmp_path_factory):
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.run import execute_run

    run_dir = tmp_path_factory.mktemp("apdelay") / "run"
    execute_run(RunConfig(scenario="single", controller="fixed", duration_s=300.0, seed=1, evidence="inline"),
                run_dir)
    return run_dir


def _raw_expected(run_dir, bin_min: int):
    """{(bin start, device, phase): (volume, on red, delay s)} from events.csv and detectors.csv alone."""
    ev = pd.read_csv(run_dir / "events.csv", dtype={"DeviceId": str}, parse_dates=["TimeStamp"])
    det = pd.read_csv(run_dir / "detectors.csv", dtype={"DeviceId": str})
    det = det[det["Function"] == "Advance"]
    bin_s = bin_min * 60
    t0 = ev["TimeStamp"].min().normalize()
    ev["s"] = (ev["TimeStamp"] - t0).dt.total_seconds()
    out = defaultdict(lambda: [0, 0, 0.0])
    for (device, phase), dets in det.groupby(["DeviceId", "Phase"]):
        mine = ev[ev["DeviceId"] == device]
        ph = mine[mine["Parameter"] == phase]
        tens = ph[ph["EventId"] == 10]["s"]
        reds = np.unique(tens if len(tens) else ph[ph["EventId"] == 9]["s"])
        greens = np.sort(ph[ph["EventId"] == 1]["s"].to_numpy())
        for _, d in dets.iterrows():
            on = mine[(mine["EventId"] == 82) & (mine["Parameter"] == d["Parameter"])]["s"].to_numpy()
            for arrival in on + d["DistanceToStopbar_m"] / d["ApproachSpeed_mps"]:
                k = np.searchsorted(reds, arrival, "right")
                if k == 0 or k == len(reds):
                    continue
                start = reds[k - 1]
                green = greens[np.searchsorted(greens, start, "right")]
                b = out[(t0 + pd.Timedelta(seconds=start // bin_s * bin_s), device, int(phase))]
                b[0] += 1
                if arrival < green - 1e-6:
                    b[1] += 1
                    b[2] += green - arrival
    return out


def test_sumo_run_delay_is_the_raw_events_definition_and_agrees_with_arrivals_on_green(sumo_run):
    from signalwise.analytics.atspm import read_detectors, read_event_log

    log, cfg = read_event_log(sumo_run / "events.csv"), read_detectors(sumo_run / "detectors.csv")
    res = compute_all(log, cfg, bin_min=5, only=("approach_delay", "arrival_on_green"))
    delay, aog = res.tables["approach_delay"], res.tables["arrival_on_green"]
    expected = _raw_expected(sumo_run, 5)
    got = {(ts, d, int(p)): (v, r, s * 3600) for ts, d, p, v, r, s in zip(
        delay["TimeStamp"], delay["DeviceId"], delay["Phase"], delay["Volume"], delay["Arrivals_On_Red"],
        delay["Total_Delay_veh_h"], strict=True)}
    assert set(got) == set(expected)
    for key, (volume, on_red, delay_s) in expected.items():
        v, r, d = got[key]
        assert (v, r) == (volume, on_red), key
        assert d == pytest.approx(delay_s, abs=1e-3), key
    assert delay["Arrivals_On_Red"].sum() > 0 and delay["Total_Delay_veh_h"].sum() > 0
    # the same arrivals as arrivals on green: per phase over the run, the same count; those on red are not on green
    per = delay.groupby(["DeviceId", "Phase"])[["Volume", "Arrivals_On_Red", "Total_Delay_veh_h"]].sum()
    on_green = aog.groupby(["DeviceId", "Phase"])[["Total_Actuations", "Green_Actuations"]].sum()
    both = per.join(on_green, how="outer")
    assert (both["Volume"] == both["Total_Actuations"]).all()
    assert (both["Arrivals_On_Red"] <= both["Volume"] - both["Green_Actuations"]).all()
    full = both[both["Green_Actuations"] == both["Total_Actuations"]]  # 100 % on green: no delay
    assert (full["Total_Delay_veh_h"] == 0).all()


def test_api_lists_and_serves_it(tmp_path):
    """GET /api/v1/atspm lists the measure (needing detectors) and serves the same rows as `compute_all`."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from signalwise.api.routers import atspm as route
    from signalwise.store import Settings, bulk_insert_events, get_engine

    rows = _hand_log()
    engine = get_engine(f"sqlite:///{tmp_path / 'api.db'}")
    bulk_insert_events(engine, [(T0 + dt.timedelta(seconds=t), d, c, p) for t, d, c, p in rows])
    det = tmp_path / "det.csv"
    _config().frame[["DeviceId", "Phase", "Parameter", "Function", "DistanceToStopbar_m",
                     "ApproachSpeed_mps"]].to_csv(det, index=False)
    app = FastAPI()
    app.state.settings = Settings(detector_config=det)
    app.include_router(route.router)
    app.dependency_overrides[route.get_atspm_engine] = lambda: engine
    client = TestClient(app)
    listed = {m["name"]: m for m in client.get("/api/v1/atspm").json()["measures"]}
    assert listed["approach_delay"]["needs_detectors"] is True
    r = client.get("/api/v1/atspm/approach_delay", params={"device": "J", "phase": 2, "bin": 1})
    assert r.status_code == 200, r.text
    got = {(row["TimeStamp"], row["Arrivals_On_Red"], round(row["Total_Delay_veh_h"] * 3600, 3))
           for row in r.json()["rows"]}
    expected = {((T0 + dt.timedelta(seconds=start)).isoformat(), on_red, round(delay_s, 3))
                for start, (_, on_red, delay_s) in _expected(rows, 2, 5, 60).items()}
    assert got == expected
