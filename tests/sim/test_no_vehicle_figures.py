"""A figure per vehicle that a run measured over no vehicle is null, shown "—", never 0: 0 s of delay is the best
value there is, and a comparison would average it in as one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.analytics.comparisons import baseline_vs_ai
from signalwise.runtime.commands import print_run_summary
from signalwise.runtime.compare import summarize
from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import publish_runs
from signalwise.runtime.run import execute_run
from signalwise.sim.metrics import network_metrics
from signalwise.sim.outputs import Trip
from signalwise.sim.scenario import load
from signalwise.store import get_engine

SINGLE = load("single")
PER_VEHICLE = ("avg_delay_s", "avg_wait_s", "avg_travel_time_s", "stops_per_veh")


def _late_routes(folder: Path) -> Path:
    """Routes on the single scenario's network whose only vehicle departs long after a short window ends."""
    routes = folder / "late.rou.xml"
    routes.write_text('<routes>\n  <route id="r" edges="E_C C_W"/>\n'
                      '  <vehicle id="late" route="r" depart="500"/>\n</routes>\n')
    return routes


@pytest.fixture(scope="module")
def empty_compare(tmp_path_factory):
    """`compare` of two controllers over two seeds on a 30 s window in which no vehicle is due."""
    folder = tmp_path_factory.mktemp("empty")
    out = folder / "cmp"
    p = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "compare", "--net", str(SINGLE.net_file),
                        "--routes", str(_late_routes(folder)), "-c", "fixed,max-pressure", "--seeds", "2",
                        "--duration", "30", "--workers", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return out, p.stdout


@pytest.mark.slow
def test_no_vehicle_in_the_window_gives_null_figures_per_vehicle_and_the_table_shows_a_dash(empty_compare):
    out, stdout = empty_compare
    runs = sorted(out.glob("*/metrics.json"))
    assert len(runs) == 4
    for path in runs:
        net = json.loads(path.read_text())["network"]
        assert net["vehicles_total"] == 0
        assert {k: net[k] for k in PER_VEHICLE} == dict.fromkeys(PER_VEHICLE), path
    for label in ("delay per vehicle", "avg waiting", "avg travel time", "stops per vehicle"):
        row = next(line for line in stdout.splitlines() if label in line)
        assert row.count("—") == 2 and "0.00" not in row, row
    rows = [line.split(",") for line in (out / "summary.csv").read_text().splitlines()[1:]]
    for metric, _controller, n, mean, *_ in rows:
        if metric in PER_VEHICLE:
            assert (n, mean) == ("0", ""), (metric, n, mean)


def test_the_store_keeps_no_figure_a_run_did_not_measure(empty_compare, tmp_path):
    """The store holds a run's numbers only: a null figure is not stored, so the API compares none of it."""
    out, _ = empty_compare
    url = f"sqlite:///{tmp_path / 'store.db'}"
    publish_runs(sorted(p.parent for p in out.glob("*/metrics.json")), url)
    (entry,) = baseline_vs_ai(get_engine(url), "fixed")
    names = {m["metric"] for m in entry["metrics"]}
    assert "throughput_veh" in names and not names & set(PER_VEHICLE)


def test_a_run_with_no_vehicle_prints_a_dash_for_its_figures_per_vehicle(tmp_path, capsys):
    r = execute_run(RunConfig(net=SINGLE.net_file, routes=[_late_routes(tmp_path)], controller="fixed",
                              duration_s=20, emissions=False), tmp_path / "run")
    print_run_summary(r.metrics, r.run_dir)
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("│")]
    for label, why in (("delay per vehicle", "no vehicle due"), ("avg waiting time", "no vehicle departed"),
                       ("stops per vehicle", "no vehicle departed")):
        row = next(line for line in rows if line.split("│")[1].strip() == label)
        assert f"— ({why})" in row, row
    # the delay's label is the plain name compare's table gives it; the line under the table says whose it is
    after = text.split("└", 1)[1].splitlines()[1]
    assert after == ("delay per vehicle: the RESCO definition, every vehicle due (arrived, still driving, never "
                     "inserted)"), text


def test_a_seed_with_no_vehicle_is_left_out_of_the_statistics_not_averaged_in_as_0(empty_compare, tmp_path):
    """Seed 1 measured the delay, seed 2 had no vehicle: the mean is seed 1's, over one seed, and so is the
    change."""
    out, _ = empty_compare
    busy = {c: execute_run(RunConfig(scenario="single", controller=c, duration_s=120, emissions=False, seed=1),
                           tmp_path / c).metrics for c in ("fixed", "max-pressure")}
    empty = {c: json.loads((out / f"{c}-s2" / "metrics.json").read_text()) for c in ("fixed", "max-pressure")}
    runs = {**{(c, 1): m for c, m in busy.items()}, **{(c, 2): m for c, m in empty.items()}}
    table = summarize(["fixed", "max-pressure"], [1, 2], runs)["metrics"]
    for key in ("avg_delay_s", "avg_wait_s", "stops_per_veh"):
        fixed, mp = table[key]["controllers"]["fixed"], table[key]["controllers"]["max-pressure"]
        assert fixed["values"] == [busy["fixed"]["network"][key]] and fixed["mean"] == pytest.approx(fixed["values"][0])
        assert mp["values"] == [busy["max-pressure"]["network"][key]]
        if fixed["values"][0]:
            assert mp["change_pct"] == pytest.approx((mp["values"][0] / fixed["values"][0] - 1) * 100, abs=1e-3)


def test_vehicles_due_but_none_departed_have_a_delay_and_no_wait_or_stops():
    """RESCO's delay counts a vehicle never inserted (its wait to enter); waiting and stops are over the vehicles
    that departed, of which there were none."""
    stuck = Trip("v0", "car", -1.0, -1.0, 0.0, 0.0, 0.0, 0, 0.0, 42.0, 0.0, 0.0, "undeparted")
    net = network_metrics([stuck], [], [], [])
    assert (net.avg_delay_s, net.avg_wait_s, net.stops_per_veh, net.avg_travel_time_s) == (42.0, None, None, None)
