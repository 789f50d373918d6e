"""What `signalwise compare --db` stored, served by a real server on 127.0.0.1 as the command line gives it:

- `/environmental-impact` gives CO2 and fuel per vehicle-km beside the window totals, the run's own figures
  (`runtime.run.per_travel`, the numbers compare's summary.csv averages), set against the baseline run's;
- `?format=csv` answers the comparison as summary.csv (its columns, its rows) and an ATSPM measure as
  `signalwise atspm`'s `<measure>.csv`.

One real compare of `single` (2 seeds, 300 s) for all of them."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.loopback import serving

from signalwise.api import create_app
from signalwise.store import Settings

pytestmark = pytest.mark.slow
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served-compare")
    url = f"sqlite:///{tmp / 'store.db'}"
    done = subprocess.run([SIGNALWISE, "compare", "-s", "single", "-c", "fixed,max-pressure", "--seeds", "2",
                           "--duration", "300", "--workers", "2", "--out", str(tmp / "cmp"), "--db", url],
                          cwd=tmp, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr
    app = create_app(Settings(database_url=url, cache_ttl_s=60))
    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as client:  # reads: open on loopback
        yield client, tmp / "cmp"


def _network(cmp: Path, run: str) -> dict:
    return json.loads((cmp / run / "metrics.json").read_text())["network"]


def _summary_rows(cmp: Path) -> tuple[list[str], list[dict]]:
    with open(cmp / "summary.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def test_environmental_impact_gives_co2_and_fuel_per_vehicle_km_as_compare_does(compared):
    client, cmp = compared
    r = client.get("/api/v1/analytics/environmental-impact")
    assert r.status_code == 200, r.text
    answer = r.json()
    items = {item["simulation_id"]: item for item in answer["items"]}
    assert sorted(items) == ["cmp.max-pressure-s1", "cmp.max-pressure-s2"], sorted(items)
    for seed in (1, 2):
        item, own, base = (items[f"cmp.max-pressure-s{seed}"], _network(cmp, f"max-pressure-s{seed}"),
                           _network(cmp, f"fixed-s{seed}"))
        assert item["baseline_simulation_id"] == f"cmp.fixed-s{seed}"
        for name in ("co2_g_per_veh_km", "fuel_l_per_100veh_km", "veh_km"):
            assert own[name] and base[name], (name, own, base)  # the run measured them: the check means something
            assert item[name] == own[name] and item[f"baseline_{name}"] == base[name], (name, item)
        for name in ("co2_g_per_veh_km", "fuel_l_per_100veh_km"):
            assert math.isclose(item[f"{name}_saved"], base[name] - own[name], abs_tol=1e-9), (name, item)
            assert math.isclose(item[f"{name}_saved_pct"], (base[name] - own[name]) / base[name] * 100), name
        # the totals are still there, and per vehicle-km is their ratio to the distance of the same window
        assert math.isclose(item["co2_g"] / item["veh_km"], item["co2_g_per_veh_km"], rel_tol=1e-3)
    # compare's summary.csv averages the same per-run figures
    _header, rows = _summary_rows(cmp)
    mean = {r["metric"]: float(r["mean"]) for r in rows if r["controller"] == "max-pressure"}
    for name in ("co2_g_per_veh_km", "fuel_l_per_100veh_km"):
        served = sum(items[f"cmp.max-pressure-s{s}"][name] for s in (1, 2)) / 2
        assert math.isclose(served, mean[name], rel_tol=1e-4), (name, served, mean[name])
    # each with its unit
    fields = answer["fields"]
    assert fields["co2_g_per_veh_km"].startswith("g/veh-km: ")
    assert fields["fuel_l_per_100veh_km"].startswith("l/100 veh-km: ")
    assert fields["co2_g_per_veh_km_saved"].startswith("g/veh-km: ")
    assert set(answer["items"][0]) - {"simulation_id", "scenario", "controller", "seed", "baseline_simulation_id"} \
        <= set(fields)


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-3)
    except ValueError:
        return False


def test_the_comparison_as_csv_has_summary_csv_columns_and_rows(compared):
    client, cmp = compared
    r = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="summary.csv"' in r.headers["content-disposition"] and r.headers["x-total-count"] == "1"
    served = list(csv.DictReader(io.StringIO(r.text)))
    header, rows = _summary_rows(cmp)
    assert next(csv.reader(io.StringIO(r.text))) == header  # the same columns, in the same order
    by_key = {(s["metric"], s["controller"]): s for s in served}
    compared_cells = 0
    for row in rows:
        key = (row["metric"], row["controller"])
        if key not in by_key:  # a figure no stored run has (the stored metrics are the numbers only)
            assert row["mean"] == "" or row["metric"] in ("safety_violations",), row
            continue
        got = by_key[key]
        for column in ("n", "mean", "ci_low", "ci_high", "change_pct", "p_welch", "p_paired", "verdict",
                       "verdict_note", "change", "change_ci_low", "change_ci_high", "change_pct_ci_low",
                       "change_pct_ci_high", "scenario", "demand_scale", "timing_profile", "seeds"):
            assert _close(got[column], row[column]), (key, column, got[column], row[column])
            compared_cells += 1
    assert compared_cells > 200, compared_cells
    # the JSON answer is unchanged, and a format the route does not know is refused
    assert client.get("/api/v1/analytics/comparison/baseline-vs-ai").json()["items"][0]["controller"] == "max-pressure"
    r = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"format": "xlsx"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "format"], r.text


def test_an_atspm_measure_as_csv_is_the_file_signalwise_atspm_writes(compared, tmp_path):
    client, cmp = compared
    run = cmp / "max-pressure-s1"
    done = subprocess.run([SIGNALWISE, "atspm", str(run), "--out", str(tmp_path / "atspm"), "--no-charts"],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr
    for measure in ("terminations", "split_monitor", "arrival_on_green"):
        r = client.get(f"/api/v1/atspm/{measure}", params={"simulation_id": "cmp.max-pressure-s1", "format": "csv",
                                                           "limit": 10000})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        written = (tmp_path / "atspm" / f"{measure}.csv").read_text()
        assert r.text == written, (measure, r.text[:300], written[:300])
        assert int(r.headers["x-total-count"]) == len(written.splitlines()) - 1 > 0
        # the same rows as the JSON answer
        rows = client.get(f"/api/v1/atspm/{measure}", params={"simulation_id": "cmp.max-pressure-s1",
                                                               "limit": 10000}).json()["rows"]
        assert len(rows) == int(r.headers["x-total-count"])
