"""A live run's event 131s, read by ATSPM as the audit reads them, and the reason a live run's signal runs Free.

- A timing revision (a timing changed at run time) is logged as a 131 naming the revision, alone at its instant; a
  coordination pattern's 131 comes with a 132 and a 133. `signalwise atspm` reads only the patterns as plans
  (`plans.csv` and the charts' plan bands, by the rule the audit reads: `analytics.coordination_patterns`), and
  lists each revision in `timing_revisions.csv` and as a dashed line on the charts.
- A signal `coordinated` cannot coordinate, or one switched away from it, runs the Free pattern: the live run says
  why in its log, run.json and its status (`coordination`), in the words a batch run's metrics.json gives.

Live runs in this process, unpaced, on the built-in `corridor` (90 s cycle) and on test_coordinated_runs.py's
arterial; the revisions are sent mid-run as an operator sends them."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd
import pytest
from support.atspm_drawn import drawn_plots
from test_coordinated_runs import OFFSETS_S, _arterial
from test_live_plan_events import CORRIDOR, _audit_clean, _live, _operator

from signalwise.analytics.atspm.charts import PLAN_DIVIDER_LABEL
from signalwise.core import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.run import execute_run

DAY = dt.datetime(2025, 1, 6)  # a run's log is dated so


def _revision_131s(run_dir) -> dict[str, list[tuple[float, int]]]:
    """Per device, (time s, revision) of each 131 logged with no 132 at its instant: the revisions, read here from
    the log as the runtime writes them (a pattern's 131 always has its 132 at its instant)."""
    events = list(read_events(run_dir / "events.csv"))
    cycles = {(e.device_id, e.time_s) for e in events if e.event_code == 132}
    out: dict[str, list] = {}
    for e in events:
        if e.event_code == 131 and (e.device_id, e.time_s) not in cycles:
            out.setdefault(e.device_id, []).append((e.time_s, e.parameter))
    return out


def _atspm(run_dir, out):
    """The charts `signalwise atspm RUN_DIR` draws, and its plans.csv and timing_revisions.csv."""
    plots = drawn_plots(run_dir, out)
    return (plots, pd.read_csv(out / "plans.csv", dtype={"DeviceId": str}),
            pd.read_csv(out / "timing_revisions.csv", dtype={"DeviceId": str}, parse_dates=["TimeStamp"]))


def _revised_run(tmp_path, controller: str, duration_s: float):
    rt = _live(tmp_path / "live", controller, duration_s=duration_s)
    thread = _operator(rt, [(40.0, ch.TimingChange(timing={"yellow_s": 4.0})),
                            (170.0, ch.TimingChange(timing={"yellow_s": 4.5}))])
    rt.run()
    thread.join(timeout=30)
    revisions = _revision_131s(rt.run_dir)
    assert set(revisions) == set(CORRIDOR), revisions
    for tls, logged in revisions.items():  # each signal took the last one (the first, unless passed over)
        assert logged and logged[-1][1] == 2 and {n for _t, n in logged} <= {1, 2}, (tls, logged)
    return rt, revisions


def _revision_rows(table: pd.DataFrame) -> dict[str, list[tuple[float, int]]]:
    out: dict[str, list] = {}
    for dev, at, n in zip(table["DeviceId"], table["TimeStamp"], table["Revision"], strict=True):
        out.setdefault(dev, []).append(((at - DAY).total_seconds(), int(n)))
    return out


@pytest.mark.slow  # a 320 s live run of five signals, then its ATSPM: about 5 s
def test_a_coordinated_live_runs_timing_revisions_are_no_plans_in_atspm_and_are_marked_as_revisions(tmp_path):
    from signalwise.analytics.atspm.charts import REVISION_LEGEND, revision_label

    rt, revisions = _revised_run(tmp_path, "coordinated", 320)
    plots, plans, listed = _atspm(rt.run_dir, tmp_path / "atspm")
    # one plan per signal, the one its log names with its cycle and offset, over the whole run
    spans = plans.drop_duplicates(["DeviceId", "Start"])
    assert sorted(spans["DeviceId"]) == sorted(CORRIDOR)
    assert set(zip(spans["Start"], spans["Plan"], spans["PlanName"], spans["Cycle_s"], spans["Offset_s"],
                   strict=True)) == {("2025-01-06 00:00:00", 1, "Plan 1", 90, 0)}
    assert _revision_rows(listed) == revisions  # each revision's 131, as logged
    # the split monitor: no plan divider, a dashed line at each revision, and its legend says what the line is
    chart = plots["split_monitor_J1.png"]
    for ax in chart.axes:
        vlines = ax.record.get("vlines", [])
        assert PLAN_DIVIDER_LABEL not in [label for label, _x in vlines]
        assert vlines == [(revision_label(n), pytest.approx(t / 60)) for t, n in revisions["J1"]]
    assert REVISION_LEGEND in chart.record["legends"]
    _audit_clean(rt.run_dir)  # the audit holds each green to the revision in force, by the same rule


def test_an_uncoordinated_live_runs_timing_revisions_draw_no_plan_bands(tmp_path):
    """`fixed` logs no pattern: its devices' one plan span is unknown (no band on any chart), however many timing
    revisions it took."""
    from signalwise.analytics.atspm.charts import revision_label

    rt, revisions = _revised_run(tmp_path, "fixed", 220)
    plots, plans, listed = _atspm(rt.run_dir, tmp_path / "atspm")
    assert set(plans["PlanName"]) == {"unknown"} and plans["Plan"].isna().all()
    assert _revision_rows(listed) == revisions
    for name in ("split_monitor_J3.png", "pcd_J3.png"):
        for ax in plots[name].axes:
            assert ax.record.get("bands", []) == [], name
            assert ax.record.get("vlines", []) == [(revision_label(n), pytest.approx(t / 60))
                                                   for t, n in revisions["J3"]], name


def test_a_live_run_says_why_a_signal_runs_free_as_a_batch_run_does(tmp_path, caplog):
    """37 s + 3 s splits leave 34 s of green after the safety profile's 6 s change, below a 36 s minimum green:
    `coordinated` cannot coordinate the arterial's signals. The batch run gives the reason in metrics.json's
    `coordination` and its warnings; the live run gives the same in run.json's and its status's `coordination`, and
    the same warning in its log."""
    timing = {"min_green_s": 36, "max_green_s": 60}
    net, routes = _arterial(tmp_path)
    batch = execute_run(RunConfig(net=net, routes=[routes], controller="coordinated", duration_s=30, emissions=False,
                                  step_length_s=1.0, timing=timing), tmp_path / "batch").metrics
    assert set(batch["coordination"]) == set(OFFSETS_S)
    assert all("not_coordinated" in plan for plan in batch["coordination"].values())
    said = [w for w in batch["warnings"] if "runs the uncoordinated plan fixed runs" in w]
    assert len(said) == len(OFFSETS_S)

    with caplog.at_level(logging.WARNING, logger="signalwise"):
        rt = _live(tmp_path / "live", "coordinated", duration_s=30, scenario=None, net=net, routes=[routes],
                   step_length_s=1.0, timing=timing)
        assert rt.status()["coordination"] == batch["coordination"]  # from the start, before the first tick
        rt.run()
    assert json.loads((rt.run_dir / "run.json").read_text())["coordination"] == batch["coordination"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(logged.count(line) == 1 for line in said), logged


def test_a_signal_switched_away_from_coordinated_says_it_runs_free_because_of_its_controller(tmp_path, caplog):
    rt = _live(tmp_path / "live", "coordinated", duration_s=120)
    with caplog.at_level(logging.WARNING, logger="signalwise"):
        rt.submit(ch.ControllerChange(controller="fixed", intersections=["J2"]), who="ops")
        rt.run()
    coordination = json.loads((rt.run_dir / "run.json").read_text())["coordination"]
    why = "its controller 'fixed' runs no coordination pattern"
    assert coordination["J2"] == {"not_coordinated": why}
    assert all(coordination[tls]["cycle_s"] == 90 and coordination[tls]["offset_s"] == 0
               for tls in CORRIDOR if tls != "J2")
    assert rt.status()["coordination"] == coordination
    assert [r.getMessage() for r in caplog.records if why in r.getMessage()] == [
        f"signal 'J2' runs the Free pattern (254) from t={t:.0f} s: {why}"
        for t, _code, param in [(e.time_s, e.event_code, e.parameter) for e in read_events(rt.run_dir / "events.csv")
                                if e.device_id == "J2" and e.event_code == 131 and e.parameter == 254]]
