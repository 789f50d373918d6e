"""What a published run puts in the store, held to docs/store.md ("The tables, for SQL") and to the run's own files:
the `run_metrics` names the doc lists are exactly those a run stores (or would, had it measured them); an
intersection's vehicles in the store are those of its `metrics.json`; `timeseries.csv` gives each intersection its
CO2 and fuel. One real SUMO run of the corridor, published into a SQLite file."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a 300 s corridor run and its publishing

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("published")
    ran = subprocess.run([*SIGNALWISE, "run", "-s", "corridor", "-c", "fixed", "--seed", "1", "--duration", "300",
                          "--out", str(tmp / "runs")], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = (tmp / "runs").iterdir()
    db = tmp / "store.db"
    stored = subprocess.run([*SIGNALWISE, "publish", str(run_dir), "--db", f"sqlite:///{db}"],
                            capture_output=True, text=True, timeout=600)
    assert stored.returncode == 0, stored.stderr
    return run_dir, db


def _documented_run_metrics() -> dict[str, str]:
    """name -> unit of the doc's run_metrics table."""
    text = DOC.read_text()
    block = text.split("<!-- run_metrics names: begin -->", 1)[1].split("<!-- run_metrics names: end -->", 1)[0]
    return {m[1]: m[2].strip() for m in re.finditer(r"^\| `([a-z0-9_]+)` \| ([^|]+) \|", block, re.M)}


def test_the_doc_lists_exactly_the_run_metrics_a_published_run_stores(published):
    run_dir, db = published
    with sqlite3.connect(db) as conn:
        stored = {name for (name,) in conn.execute("SELECT DISTINCT name FROM run_metrics")}
    network = json.loads((run_dir / "metrics.json").read_text())["network"]
    # a figure the run measured none of is null in metrics.json and has no row: named all the same
    unmeasured = {k for k, v in network.items() if v is None}
    documented = _documented_run_metrics()
    assert set(documented) == stored | unmeasured, (sorted(set(documented) - stored - unmeasured),
                                                   sorted((stored | unmeasured) - set(documented)))
    with sqlite3.connect(db) as conn:  # the two units of one CO2 and one fuel figure, as the doc says
        value = dict(conn.execute("SELECT name, value FROM run_metrics"))
    assert value["co2_g"] == pytest.approx(value["co2_kg"] * 1000) and value["co2_kg"] > 0
    assert value["fuel_ml"] == pytest.approx(value["fuel_l"] * 1000) and value["fuel_l"] > 0
    assert (documented["co2_kg"], documented["co2_g"], documented["fuel_l"], documented["fuel_ml"]) == \
        ("kg", "g", "l", "ml")


def test_an_intersections_vehicles_in_the_store_are_those_of_its_metrics(published):
    run_dir, db = published
    with sqlite3.connect(db) as conn:
        store = dict(conn.execute("SELECT intersection_id, sum(total_vehicles_passed) FROM intersection_records "
                                  "GROUP BY intersection_id"))
        crossed = dict(conn.execute("SELECT i.intersection_id, sum(s.vehicles_crossed) FROM signal_records s JOIN "
                                    "intersection_records i ON i.id = s.record_id GROUP BY i.intersection_id"))
    metrics = {j: v["throughput_veh"] for j, v in json.loads((run_dir / "metrics.json").read_text())
               ["intersections"].items()}
    assert set(store) == set(metrics) and len(metrics) == 5
    # the store counts a vehicle when it leaves the stop-bar loop; one queued on it at the end has crossed nothing
    assert all(abs(store[j] - metrics[j]) <= 1 for j in metrics), (store, metrics)
    assert crossed == store


def test_timeseries_gives_each_intersection_its_co2_and_fuel(published):
    run_dir, _db = published
    with (run_dir / "timeseries.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    per_tls: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["scope"] != "network":
            per_tls[r["scope"]].append(r)
    metrics = json.loads((run_dir / "metrics.json").read_text())["intersections"]
    assert set(per_tls) == set(metrics)
    for tls, tls_rows in per_tls.items():
        assert all(r["co2_kg"] != "" and r["fuel_l"] != "" for r in tls_rows), tls
        # the run had no warm-up: its intervals add up to the intersection's own figure (its approach edges)
        assert sum(float(r["co2_kg"]) for r in tls_rows) == pytest.approx(metrics[tls]["co2_kg"], abs=1e-3)
        assert sum(float(r["fuel_l"]) for r in tls_rows) > 0
    network = sum(float(r["co2_kg"]) for r in rows if r["scope"] == "network")
    assert sum(float(r["co2_kg"]) for r in rows if r["scope"] != "network") < network  # approaches: a part
