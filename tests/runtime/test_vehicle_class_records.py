"""A run's records count its vehicles by each type's SUMO vClass, never by the text of the type's id: a bus type
named "articulated" is a bus, an emergency type named "ambulance" sets emergency_vehicle_present, and a car type
named "busy_sedan" is a car. Offline (a run published to the store) and live (records stored as it goes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from signalwise.runtime.config import RunConfig
from signalwise.runtime.records import publish_runs, simulation_id
from signalwise.runtime.run import execute_run
from signalwise.store.engine import create_store_engine

SINGLE = Path(__file__).resolve().parents[2] / "src" / "signalwise" / "sim" / "scenarios" / "single"
ARTICULATED, AMBULANCES, SEDANS = 6, 2, 6

ROUTES = f"""<routes>
    <vType id="articulated" vClass="bus" length="18" accel="1.2" decel="4.0" sigma="0"/>
    <vType id="ambulance" vClass="emergency" length="6.5" accel="2.8" decel="5.0" sigma="0"/>
    <vType id="busy_sedan" vClass="passenger" length="4.5" sigma="0"/>
    <!-- sorted by begin: SUMO reads a route file in departure order -->
    <flow id="art" type="articulated" begin="0" end="100" number="{ARTICULATED}" from="E_C" to="C_W"/>
    <flow id="sed" type="busy_sedan" begin="0" end="100" number="{SEDANS}" from="W_C" to="C_E"/>
    <flow id="amb" type="ambulance" begin="10" end="70" number="{AMBULANCES}" from="N_C" to="C_S"/>
</routes>
"""


def _config(tmp_path: Path, **more) -> RunConfig:
    routes = tmp_path / "named.rou.xml"
    routes.write_text(ROUTES)
    return RunConfig(net=SINGLE / "net.net.xml", routes=[routes], duration_s=240, **more)


def _stored(db_url: str, sim_id: str) -> tuple[dict[str, Counter], set[str]]:
    """Per approach, the stored vehicle counts by class summed over the run, and the approaches where an
    emergency vehicle was present."""
    engine = create_store_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.direction, s.car, s.bus, s.truck, s.emergency_vehicle_present FROM signal_records s "
            "JOIN intersection_records r ON r.id = s.record_id JOIN runs u ON u.id = r.run_id "
            "WHERE u.simulation_id = :s"), {"s": sim_id}).all()
    engine.dispose()
    counts: dict[str, Counter] = {}
    emergency = set()
    for d, car, bus, truck, present in rows:
        counts.setdefault(d, Counter()).update({"car": car or 0, "bus": bus or 0, "truck": truck or 0})
        if present:
            emergency.add(d)
    return counts, emergency


def _approach_of(run_dir: Path) -> dict[str, str]:
    """The approach each flow enters the junction from (the network's, not assumed here)."""
    import json

    model = json.loads((run_dir / "signal_model.json").read_text())
    edge_dir = {lane.rsplit("_", 1)[0]: d for dev in model for lane, d in (dev.get("approaches") or {}).items()}
    return {"articulated": edge_dir["E_C"], "ambulance": edge_dir["N_C"], "busy_sedan": edge_dir["W_C"]}


def _check(counts: dict[str, Counter], emergency: set[str], approach: dict[str, str]) -> None:
    assert counts[approach["articulated"]]["bus"] == ARTICULATED, counts
    assert counts[approach["articulated"]]["car"] == 0, counts
    assert counts[approach["busy_sedan"]] == Counter(car=SEDANS, bus=0, truck=0), counts  # no "bus" in its id
    assert counts[approach["ambulance"]]["car"] == AMBULANCES, counts  # an emergency vehicle counts as a car
    assert emergency == {approach["ambulance"]}


def test_a_published_runs_records_class_its_vehicles_by_their_vclass(tmp_path, db_url):
    result = execute_run(_config(tmp_path, controller="fixed"), tmp_path / "run")
    run_dir = result.run_dir
    assert publish_runs([run_dir], db_url) > 0
    counts, emergency = _stored(db_url, simulation_id(run_dir))
    _check(counts, emergency, _approach_of(run_dir))


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "sumo-process"])
@pytest.mark.slow
def test_a_live_runs_records_class_its_vehicles_by_their_vclass(tmp_path, db_url, in_process):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store.live import LiveStoreWriter

    run_dir = tmp_path / "live"
    store = LiveStoreWriter(db_url, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    rt = LiveRuntime(_config(tmp_path, controller="fixed"),
                     LiveOptions(speed=None, duration_s=240, in_process=in_process, state_every_s=120), run_dir,
                     store=store)
    rt.open()
    rt.run()
    assert rt.store_summary["waiting_rows"] == 0 and rt.store_summary["written"] > 0
    counts, emergency = _stored(db_url, run_dir.name)
    _check(counts, emergency, _approach_of(run_dir))
