"""`GET /api/v1/analytics/comparison/baseline-vs-ai` gives each figure the verdict `signalwise compare` gives it, by
the same rule, and its p-values under summary.csv's names (`p_welch`, `p_paired`) beside the names existing clients
read (`p_value`, `p_value_paired`): a data platform joins the CLI's output with the API's without mapping names or
working the verdict out again.

The fast test stores runs whose figures make each verdict (better, worse, no clear change, too few to judge) and
compares the API's row with `compare.summarize` over the same figures; the slow one runs `signalwise compare --db`
for real and compares the API with the summary.csv it wrote.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.runtime.compare import METRICS, summarize
from signalwise.store import Settings, get_engine, register_run, write_run_metrics

SEEDS = (1, 2, 3)


def _network(controller: str, seed: int) -> dict:
    """A run's metrics: seeds differ (their demand), the controllers' difference within a seed is small and steady."""
    shift = {"fixed": 0.0, "max-pressure": 1.0}[controller]
    base = 30.0 + 10 * seed
    values = {key: base for key, *_ in METRICS}
    values.update(
        avg_delay_s=base - 6.0 * shift * (1 + 0.05 * seed),  # better: p < 0.05, -15 %
        avg_travel_time_s=base + 4.0 * shift * (1 + 0.05 * seed),  # worse
        throughput_veh=1000.0 * seed + 2.0 * shift * (1 + 0.05 * seed),  # significant, but +0.1 %: no clear change
        emergency_delay_s=base - 9.0 * shift,  # over 2 emergency vehicles a seed: too few to judge
        vehicles_total=400 + seed, never_inserted=0, emergency_vehicles=2, pedestrians=50,
        fallback_fraction=0.0)
    return values


@pytest.fixture
def client(tmp_path):
    url = migrated_sqlite(tmp_path / "store.db")
    engine = get_engine(url)
    for controller in ("fixed", "max-pressure"):
        for seed in SEEDS:
            sim = f"{controller}-s{seed}"
            register_run(engine, sim, "corridor", controller, seed, {"seed": seed})
            write_run_metrics(engine, sim, _network(controller, seed))
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0))) as c:
        yield c


def test_the_api_gives_each_figure_the_verdict_and_p_values_compare_gives_it(client):
    runs = {(c, s): {"network": _network(c, s), "safety": {"violations": 0}} for c in ("fixed", "max-pressure")
            for s in SEEDS}
    cli = summarize(["fixed", "max-pressure"], list(SEEDS), runs)["metrics"]
    (item,) = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"scenario": "corridor"}).json()["items"]
    api = {row["metric"]: row for row in item["metrics"]}
    said = {}
    for key, *_ in METRICS:
        e, row = cli[key]["controllers"]["max-pressure"], api[key]
        assert row["verdict"] == e.get("verdict") and row["verdict_note"] == e.get("no_verdict"), (key, row, e)
        assert row["lower_is_better"] is cli[key]["lower_is_better"], key
        for name in ("p_welch", "p_paired"):  # summary.csv's value is the API's to 4 significant digits
            assert (row[name] is None) == (e[name] is None), (key, name)
            if e[name] is not None:
                assert float(f"{row[name]:.4g}") == e[name], (key, name, row[name], e[name])
        assert (row["p_value"], row["p_value_paired"]) == (row["p_welch"], row["p_paired"])  # the same two values
        said[key] = row["verdict"] or row["verdict_note"]
    assert said["avg_delay_s"] == "better" and said["avg_travel_time_s"] == "worse"
    assert said["throughput_veh"] == "no clear change" and said["emergency_delay_s"] == "too few to judge"
    assert api["emergency_delay_s"]["per_seed_n"] == {"of": "vehicles", "min": 2, "max": 2, "too_few": True}
    # a figure of the demand has no better direction, so no verdict
    assert api["vehicles_total"]["lower_is_better"] is None and api["vehicles_total"]["verdict"] is None
    assert api["vehicles_total"]["verdict_note"] is None


@pytest.mark.slow
def test_the_api_agrees_with_the_summary_csv_of_a_real_compare(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    signalwise = str(Path(sys.executable).with_name("signalwise"))
    done = subprocess.run([signalwise, "compare", "-s", "single", "-c", "fixed,max-pressure", "--seeds", "2",
                           "--duration", "300", "--workers", "2", "--out", str(tmp_path / "cmp"), "--db", url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")})
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "cmp" / "summary.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["controller"] == "max-pressure"]
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0))) as client:
        (item,) = client.get("/api/v1/analytics/comparison/baseline-vs-ai").json()["items"]
    api = {row["metric"]: row for row in item["metrics"]}
    compared = 0
    for r in rows:
        if r["metric"] not in api or not r["p_paired"]:
            continue
        row = api[r["metric"]]
        assert (row["verdict"] or "") == r["verdict"] and (row["verdict_note"] or "") == r["verdict_note"], (r, row)
        assert float(f"{row['p_paired']:.4g}") == float(r["p_paired"]), (r, row)
        assert float(f"{row['p_welch']:.4g}") == float(r["p_welch"]), (r, row)
        compared += 1
    assert compared >= 8, (compared, rows)
