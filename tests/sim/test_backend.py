"""The SUMO backend on its own: state save/restore, RESCO networks."""

from __future__ import annotations

import pytest

from signalwise.sim.backend import SimulationError, SumoBackend, SumoOptions
from signalwise.sim.scenario import RESCO_NETWORKS, ScenarioError, load


def _close(a: dict, b: dict, tol_m: float = 0.05) -> bool:
    return a.keys() == b.keys() and all(abs(x - y) <= tol_m for k in a for x, y in zip(a[k], b[k], strict=True))


def _positions(api):
    return {v: tuple(round(x, 3) for x in api.vehicle.getPosition(v)) for v in sorted(api.vehicle.getIDList())}


def test_a_new_simulation_resumes_from_a_saved_state(tmp_path):
    """Crash recovery: a fresh SUMO loads the saved state, holds the same vehicles, and evolves
    the same way every time it is recovered."""
    s = load("grid")
    opts = SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=3)
    with SumoBackend(opts) as b:
        for _ in range(300):
            b.step()
        saved = _positions(b.api)
        state = b.save_state(tmp_path / "state.xml")
    after = []
    for _ in range(2):
        with SumoBackend(opts) as b:
            assert b.load_state(state) == 300.0
            assert _close(_positions(b.api), saved)
            for _ in range(120):
                b.step()
            after.append(_positions(b.api))
    assert _close(after[0], after[1])
    assert len(saved) > 20


def test_resco_network_runs_with_its_time_window(tmp_path):
    pytest.importorskip("sumo_rl", reason="RESCO networks need the 'resco' extra (sumo-rl)")
    from signalwise.analytics.safety_audit import audit_run
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.run import execute_run

    s = load("resco:cologne1")
    assert (s.begin_s, s.end_s) == (25200.0, 28800.0)
    r = execute_run(RunConfig(scenario="resco:cologne1", controller="max-pressure", duration_s=300,
                              emissions=False), tmp_path / "run")
    assert r.metrics["network"]["vehicles_total"] > 20
    assert audit_run(r.run_dir).ok
    assert len(RESCO_NETWORKS) == 8


def test_unknown_resco_network_is_named_in_the_error():
    pytest.importorskip("sumo_rl", reason="RESCO networks need the 'resco' extra (sumo-rl)")
    with pytest.raises(ScenarioError, match="unknown RESCO network 'paris'"):
        load("resco:paris")


def test_lane_counts_are_this_steps_whatever_was_read_before(tmp_path):
    """Lanes are read from SUMO once per step and shared between intersections: every step, and after a
    state load, the counts are SUMO's own at that moment, never a previous step's."""
    s = load("grid")
    opts = SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=3)
    with SumoBackend(opts) as b:
        lanes = sorted({lane for tls in b.api.trafficlight.getIDList()
                        for link in b.api.trafficlight.getControlledLinks(tls) for lane, _out, _via in link})

        def truth() -> dict:
            la = b.api.lane
            return {lane: (la.getLastStepHaltingNumber(lane), la.getLastStepVehicleNumber(lane)) for lane in lanes}

        def seen() -> dict:
            return {lane: (c.queue_veh, c.count_veh) for lane, c in b.lane_counts(lanes).items()}

        changed = 0
        previous = seen()
        for k in range(400):
            b.step()
            if k % 3:  # half the lanes first, as one intersection would, then all of them
                b.lane_counts(lanes[::2])
            now = seen()
            assert now == truth() and b.halting_veh(lanes) == sum(q for q, _n in now.values())
            changed += now != previous
            previous = now
        assert changed > 100  # the traffic moved: a stale answer would have shown
        state = b.save_state(tmp_path / "state.xml")
        for _ in range(60):
            b.step()
        b.lane_counts(lanes)
        b.load_state(state)
        assert seen() == truth()


def test_stopped_vehicles_are_those_seen_halting_that_have_not_left_the_lane():
    """RESCO's queue (traffic_signal.py, observe): a vehicle whose waiting time was above 0 at a reading
    counts until it leaves the lane, even once it moves off. Read every 5 s, as a decision would."""
    s = load("grid")
    opts = SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=3)
    with SumoBackend(opts) as b:
        api = b.api
        lanes = sorted({lane for tls in api.trafficlight.getIDList()
                        for link in api.trafficlight.getControlledLinks(tls) for lane, _out, _via in link})
        marked: dict[str, set[str]] = {lane: set() for lane in lanes}
        discharging = 0
        for k in range(600):
            b.step()
            if k % 5:
                continue
            got = b.lane_stopped(lanes)
            for lane in lanes:
                on_lane = set(api.lane.getLastStepVehicleIDs(lane))
                marked[lane] = {v for v in marked[lane] if v in on_lane} | {
                    v for v in on_lane if api.vehicle.getWaitingTime(v) > 0}
                st = got[lane]
                assert (st.queue_veh, st.count_veh) == (api.lane.getLastStepHaltingNumber(lane),
                                                        api.lane.getLastStepVehicleNumber(lane))
                assert st.stopped_veh == len(marked[lane])
                discharging += st.stopped_veh > st.queue_veh
        assert discharging > 50  # queues moving off were still counted, not only standing ones
        # a plain counts reading in the same step does not hide the stopped vehicles from a later reading
        b.step()
        b.lane_counts(lanes)
        assert all(st.stopped_veh is not None for st in b.lane_stopped(lanes).values())


def test_a_vehicle_stopped_inside_a_junction_is_reported_as_locked_there():
    """A vehicle that stands on a junction's internal lane for minutes is a lock no signal state frees; with
    teleports off (RESCO's rules) it stays. One is stopped there by hand, in real SUMO, and found by name."""
    from signalwise.sim.worker import SumoProcess

    s = load("single")
    opts = SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=1, time_to_teleport_s=-1)
    with SumoBackend(opts) as b:
        api, junction = b.api, None
        for _ in range(600):
            b.step()
            assert b.standing_in_junctions(300.0) == {}
            inside = [v for v in api.vehicle.getIDList() if api.vehicle.getLaneID(v).startswith(":")]
            if inside:
                junction = api.vehicle.getLaneID(inside[0])[1:].rsplit("_", 2)[0]
                api.vehicle.setSpeed(inside[0], 0.0)  # it stays where it is until told otherwise
                break
        assert junction in {tls for tls in api.trafficlight.getIDList()} | set(api.junction.getIDList())
        for _ in range(290):
            b.step()
        assert b.standing_in_junctions(300.0) == {}  # 290 s: not yet
        for _ in range(20):
            b.step()
        locked = b.standing_in_junctions(300.0)
        assert set(locked) == {junction} and locked[junction] >= 1
        assert b.standing_in_junctions(1000.0) == {}
    # the worker answers the same question from its own process: at one step of the same seed, the same
    # vehicles inside junctions (with no minimum wait: every vehicle on an internal lane)
    with SumoBackend(opts) as b:
        steps, here = 0, {}
        while not here and steps < 600:
            b.step()
            steps += 1
            here = b.standing_in_junctions(0.0)
    with SumoProcess(opts) as child:
        for _ in range(steps):
            child.step()
        assert here and child.standing_in_junctions(0.0) == here


def test_a_remote_port_nothing_answers_on_is_one_line_that_says_so(monkeypatch, capsys):
    """TraCI tries once a second and prints every failed try; the run says once what is wrong and what to do."""
    from support.loopback import free_port

    from signalwise.sim import backend

    monkeypatch.setattr(backend, "REMOTE_CONNECT_TRIES", 2)
    port = free_port()
    with pytest.raises(SimulationError, match=f"nothing answered on port {port} for 2 s: start SUMO there first"):
        backend.SumoBackend(backend.SumoOptions(remote_port=port)).start()
    assert "Could not connect" not in capsys.readouterr().out
