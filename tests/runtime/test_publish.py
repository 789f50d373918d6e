"""Runs written into the store (SQLite always, PostgreSQL when reachable) and read back through the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.runtime.compare import compare_controllers
from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import build_records, publish_runs, simulation_id
from signalwise.store.settings import Settings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "compare-test"
    result = compare_controllers(RunConfig(scenario="single", duration_s=300), ["fixed", "actuated"], [1, 2], out,
                                 workers=2)
    assert not result.failures
    return result


def test_records_follow_the_ingestion_format(runs):
    d = runs.run_dirs[("actuated", 1)]
    records = list(build_records(d, runs.run_dirs[("fixed", 1)]))
    assert len(records) == 5  # 300 s in 60 s intervals, one signal
    r = records[-1]
    assert r["simulation_id"] == "compare-test.actuated-s1" == simulation_id(d)
    assert r["timestamp"] == "2025-01-06T00:04:00Z" and r["intersection_id"] == "C"
    assert {s["direction"] for s in r["signals"]} == {"north", "south", "east", "west"}
    total_crossed = sum(s["vehicles_crossed"] for rec in records for s in rec["signals"])
    assert total_crossed > 100
    assert any(rec["metrics"]["fuel_saved"] != 0 for rec in records)  # compared with the fixed run
    for s in r["signals"]:
        assert sum(s["vehicle_counts"].values()) == s["vehicles_crossed"]
        assert 0 <= s["green_time_allocated"] <= 60


@pytest.mark.slow
def test_published_runs_answer_the_analytics_api(runs, db_url):
    n = publish_runs(sorted(runs.run_dirs.values()), db_url)
    assert n == 4 * 5
    assert publish_runs([runs.run_dirs[("fixed", 1)]], db_url) == 5  # re-publishing replaces, never duplicates
    app = create_app(Settings(database_url=db_url))
    with TestClient(app) as client:
        sim = simulation_id(runs.run_dirs[("actuated", 1)])
        r = client.get(f"/api/v1/analytics/simulation/{sim}/summary")
        assert r.status_code == 200, r.text
        r = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"scenario": "single"})
        assert r.status_code == 200, r.text
        assert "actuated" in r.text
        # 4 runs x 5 intervals; re-publishing the fixed run replaced its 5 records
        assert client.get("/api/v1/system/info").json()["row_counts"]["intersection_records"] == 20


def test_comparisons_pair_seeds_and_runs_published_alone_still_compare_with_their_baseline(runs, db_url):
    from signalwise.store import get_engine
    from signalwise.store.keys import create_key

    # the baseline on its own first, then one candidate run (seed 1 only), in separate calls
    publish_runs([runs.run_dirs[("fixed", 1)], runs.run_dirs[("fixed", 2)]], db_url)
    publish_runs([runs.run_dirs[("actuated", 1)]], db_url)
    _, key = create_key(get_engine(db_url), "t", ["read"])
    with TestClient(create_app(Settings(database_url=db_url)), headers={"X-API-Key": key}) as client:
        (entry,) = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"scenario": "single"}).json()[
            "items"]
        assert entry["seeds"] == entry["baseline_seeds"] == [1]  # never seed 1 against seeds 1 and 2
        assert entry["baseline_only_seeds"] == [2] and entry["unpaired_seeds"] == []
        delay = next(m for m in entry["metrics"] if m["metric"] == "avg_delay_s")
        assert delay["baseline"]["n"] == delay["candidate"]["n"] == 1
        sim = simulation_id(runs.run_dirs[("actuated", 1)])
        series = client.get(f"/api/v1/analytics/time-series/{sim}").json()["items"]
        assert any(row.get("fuel_saved") for row in series), series[:2]  # not 0: the stored baseline was found
        listed = client.get("/api/v1/analytics/simulations", params={"scenario": "single"}).json()
        assert listed["total"] == 3 and {i["controller"] for i in listed["items"]} == {"fixed", "actuated"}
        assert client.get("/api/v1/analytics/simulations", params={"controller": "fixed"}).json()["total"] == 2


@pytest.mark.slow
def test_a_directory_run_again_and_published_again_is_stored_as_the_new_run_alone(tmp_path, db_url):
    """A run directory deleted and run again under the same name (another controller, a shorter window) is
    another run: publishing it leaves none of the first run's intervals, hi-res events or metrics under its name.
    The same directory published twice stays one run (the test above)."""
    import shutil

    from sqlalchemy import func, select

    from signalwise.core.eventlog import read_events
    from signalwise.runtime.run import execute_run
    from signalwise.store import get_engine
    from signalwise.store.tables import HiresEvent, IntersectionRecordRow, Run, RunMetric

    run_dir = tmp_path / "runs" / "nightly"
    execute_run(RunConfig(scenario="single", controller="fixed", duration_s=300, out_dir=tmp_path), run_dir)
    publish_runs([run_dir], db_url)
    shutil.rmtree(run_dir)
    execute_run(RunConfig(scenario="single", controller="max-pressure", duration_s=120, out_dir=tmp_path), run_dir)
    publish_runs([run_dir], db_url)
    engine = get_engine(db_url)
    sim = simulation_id(run_dir)
    with engine.connect() as conn:
        run = conn.execute(select(Run.id, Run.controller).where(Run.simulation_id == sim)).one()
        records = conn.execute(select(func.count()).select_from(IntersectionRecordRow)
                               .where(IntersectionRecordRow.run_id == run.id)).scalar_one()
        events = conn.execute(select(func.count()).select_from(HiresEvent)
                              .where(HiresEvent.simulation_id == sim)).scalar_one()
        metrics = dict(conn.execute(select(RunMetric.name, RunMetric.value).where(RunMetric.run_id == run.id)).all())
    assert run.controller == "max-pressure"
    assert records == len(list(build_records(run_dir, None))) == 2  # 120 s in 60 s intervals, not the first run's 5
    assert events == len(list(read_events(run_dir / "events.csv")))
    import json

    shown = json.loads((run_dir / "metrics.json").read_text())["network"]
    assert metrics["avg_delay_s"] == pytest.approx(shown["avg_delay_s"])
    assert set(metrics) <= {*(k for k, v in shown.items() if isinstance(v, int | float)), "co2_g", "fuel_ml",
                            "safety_violations"}


@pytest.mark.slow
def test_comparisons_pair_runs_of_the_same_conditions_and_a_run_without_emissions_saved_nothing(tmp_path, db_url):
    """A 120 s run paired with a 180 s run at 1.5x demand of the same seed was compared as if they had met the
    same traffic; a run recorded without emissions stored 0 fuel and so "saved" all of its baseline's."""
    from signalwise.analytics.comparisons import baseline_vs_ai, environmental_impact
    from signalwise.runtime.run import execute_run
    from signalwise.store import get_engine

    def run(name, controller, **over):
        d = tmp_path / "runs" / name
        execute_run(RunConfig(scenario="single", controller=controller, out_dir=tmp_path, **over), d)
        publish_runs([d], db_url)
        return simulation_id(d)

    short = {"duration_s": 120}
    heavy = {"duration_s": 180, "demand_scale": 1.5}
    base_short = run("fixed-short", "fixed", **short)
    first = run("act-short", "actuated", **short)
    again = run("act-short-again", "actuated", **short)  # the same conditions again: it stands for both
    base_heavy = run("fixed-heavy", "fixed", **heavy)
    no_emissions = run("act-heavy", "actuated", emissions=False, **heavy)
    engine = get_engine(db_url)
    entries = baseline_vs_ai(engine, "fixed", scenario="single")
    assert len(entries) == 2, entries
    by_duration = {e["conditions"]["duration_s"]: e for e in entries}
    a, b = by_duration[120.0], by_duration[180.0]
    assert a["simulation_ids"] == sorted([base_short, again]) and a["superseded"] == [first]
    assert b["simulation_ids"] == sorted([base_heavy, no_emissions]) and b["superseded"] == []
    assert b["conditions"]["demand_scale"] == 1.5 and a["conditions"]["demand_scale"] == 1.0
    assert "fuel_ml" in {m["metric"] for m in a["metrics"]}
    assert "fuel_ml" not in {m["metric"] for m in b["metrics"]}  # unknown for the run without emissions
    (impact,) = [e for e in environmental_impact(engine, "fixed", scenario="single")
                 if e["simulation_id"] == no_emissions]
    assert impact["baseline_simulation_id"] == base_heavy and impact["baseline_fuel_ml"] > 0
    assert impact["fuel_ml"] is None and impact["fuel_ml_saved_pct"] is None and impact["co2_g_saved"] is None
    assert impact["recorded_fuel_saved"] == 0.0  # its records store no saving either
    (paired,) = [e for e in environmental_impact(engine, "fixed", scenario="single") if e["simulation_id"] == again]
    assert paired["baseline_simulation_id"] == base_short and paired["fuel_ml"] > 0
