"""The API reads a live run's timing revisions as `signalwise atspm` reads them, and says why a signal runs Free.

A live run logs a timing revision (its timing changed at run time) with a 131 naming the revision, not a plan. The
store's ATSPM routes (`GET /api/v1/atspm/plans`, with or without a window `start`, and `timing_revisions`) and the
live dashboard's charts (`GET /api/v1/live/atspm/...`, seeded with the plan in force by `pages.plan_in_force`) read
the run's signal model and leave the revisions out of the plans; `GET /api/v1/live/status` carries the runtime's
`coordination` (each signal's plan, or why it runs Free).

A real live `corridor` run under `coordinated` (SUMO in this process, at 80 simulated seconds a second: unpaced, a
loaded machine's loop ran ahead of the operator's changes, and a revision came a minute late), its yellow changed to 4.0 s at 40 s
and to 4.5 s at 170 s (at or above ITE's 3.3 s, as tests/runtime/test_live_revisions_and_free_reasons.py changes
it), stored with `--db`'s writer into SQLite, then served by uvicorn on 127.0.0.1 with the run attached.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite

from signalwise.analytics.atspm.charts import PLAN_BAND_COLOURS
from signalwise.core import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

CORRIDOR = ("J1", "J2", "J3", "J4", "J5")
DURATION_S = 400.0
#: the live charts' window: 5 simulated minutes back from the run's end, so it starts (at 100 s) after each
#: signal's first revision (45-52 s) and holds its second (180 s)
CHART_MINUTES = 5


def _share(png: bytes, colour: str) -> float:
    """The share of the image's pixels in `colour` (#rrggbb), within 3 of it in each channel: the PNG is written
    with a reduced palette, which moves a light grey band (#eeeeee) to #ececec."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    want = np.array([int(colour[k:k + 2], 16) for k in (1, 3, 5)])
    return float(np.mean(np.all(np.abs(rgb - want) <= 3, axis=1)))


def _revisions_logged(run_dir) -> set[tuple[str, float, int]]:
    """(device, time s, revision) of each 131 logged with no 132 at its instant: a revision's, as the runtime writes
    them (a pattern's 131 always has its 132 at its instant)."""
    events = list(read_events(run_dir / "events.csv"))
    cycles = {(e.device_id, e.time_s) for e in events if e.event_code == 132}
    return {(e.device_id, round(e.time_s, 1), e.parameter) for e in events
            if e.event_code == 131 and (e.device_id, e.time_s) not in cycles}


@pytest.fixture(scope="module")
def revised_run(tmp_path_factory):
    """The run, ended, with its store: (run directory, database URL, simulation id, runtime)."""
    from signalwise.store.live import LiveStoreWriter

    tmp = tmp_path_factory.mktemp("revised")
    db_url = migrated_sqlite(tmp / "store.db")
    run_dir = tmp / "live"
    store = LiveStoreWriter(db_url, "revised-live", run_dir / "store-buffer", 100_000, retry_initial_s=0.05)
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="coordinated", interval_s=600.0),
                     LiveOptions(speed=80.0, duration_s=DURATION_S, in_process=True, state_every_s=600), run_dir,
                     store=store)
    rt.open()
    steps = [(40.0, ch.TimingChange(timing={"yellow_s": 4.0})), (170.0, ch.TimingChange(timing={"yellow_s": 4.5}))]

    def operator():  # as an operator over the API: each change once the run's clock reaches its time
        for at_s, change in steps:
            while rt.stepper.t < at_s and not rt.ended:
                time.sleep(0.001)
            rt.submit(change, who="ops")

    thread = threading.Thread(target=operator)
    thread.start()
    rt.run()
    thread.join(timeout=30)
    assert rt.store_summary["waiting_rows"] == 0, rt.store_summary
    logged = _revisions_logged(run_dir)
    assert {d for d, _t, _n in logged} == set(CORRIDOR) and {n for _d, _t, n in logged} == {1, 2}, logged
    return run_dir, db_url, "revised-live", rt


@pytest.fixture(scope="module")
def served(revised_run):
    """An httpx client on the app serving the run's store, with the ended live run attached."""
    from signalwise.api import create_app
    from signalwise.store import Settings

    _run_dir, db_url, _sim, rt = revised_run
    app = create_app(Settings(database_url=db_url, cache_ttl_s=0))
    app.state.live = rt
    with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client


def _wall0(client, sim: str) -> dt.datetime:
    """The run's start on the store's clock (the wall clock): its patterns' 131s, logged at simulated 0 s."""
    r = client.get("/api/v1/atspm/plans", params={"simulation_id": sim})
    assert r.status_code == 200, r.text
    return min(dt.datetime.fromisoformat(row["Start"]) for row in r.json()["rows"])


@pytest.mark.slow  # a 400 s live run of five signals (5 s), then the API's answers
def test_the_stored_runs_plans_leave_its_timing_revisions_out_and_timing_revisions_lists_them(revised_run, served):
    run_dir, _db, sim, _rt = revised_run
    client = served
    assert "timing_revisions" in {m["name"] for m in client.get("/api/v1/atspm").json()["measures"]}

    r = client.get("/api/v1/atspm/plans", params={"simulation_id": sim})
    assert r.status_code == 200, r.text
    body = r.json()
    # one span per signal, the plan its log names with its cycle and offset, over the whole run; read as plans, the
    # revisions split it into three (Plan 1, Plan 1 again without a cycle, Plan 2)
    spans = {(row["DeviceId"], row["Start"], row["Plan"], row["PlanName"], row["Cycle_s"], row["Offset_s"])
             for row in body["rows"]}
    wall0 = _wall0(client, sim)
    assert spans == {(d, wall0.isoformat(), 1, "Plan 1", 90, 0) for d in CORRIDOR}, spans
    assert not [w for w in body["warnings"] if "signal model" in w], body["warnings"]

    r = client.get("/api/v1/atspm/timing_revisions", params={"simulation_id": sim})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert {(row["DeviceId"], round((dt.datetime.fromisoformat(row["TimeStamp"]) - wall0).total_seconds(), 1),
             row["Revision"]) for row in rows} == _revisions_logged(run_dir)
    assert len(rows) == r.json()["total"] == len(_revisions_logged(run_dir))
    csv_text = client.get("/api/v1/atspm/timing_revisions", params={"simulation_id": sim, "format": "csv"}).text
    assert csv_text.splitlines()[0].replace('"', "") == "DeviceId,TimeStamp,Revision"
    assert len(csv_text.splitlines()) == len(rows) + 1

    # a window starting after both revisions starts in the plan in force, not in the last revision
    start = wall0 + dt.timedelta(seconds=240)
    r = client.get("/api/v1/atspm/plans", params={"simulation_id": sim, "start": start.isoformat()})
    assert r.status_code == 200, r.text
    spans = {(row["DeviceId"], row["Start"], row["Plan"], row["PlanName"], row["Cycle_s"], row["Offset_s"])
             for row in r.json()["rows"]}
    assert spans == {(d, start.isoformat(), 1, "Plan 1", 90, 0) for d in CORRIDOR}, spans


@pytest.mark.slow
def test_the_live_charts_seed_their_window_with_the_plan_not_the_revision_and_band_no_revision(revised_run, served):
    from signalwise.core.eventlog import format_timestamp

    run_dir, _db, _sim, rt = revised_run
    since_s = rt.stepper.t - 60.0 * CHART_MINUTES
    assert all(t < since_s < 170 for d, t, n in _revisions_logged(run_dir) if n == 1), since_s
    for chart in ("pcd", "split_monitor"):
        r = served.get(f"/api/v1/live/atspm/{chart}", params={"intersection_id": "J1", "minutes": CHART_MINUTES})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
        # one plan over the window: its band in the first tint behind each panel, and no second band (a revision
        # read as a plan, Plan 2 from 180 s, is one: about a quarter of the image; a few grey pixels of the
        # drawing's own are that tint)
        assert _share(r.content, PLAN_BAND_COLOURS[0]) > 0.3, chart
        assert _share(r.content, PLAN_BAND_COLOURS[1]) < 0.01, chart

    from signalwise.api.routers.pages import live_revision_devices, plan_in_force

    assert live_revision_devices(run_dir) == frozenset(CORRIDOR)
    since = format_timestamp(since_s)
    # the last 131 before the window is revision 1's: the plan in force is the pattern logged at the start
    assert plan_in_force(run_dir / "events.csv", "J1", since, live_revision_devices(run_dir)) == [
        [since, "J1", "131", "1"], [since, "J1", "132", "90"], [since, "J1", "133", "0"]]


@pytest.mark.slow
def test_the_live_status_says_each_signals_coordination(revised_run, served):
    run_dir, _db, _sim, _rt = revised_run
    r = served.get("/api/v1/live/status")
    assert r.status_code == 200, r.text
    coordination = r.json()["coordination"]
    assert coordination == json.loads((run_dir / "run.json").read_text())["coordination"]
    assert set(coordination) == set(CORRIDOR)
    assert all(plan["cycle_s"] == 90 and plan["offset_s"] == 0 and len(plan["split_s"]) == len(plan["green_s"]) > 0
               for plan in coordination.values()), coordination
    schema = served.get("/openapi.json").json()["components"]["schemas"]
    assert {"CoordinationPlan", "NotCoordinated"} <= set(schema)
    assert "coordination" in schema["LiveStatus"]["properties"]


@pytest.mark.slow
def test_a_run_whose_signal_model_cannot_be_read_reads_every_131_as_a_plan_and_says_so(revised_run, served):
    run_dir, _db, sim, _rt = revised_run
    model = run_dir / "signal_model.json"
    aside = run_dir / "signal_model.json.aside"
    model.rename(aside)
    try:
        r = served.get("/api/v1/atspm/plans", params={"simulation_id": sim})
        revisions = served.get("/api/v1/atspm/timing_revisions", params={"simulation_id": sim})
    finally:
        aside.rename(model)
    assert r.status_code == 200, r.text
    assert [w for w in r.json()["warnings"] if f"{model} cannot be read" in w], r.json()["warnings"]
    assert {row["PlanName"] for row in r.json()["rows"]} == {"Plan 1", "Plan 2"}  # revision 2 read as a plan
    assert revisions.json()["total"] == 0 and revisions.json()["warnings"]
