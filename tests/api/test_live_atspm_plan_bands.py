"""The live dashboard's ATSPM charts show the coordination plan as `signalwise atspm` charts do (a band along the
time axis, `charts.plan_bands`), also once the run's start, where each signal logged its plan (131 with its 132
cycle and 133 offset), has left the window drawn: the window is seeded with the plan in force at its start, read
from events.csv as it grows (`pages.plan_in_force`).

A real live run of `corridor` under `coordinated` served on 127.0.0.1 (slow), and events.csv files written here
for how the plan in force is read."""

from __future__ import annotations

import datetime as dt
import io
import time

import numpy as np
import pytest
from PIL import Image
from support.loopback import serving_live
from support.migrated_databases import migrated_sqlite

from signalwise.analytics.atspm import compute_all, events_from_rows
from signalwise.analytics.atspm.charts import PLAN_BAND_COLOURS
from signalwise.api.routers.pages import plan_in_force
from signalwise.runtime.config import RunConfig
from signalwise.store import Settings

HEADER = "TimeStamp,DeviceId,EventId,Parameter\n"


def _tinted_share(png: bytes) -> float:
    """The share of the image's pixels in the first plan band's tint."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    tint = np.array([int(PLAN_BAND_COLOURS[0][k:k + 2], 16) for k in (1, 3, 5)])
    return float(np.mean(np.all(rgb == tint, axis=1)))


def test_the_plan_in_force_is_the_last_131_before_the_window_with_its_own_cycle_and_offset(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "2025-01-06 00:00:00.0,J1,131,1\n2025-01-06 00:00:00.0,J1,132,90\n"
                    "2025-01-06 00:00:00.0,J1,133,12\n2025-01-06 00:00:00.0,J2,131,3\n"
                    "2025-01-06 00:00:01.0,J1,1,2\n")
    since = "2025-01-06 00:10:00.0"
    assert plan_in_force(path, "J1", since) == [[since, "J1", "131", "1"], [since, "J1", "132", "90"],
                                                [since, "J1", "133", "12"]]
    assert plan_in_force(path, "J2", since) == [[since, "J2", "131", "3"]]  # no cycle nor offset logged with it
    assert plan_in_force(path, "J3", since) == []  # no plan logged: its span stays unknown
    assert plan_in_force(path, "J1", "2025-01-06 00:00:00.0") == []  # the 131 is in that window itself
    # the file grows: a plan change (Free: no cycle) is read, and the old cycle is not carried into it
    with path.open("a") as fh:
        fh.write("2025-01-06 00:20:00.0,J1,131,254\n2025-01-06 00:25:00.0,J1,132,12")  # a line still being written
    assert plan_in_force(path, "J1", "2025-01-06 00:30:00.0") == [["2025-01-06 00:30:00.0", "J1", "131", "254"]]
    with path.open("a") as fh:
        fh.write("0\n")  # the line ends: a cycle change within the Free span
    assert plan_in_force(path, "J1", "2025-01-06 00:30:00.0")[1:] == [["2025-01-06 00:30:00.0", "J1", "132", "120"]]
    assert plan_in_force(path, "J1", since)[0] == [since, "J1", "131", "1"]  # earlier windows keep their plan


def test_a_window_seeded_with_its_plan_has_the_plans_span_cycle_and_offset_from_its_start(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "2025-01-06 00:00:00.0,J1,131,1\n2025-01-06 00:00:00.0,J1,132,90\n"
                    "2025-01-06 00:00:00.0,J1,133,12\n")
    since = "2025-01-06 00:10:00.0"
    window = [["2025-01-06 00:10:01.0", "J1", "1", "2"], ["2025-01-06 00:10:30.0", "J1", "8", "2"],
              ["2025-01-06 00:10:34.0", "J1", "10", "2"], ["2025-01-06 00:11:31.0", "J1", "1", "2"]]
    for seeded, expected in ((plan_in_force(path, "J1", since), (1, 90, 12, "00:10:00")), ([], None)):
        log = events_from_rows(((dt.datetime.fromisoformat(r[0]), r[1], int(r[2]), int(r[3]))
                                for r in seeded + window), source="window")
        plans = compute_all(log, None, only=("plans",)).tables["plans"]
        got = plans.iloc[0]
        if expected is None:  # the window alone: its one span's plan is unknown, and no chart bands it
            assert got["Plan"] is None or got["Plan"] != got["Plan"], got.to_dict()
            continue
        assert (int(got["Plan"]), int(got["Cycle_s"]), int(got["Offset_s"])) == expected[:3], got.to_dict()
        assert str(got["Start"]).endswith(expected[3]), got.to_dict()


@pytest.mark.slow
def test_the_live_charts_band_the_plan_logged_before_their_window(tmp_path):
    settings = Settings(database_url=migrated_sqlite(tmp_path / "live.db"))
    cfg = RunConfig(scenario="corridor", controller="coordinated")
    with serving_live(settings, tmp_path / "run", cfg=cfg, speed=60.0, timeout_s=60) as (client, rt):
        deadline = time.monotonic() + 120
        while rt.stepper.t < 7 * 60 and time.monotonic() < deadline:  # 5 minutes drawn, 2 after the start
            time.sleep(0.2)
        assert rt.stepper.t >= 7 * 60, rt.stepper.t
        logged = (rt.run_dir / "events.csv").read_text().splitlines()
        assert "2025-01-06 00:00:00.0,J1,131,1" in logged  # the plan, logged when the run started only
        assert not [line for line in logged if ",J1,131," in line and not line.startswith("2025-01-06 00:00:00.")]
        shares = {}
        for chart in ("pcd", "split_monitor"):
            r = client.get(f"/api/v1/live/atspm/{chart}", params={"intersection_id": "J1", "minutes": 5})
            assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:200]
            shares[chart] = _tinted_share(r.content)
        assert all(share > 0.05 for share in shares.values()), shares  # the band behind each panel
