"""record: lean asks SUMO for trips only (no edge intervals, emissions or detector passages); the traffic, the
delay and the audit are the same as a full run's."""

from __future__ import annotations

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


def test_a_lean_run_records_less_and_measures_the_same(tmp_path):
    runs = {}
    for record in ("full", "lean"):
        cfg = RunConfig(scenario="single", controller="max-pressure", duration_s=600, record=record)
        runs[record] = execute_run(cfg, tmp_path / record)
    full, lean = runs["full"], runs["lean"]
    assert lean.metrics["network"]["avg_delay_s"] == full.metrics["network"]["avg_delay_s"]
    assert lean.metrics["network"]["vehicles_total"] == full.metrics["network"]["vehicles_total"]
    assert lean.metrics["safety"]["violations"] == 0 and lean.metrics["safety"]["checked"]
    sumo_full = {p.name for p in (full.run_dir / "sumo").iterdir()}
    sumo_lean = {p.name for p in (lean.run_dir / "sumo").iterdir()}
    assert {"edgedata.xml", "emissions.xml", "detector_passages.xml"} <= sumo_full
    assert not {"edgedata.xml", "emissions.xml", "detector_passages.xml"} & sumo_lean
    assert lean.metrics["network"]["co2_kg"] == 0 < full.metrics["network"]["co2_kg"]
    # no edge intervals recorded: no distance measured, so none stated (a 0 would read as nobody drove)
    assert lean.metrics["network"]["veh_km"] is None and full.metrics["network"]["veh_km"] > 0
    assert len((lean.run_dir / "detector_passages.csv").read_text().splitlines()) == 1  # the header alone
