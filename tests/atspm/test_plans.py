"""Per-plan statistics: the figures of the per-cycle, per-arrival and per-pedestrian rows, grouped by the
coordination plan (event 131) in force, checked against a grouping done here by the known plan spans."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from atspm_cases import T0, make_events

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame
from signalwise.analytics.atspm import cycles as C
from signalwise.analytics.atspm import measures as M

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # support.*
from support import atspm_synthetic as synthetic  # noqa: E402


def plans(log, cfg=None):
    return compute_all(log, cfg, only=("plans",)).tables["plans"]


@pytest.fixture(scope="module")
def planned():
    """A 1-hour synthetic log of two devices; the first changes to plan 1 at 06:10 and to Free (254) at 06:30."""
    frame, config = synthetic.synthetic_events(n_devices=2, hours=1, seed=7)
    a, b = sorted(frame["DeviceId"].unique())
    t0 = frame["TimeStamp"].min()
    changes = [t0 + pd.Timedelta(minutes=10), t0 + pd.Timedelta(minutes=30)]
    extra = pd.DataFrame({"TimeStamp": changes, "DeviceId": [a, a], "EventId": [131, 131], "Parameter": [1, 254]})
    log = events_from_frame(pd.concat([frame, extra], ignore_index=True))
    return log, detectors_from_frame(config), a, b, [np.datetime64(c, "us").astype(np.int64) for c in changes]


def _label(t_us, changes):
    """The plan each time falls in, by the spans this test built: unknown, then plan 1, then 254."""
    return np.where(t_us < changes[0], "unknown", np.where(t_us < changes[1], "Plan 1", "Free"))


def _us(col):
    return col.to_numpy("datetime64[us]").astype(np.int64)


def test_per_plan_figures_are_the_rows_grouped_by_the_plan_in_force(planned):
    log, cfg, a, b, changes = planned
    table = plans(log, cfg)
    name = np.array(log.devices, dtype=object)

    # the spans: unknown before the first 131, then one per 131, the last to the device's last event
    first, last = (pd.Timestamp(x, unit="us") for x in (log.time_us[log.device == log.devices.index(a)].min(),
                                                        log.time_us[log.device == log.devices.index(a)].max()))
    c1, c2 = (pd.Timestamp(c, unit="us") for c in changes)
    spans = table[table["DeviceId"] == a][["Start", "End", "Plan", "PlanName"]].drop_duplicates()
    assert spans.values.tolist() == [[first, c1, None, "unknown"], [c1, c2, 1, "Plan 1"], [c2, last, 254, "Free"]]

    # split failures: every complete cycle, in the plan in force at its begin green
    (_, dev, _, phase, _, go, ro, green_us), _ = M.split_failure_cycles(log, cfg)
    cyc = pd.DataFrame({"DeviceId": name[dev], "Phase": phase, "PlanName": _label(green_us, changes),
                        "Fail": ((go >= np.float32(0.8)) & (ro >= np.float32(0.8))).astype(int)})
    cyc.loc[cyc["DeviceId"] == b, "PlanName"] = "unknown"  # no 131 on the other device
    want = cyc.groupby(["DeviceId", "PlanName", "Phase"]).agg(Cycles=("Fail", "size"), Split_Failures=("Fail", "sum"))
    # arrivals on green: the PCD's arrivals, in the plan in force at the start of their cycle
    arr, _ = C.pcd(log, cfg, 0.0, True)
    arr = arr.assign(PlanName=_label(_us(arr["CycleStart"]), changes), Green=arr["Signal"] == "green")
    arr.loc[arr["DeviceId"] == b, "PlanName"] = "unknown"
    want = want.join(arr.groupby(["DeviceId", "PlanName", "Phase"]).agg(Arrivals=("Green", "size"),
                                                                         Green_Arrivals=("Green", "sum")))
    # pedestrian delay: each pedestrian, in the plan in force when the walk begins
    peds = C.ped_delay(log)
    assert set(peds["Method"]) == {"call"}  # a plain mean, no cycle weights
    peds = peds.assign(PlanName=_label(_us(peds["TimeStamp"]), changes))
    peds.loc[peds["DeviceId"] == b, "PlanName"] = "unknown"
    want = want.join(peds.groupby(["DeviceId", "PlanName", "Phase"]).agg(
        Ped_Count=("PedDelay_s", "size"), Mean_PedDelay_s=("PedDelay_s", "mean"),
        Max_PedDelay_s=("PedDelay_s", "max")))
    want = want.fillna({"Ped_Count": 0}).astype({"Ped_Count": int})

    got = table.assign(Phase=table["Phase"].astype(int)).set_index(["DeviceId", "PlanName", "Phase"])
    assert len(got) == len(want) == 8 * 4  # 8 phases in each of 3 spans of one device, 1 span of the other
    got = got.loc[want.index]
    for c in ("Cycles", "Split_Failures", "Arrivals", "Green_Arrivals", "Ped_Count"):
        assert got[c].tolist() == want[c].tolist(), c
    for c in ("Mean_PedDelay_s", "Max_PedDelay_s"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), equal_nan=True)
    np.testing.assert_allclose(got["Percent_AOG"], 100 * want["Green_Arrivals"] / want["Arrivals"])
    # every plan has cycles, failures, arrivals and pedestrians to attribute: a wrong split shows
    per_plan = want.loc[a].groupby("PlanName").sum()
    assert (per_plan[["Cycles", "Split_Failures", "Arrivals", "Green_Arrivals", "Ped_Count"]] > 0).all().all()
    # and the plan's totals are the whole log's
    assert got["Cycles"].sum() == len(green_us) and got["Arrivals"].sum() == len(arr)


def test_a_log_without_131_has_one_unknown_span_per_device(tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app

    frame, config = synthetic.synthetic_events(n_devices=2, hours=0.5, seed=3)
    events, detectors = tmp_path / "events.csv", tmp_path / "detectors.csv"
    frame.to_csv(events, index=False)
    config.to_csv(detectors, index=False)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["atspm", "--events", str(events), "--detectors", str(detectors), "--out", str(out),
                                 "--no-charts"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "plans.csv", parse_dates=["Start", "End"])
    assert set(table["PlanName"]) == {"unknown"} and table["Plan"].isna().all()
    spans = table[["DeviceId", "Start", "End"]].drop_duplicates()
    frame = frame.assign(DeviceId=frame["DeviceId"].astype(table["DeviceId"].dtype))
    whole = frame.groupby("DeviceId")["TimeStamp"].agg(["min", "max"]).reset_index()
    assert spans.values.tolist() == whole.values.tolist()  # one span per device, its first event to its last
    cycles = pd.read_csv(out / "split_failure_cycles.csv")
    assert table["Cycles"].sum() == len(cycles) and table["Split_Failures"].sum() == cycles["Split_Failure"].sum()


def ped_rows(device, offset=0):
    """Three pedestrians, one in each 100-s third: pushes at 10, 110, 210 s, walks at 40, 150, 260 s."""
    rows = [(10, device, 90, 2), (40, device, 21, 2), (47, device, 22, 2),
            (110, device, 90, 2), (150, device, 21, 2), (157, device, 22, 2),
            (210, device, 90, 2), (260, device, 21, 2), (267, device, 22, 2), (300, device, 82, 9)]
    return [(t + offset, *rest) for t, *rest in rows]


def test_a_plan_changing_back_to_the_same_number_is_two_spans():
    rows = [(0, "1", 131, 3), (100, "1", 131, 5), (200, "1", 131, 3), *ped_rows("1")]
    table = plans(events_from_frame(make_events(rows)))
    s = pd.Timedelta(seconds=1)
    assert table[["Start", "End", "Plan", "PlanName", "Phase"]].values.tolist() == [
        [T0, T0 + 100 * s, 3, "Plan 3", 2], [T0 + 100 * s, T0 + 200 * s, 5, "Plan 5", 2],
        [T0 + 200 * s, T0 + 300 * s, 3, "Plan 3", 2]]
    # push 10 -> walk 40, push 110 -> walk 150, push 210 -> walk 260: one pedestrian in each span
    assert table[["Ped_Count", "Mean_PedDelay_s", "Max_PedDelay_s"]].values.tolist() == [
        [1, 30.0, 30.0], [1, 40.0, 40.0], [1, 50.0, 50.0]]


def test_a_131_on_one_device_leaves_another_device_alone():
    rows = [(0, "1", 131, 3), (100, "1", 131, 255), *ped_rows("1"), *ped_rows("2")]
    table = plans(events_from_frame(make_events(rows)))
    one, two = table[table["DeviceId"] == "1"], table[table["DeviceId"] == "2"]
    assert one["PlanName"].tolist() == ["Plan 3", "Flash"] and one["Ped_Count"].tolist() == [1, 2]
    s = pd.Timedelta(seconds=1)
    assert two[["Start", "End", "Plan", "PlanName", "Ped_Count", "Max_PedDelay_s"]].values.tolist() == [
        [T0 + 10 * s, T0 + 300 * s, None, "unknown", 3, 50.0]]
    assert two["Mean_PedDelay_s"].item() == pytest.approx(40.0)


def test_a_device_without_phases_still_has_its_spans():
    table = plans(events_from_frame(make_events([(0, "1", 82, 9), (50, "1", 131, 254), (90, "1", 82, 9)])))
    assert table[["Plan", "PlanName", "Phase", "Cycles", "Ped_Count"]].values.tolist() == [
        [None, "unknown", None, 0, 0], [254, "Free", None, 0, 0]]


def test_the_api_serves_the_plans_table(tmp_path):
    import datetime as dt

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from signalwise.api.routers import atspm as route
    from signalwise.store import Settings, bulk_insert_events, get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'api.db'}")
    rows = [(0, "7", 131, 4), (150, "7", 131, 254), *ped_rows("7"), *ped_rows("8")]
    bulk_insert_events(engine, [(T0 + dt.timedelta(seconds=t), d, c, p) for t, d, c, p in rows])
    app = FastAPI()
    app.state.settings = Settings(detector_config=None)
    app.include_router(route.router)
    app.dependency_overrides[route.get_atspm_engine] = lambda: engine
    client = TestClient(app)
    assert "plans" in [m["name"] for m in client.get("/api/v1/atspm").json()["measures"]]
    r = client.get("/api/v1/atspm/plans", params={"phase": 2})
    assert r.status_code == 200, r.text
    got = [(x["DeviceId"], x["Plan"], x["PlanName"], x["Ped_Count"]) for x in r.json()["rows"]]
    # device 7: walks at 40 s under plan 4, at 150 and 260 s under Free (a walk at the 131's instant is in the new plan)
    assert got == [("7", 4, "Plan 4", 1), ("7", 254, "Free", 2), ("8", None, "unknown", 3)]
