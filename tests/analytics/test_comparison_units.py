"""The comparison endpoints say what each figure is and in what unit: two sources, two scopes."""

from __future__ import annotations

import httpx
import pytest
from support.loopback import serving_port

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import publish_runs, simulation_id
from signalwise.runtime.run import execute_run
from signalwise.store.settings import Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("units")
    db = f"sqlite:///{tmp / 'store.db'}"
    dirs = {}
    for controller in ("fixed", "actuated"):
        for seed in (1, 2):
            d = tmp / f"{controller}-s{seed}"
            execute_run(RunConfig(scenario="single", controller=controller, seed=seed, duration_s=120, out_dir=tmp), d)
            dirs[(controller, seed)] = d
    publish_runs(sorted(dirs.values()), db)
    with serving_port(create_app(Settings(database_url=db))) as port:
        yield f"http://127.0.0.1:{port}", dirs


def test_environmental_impact_names_the_unit_and_scope_of_each_saving(served):
    base, dirs = served
    r = httpx.get(f"{base}/api/v1/analytics/environmental-impact",
                  params={"simulation_id": simulation_id(dirs[("actuated", 1)])}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    (entry,) = body["items"]
    assert entry["fuel_ml"] > 0 and entry["recorded_fuel_saved"] is not None
    fields = body["fields"]
    assert fields["recorded_fuel_saved"].startswith("l: ") and "approach edges" in fields["recorded_fuel_saved"]
    assert fields["fuel_ml_saved"].startswith("ml: ") and "network-wide" in fields["fuel_ml_saved"]
    assert set(fields) >= {k for k in entry if k.endswith(("_saved", "_saved_pct", "fuel_ml", "co2_g"))}


def test_baseline_vs_ai_gives_each_metric_its_unit_and_meaning(served):
    base, _ = served
    r = httpx.get(f"{base}/api/v1/analytics/comparison/baseline-vs-ai", params={"scenario": "single"}, timeout=30)
    assert r.status_code == 200, r.text
    (entry,) = r.json()["items"]
    rows = {m["metric"]: m for m in entry["metrics"]}
    assert rows["throughput"]["unit"] == "share 0-1" and "not a count" in rows["throughput"]["description"]
    assert rows["throughput_veh"]["unit"] == "veh"
    assert rows["avg_wait_time"]["unit"] == "s" and "not per vehicle" in rows["avg_wait_time"]["description"]
    assert rows["avg_wait_s"]["unit"] == "s" and "per departed vehicle" in rows["avg_wait_s"]["description"]
    assert all(m["unit"] is not None for m in entry["metrics"]), [m["metric"] for m in entry["metrics"]
                                                                   if m["unit"] is None]
