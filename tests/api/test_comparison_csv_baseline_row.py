"""The comparison CSV's baseline row covers all the baseline's runs, as `signalwise compare`'s summary.csv does.

Found in review: the row came from the first candidate's pairing, so its n and mean covered only the seeds that
candidate shared with the baseline, and which candidate came first decided the baseline's figures. Here the
baseline ran seeds 1-3, one candidate seeds 1-2, another seeds 2-3.
"""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine, register_run, write_run_metrics

DELAY = {("fixed", 1): 40.0, ("fixed", 2): 50.0, ("fixed", 3): 75.0,
         ("actuated", 1): 35.0, ("actuated", 2): 44.0,
         ("webster", 2): 47.0, ("webster", 3): 70.0}


def test_the_baseline_row_covers_all_its_seeds_whichever_candidate_comes_first(tmp_path):
    url = migrated_sqlite(tmp_path / "store.db")
    engine = get_engine(url)
    for (controller, seed), delay in DELAY.items():
        sim = f"{controller}-{seed}"
        register_run(engine, sim, "corridor", controller, seed, {"seed": seed})
        write_run_metrics(engine, sim, {"avg_delay_s": delay})
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0))) as client:
        items = client.get("/api/v1/analytics/comparison/baseline-vs-ai").json()["items"]
        r = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"format": "csv"})
    assert r.status_code == 200, r.text
    # each candidate is compared over the seeds it shares with the baseline
    assert {i["controller"]: (i["seeds"], i["metrics"][0]["baseline"]["n"]) for i in items} == {
        "actuated": ([1, 2], 2), "webster": ([2, 3], 2)}
    rows = {row["controller"]: row for row in csv.DictReader(io.StringIO(r.text)) if row["metric"] == "avg_delay_s"}
    assert list(rows) == ["fixed", "actuated", "webster"]
    base = rows["fixed"]
    assert base["n"] == "3" and float(base["mean"]) == pytest.approx((40.0 + 50.0 + 75.0) / 3), base
    assert base["seeds"] == "1 2 3"
    assert (rows["actuated"]["n"], rows["webster"]["n"]) == ("2", "2")
    # the candidates' changes stay paired: against the baseline's mean over their own seeds
    assert float(rows["actuated"]["change_pct"]) == pytest.approx((79.0 / 90.0 - 1) * 100, abs=1e-3)
