"""Two runtime workers split one network's signals: two TraCI clients of one SUMO (`--num-clients 2`).

Nothing in the loop assumes one process owns every intersection: each worker
reads and drives only its partition, steps the shared simulation in its
turn, and leaves an event log that the audit passes on its own.
"""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

from signalwise.analytics.safety_audit import audit
from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import sumo_binary

PARTITIONS = (["J1", "J2", "J3"], ["J4", "J5"])
END_S = 300.0


def _worker(port: int, order: int, partition: list[str]) -> dict:
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.loop import (
        LoopStepper,
        describe_intersections,
        open_field,
        resolve_scenario,
        sumo_options,
    )

    cfg = RunConfig(scenario="corridor", controller="max-pressure", remote_port=port, client_order=order,
                    partition=partition)
    scenario = resolve_scenario(cfg)
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=END_S))
    try:
        stepper = LoopStepper(cfg, fld, END_S)
        while not stepper.done:
            stepper.step()
        return {"ids": [i.id for i in fld.intersections], "events": stepper.events(),
                "states": stepper.signal_states, "model": describe_intersections(fld.intersections),
                "t": stepper.t}
    finally:
        fld.backend.close()


def test_two_workers_split_one_network_and_each_passes_the_audit(tmp_path):
    import sumolib

    port = sumolib.miscutils.getFreeSocketPort()
    corridor = load("corridor")
    sumo = subprocess.Popen([sumo_binary("sumo"), "-n", str(corridor.net_file), "-r",
                             ",".join(str(r) for r in corridor.route_files), "--remote-port", str(port),
                             "--num-clients", "2", "-e", str(END_S), "--no-step-log", "true", "--seed", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=Path(tmp_path))
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            jobs = [pool.apply_async(_worker, (port, k + 1, part)) for k, part in enumerate(PARTITIONS)]
            results = [j.get(timeout=120) for j in jobs]
        sumo.wait(timeout=30)
    finally:
        sumo.kill()
    assert [r["ids"] for r in results] == [sorted(p) for p in PARTITIONS]
    for r, part in zip(results, PARTITIONS, strict=True):
        assert r["t"] == END_S
        assert {d for _t, d, _s in r["states"]} == set(part)  # it drove only its own signals
        assert {e.device_id for e in r["events"]} == set(part)
        report = audit(r["events"], r["model"], r["states"], 1.0, end_s=END_S)
        assert report.ok, [str(v) for v in report.violations[:3]]
        assert sum(report.checked.values()) > 50
