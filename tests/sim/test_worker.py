"""SUMO in a child process (`SumoProcess`): same loop, same events; a lost child is noticed, never waited on.

Real SUMO throughout. libsumo allows one simulation per process: the
in-process runs here are closed before the next starts, and every
`SumoProcess` has its own child.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from signalwise.core.types import EventCode
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import LoopStepper, open_field, resolve_scenario, sumo_options
from signalwise.sim import worker as worker_module
from signalwise.sim.backend import SimulationError, SumoBackend, SumoOptions
from signalwise.sim.detectors import place_detectors
from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import import_libsumo
from signalwise.sim.worker import FieldLost, SumoProcess

DURATION_S = 300.0


def _run(tmp: Path, controller: str, factory, register: bool = False, seed: int = 1):
    """`single` for 300 s under `controller`, as `run_loop` sets it up, on the backend `factory` makes."""
    cfg = RunConfig(scenario="single", controller=controller, seed=seed)
    scenario = resolve_scenario(cfg)
    end_s = scenario.begin_s + DURATION_S
    layout = place_detectors(scenario.net_file, tmp, live=True)
    opts = sumo_options(cfg, scenario, end_s=end_s)
    opts.additional_files = (*opts.additional_files, *layout.additional_files)
    fld = open_field(cfg, scenario, opts, layout, backend_factory=factory)
    backend = fld.backend
    try:
        if register:  # as the live runtime does: everything comes back with each step
            inters = fld.intersections
            backend.register_lanes(sorted({ln for i in inters for ln in (*i.in_lanes, *i.out_lanes)}))
            backend.register_detectors(sorted({d.id for i in inters for d in i.detectors}))
            backend.register_intersections({i.id: i for i in inters}, cfg.shield.preempt_distance_m)
        stepper = LoopStepper(cfg, fld, end_s)
        exchanges0 = getattr(backend, "exchanges", 0)
        while not stepper.done:
            stepper.step()
        return {
            "events": stepper.events(),
            "states": stepper.signal_states,
            "queues": stepper.queue_samples,
            "emergency": set(backend.emergency_seen),
            "steps": stepper.steps,
            "exchanges": getattr(backend, "exchanges", 0) - exchanges0,
        }
    finally:
        backend.close()


@pytest.mark.parametrize(("controller", "register"), [
    ("actuated", True), ("max-pressure", True), ("webster", True), ("max-pressure", False)])
@pytest.mark.slow
def test_the_loop_over_a_worker_process_gives_the_same_events(tmp_path, controller, register):
    """Same seed, same step order: the child process changes where SUMO runs, not what happens.
    With lanes, detectors and signals registered a step is one exchange (webster's stop-bar
    counts, read once per planning period, are the only extra requests)."""
    here = _run(tmp_path / "in", controller, SumoBackend)
    there = _run(tmp_path / "out", controller, SumoProcess, register=register)
    assert len(here["events"]) > 50
    assert any(e.event_code == EventCode.PREEMPT_CALL_ON for e in here["events"]), \
        "seed 1 sends an emergency vehicle in the first 300 s: preemption is compared too"
    assert there["events"] == here["events"]
    assert there["states"] == here["states"]
    assert there["queues"] == here["queues"]
    assert there["emergency"] == here["emergency"]
    if register and controller != "webster":
        assert there["exchanges"] == there["steps"]


def test_stopped_vehicles_are_read_in_the_child_as_in_process():
    """Max-pressure on RESCO's queue asks for the vehicles seen halting (`lane_detail` "stopped"). Over a
    worker that request goes to the child, which follows the vehicles there: the same readings, taken at the
    same steps, give the same numbers as in process (and not the halting count a plain reading gives)."""
    from signalwise.core.types import ObservationNeed

    def readings(factory):
        cfg = RunConfig(scenario="single", controller="max-pressure", seed=1)
        scenario = resolve_scenario(cfg)
        fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=scenario.begin_s + 400),
                         backend_factory=factory)
        try:
            inter = fld.intersections[0]
            need = ObservationNeed(tuple(inter.in_lanes), "stopped")
            out = []
            for k in range(400):
                t = fld.backend.step()
                if k % 5 == 0:
                    obs = fld.backend.observe(inter, t, need)
                    out.append({lane: (s.queue_veh, s.count_veh, s.stopped_veh) for lane, s in obs.lanes.items()})
            return out
        finally:
            fld.backend.close()

    here, there = readings(SumoBackend), readings(SumoProcess)
    assert there == here
    assert any(stopped > queue for r in here for queue, _count, stopped in r.values())


def test_the_zones_bring_back_the_lengths_the_loop_reads_next():
    """As it starts, the loop lists the zones of its movements' lanes, then reads the length of each of
    those lanes and of every zone lane (ingolstadt7's short entries have zones): over a worker that is
    one exchange, not one per lane, and the same zones and lengths as SUMO in-process gives. The incoming
    lanes' shapes (each approach's compass direction) are one more."""
    if importlib.util.find_spec("sumo_rl") is None:  # importing it would need SUMO_HOME; finding it does not
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    cfg = RunConfig(scenario="resco:ingolstadt7", controller="max-pressure")
    scenario = resolve_scenario(cfg)
    opts = sumo_options(cfg, scenario, end_s=scenario.begin_s + 10)

    def read(factory):
        fld = open_field(cfg, scenario, opts, backend_factory=factory)
        backend = fld.backend
        try:
            roads = [m for i in fld.intersections for m in i.movements if not m.is_crosswalk]
            in_lanes = sorted({m.in_lane for m in roads if m.in_lane})
            out_lanes = sorted({m.out_lane for m in roads if m.out_lane})
            exchanges0 = getattr(backend, "exchanges", 0)
            upstream, downstream = backend.lane_zones(in_lanes, out_lanes)
            split = backend.lane_split_zones(in_lanes)
            zoned = {lane for side in (upstream, downstream) for zone in side.values() for lane, _ in zone}
            zoned |= {lane for zone in split.values() for lane, _, _ in zone}
            lengths_m = {lane: backend.lane_length_m(lane) for lane in (*in_lanes, *out_lanes, *zoned)}
            shapes = backend.lane_shapes(in_lanes)
            return (upstream, downstream, split, lengths_m, shapes, zoned,
                    getattr(backend, "exchanges", 0) - exchanges0)
        finally:
            backend.close()

    *here, zoned, _ = read(SumoBackend)
    *there, _, exchanges = read(SumoProcess)
    assert len(zoned) > 40
    assert there == here
    split = here[2]
    assert any(share < 1.0 for zone in split.values() for _, _, share in zone)  # ingolstadt7 has shared lanes
    assert exchanges == 3  # the zones, the split zones, each with their lengths, then every incoming lane's shape



def test_building_the_loop_over_a_worker_takes_three_exchanges_whatever_the_lanes():
    """ingolstadt7 has 59 incoming lanes with zones upstream: the loop's start-up reads the zones, then the
    split zones, each with every length, then every incoming lane's shape, each in one exchange, not a round
    trip per lane."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    cfg = RunConfig(scenario="resco:ingolstadt7", controller="max-pressure")
    scenario = resolve_scenario(cfg)
    end_s = scenario.begin_s + 10
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=end_s), backend_factory=SumoProcess)
    try:
        exchanges0 = fld.backend.exchanges
        stepper = LoopStepper(cfg, fld, end_s)
        assert fld.backend.exchanges - exchanges0 == 3
        assert len(stepper.approach_direction) > 50
        assert set(stepper.approach_direction.values()) == {"north", "south", "east", "west"}
    finally:
        fld.backend.close()

def _single_opts(**more) -> SumoOptions:
    s = load("single")
    return SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=1, **more)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie left (it is no longer running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def test_a_killed_child_makes_the_next_step_raise_field_lost_within_a_second():
    p = SumoProcess(_single_opts())
    p.start()
    try:
        for _ in range(50):
            p.step()
        os.kill(p.pid, signal.SIGKILL)
        began = time.monotonic()
        with pytest.raises(FieldLost, match="SIGKILL"):
            p.step()
        assert time.monotonic() - began < 1.0
        began = time.monotonic()
        with pytest.raises(FieldLost):  # and every call after it, at once
            p.signal_state("C")
        assert time.monotonic() - began < 0.1
        assert isinstance(FieldLost("x"), SimulationError)  # the live runtime's recovery catches it
    finally:
        p.close()
    p.close()


def test_a_child_left_idle_while_its_parent_lives_keeps_serving():
    """The child checks every second that its runtime still runs; a pause between ticks (a paced loop, an
    operator's hold) must not read as the runtime gone, although the child's parent is the fork server."""
    p = SumoProcess(_single_opts())
    p.start()
    try:
        p.step()
        time.sleep(2.5 * worker_module._PARENT_CHECK_S)
        p.step()
        assert p.time_s() > 0
    finally:
        p.close()


def test_a_child_that_stops_answering_is_killed_and_lost():
    p = SumoProcess(_single_opts(), reply_timeout_s=0.5)
    p.start()
    try:
        p.step()
        os.kill(p.pid, signal.SIGSTOP)
        began = time.monotonic()
        with pytest.raises(FieldLost, match="did not answer"):
            p.step()
        assert time.monotonic() - began < 1.5
        assert _gone(p.pid)
    finally:
        p.close()


class _InterruptedOnce:
    """The parent's end of the pipe, with Ctrl-C arriving during the first wait for a reply."""

    def __init__(self, conn):
        self.conn, self.interrupted = conn, False

    def poll(self, timeout=0.0):
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return self.conn.poll(timeout)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_reply_left_behind_by_an_interrupted_wait_does_not_answer_the_next_request():
    p = SumoProcess(_single_opts())
    p.start()
    try:
        assert p.step() == 1.0
        p._conn = _InterruptedOnce(p._conn)
        with pytest.raises(KeyboardInterrupt):
            p.step()  # the child steps to 2 and answers; nobody reads it
        state = p.signal_state("C")
        assert isinstance(state, str) and set(state) <= set("rRyYgGsuoO")
        assert p.step() == 3.0
    finally:
        p.close()


def test_sumo_failing_mid_run_is_a_lost_field(tmp_path):
    """A vehicle SUMO reads only at t=300 (route files are read 200 s ahead) names an edge that does not
    exist: SUMO fails during that step, and the child says why as it goes."""
    routes = tmp_path / "bad.rou.xml"
    routes.write_text('<routes><vehicle id="a" depart="10"><route edges="W_C C_E"/></vehicle>'
                      '<vehicle id="b" depart="400"><route edges="W_C C_E"/></vehicle>'
                      '<vehicle id="ghost" depart="500"><route edges="no_such_edge"/></vehicle></routes>')
    s = load("single")
    p = SumoProcess(SumoOptions(net_file=s.net_file, route_files=(*s.route_files, routes), seed=1))
    p.start()
    try:
        with pytest.raises(FieldLost, match="no_such_edge"):
            for _ in range(400):
                p.step()
        assert 290.0 <= p.time_s() <= 300.0
        assert _gone(p.pid)
    finally:
        p.close()


def test_sumo_refusing_the_input_is_one_line_at_start(tmp_path):
    p = SumoProcess(SumoOptions(net_file=tmp_path / "missing.net.xml"))
    with pytest.raises(SimulationError) as err:
        p.start()
    assert str(err.value).startswith("SUMO refused the input") and "\n" not in str(err.value)
    assert not isinstance(err.value, FieldLost)
    assert _gone(p.pid)


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "worker"])
def test_a_refused_route_file_is_named_beside_sumos_own_reason(tmp_path, in_process):
    """SUMO's line names the edge it does not know, not the file that holds it."""
    routes = tmp_path / "bad.rou.xml"
    routes.write_text('<routes><vehicle id="ghost" depart="0"><route edges="no_such_edge"/></vehicle></routes>')
    s = load("single")
    opts = SumoOptions(net_file=s.net_file, route_files=(routes,), seed=1)
    p = SumoBackend(opts) if in_process else SumoProcess(opts)
    with pytest.raises(SimulationError) as err:
        p.start()
    p.close()
    said = str(err.value)
    assert said.startswith("SUMO refused the input") and "no_such_edge" in said and "\n" not in said
    assert said.endswith(f"(net {s.net_file}; routes {routes})")
    assert not import_libsumo().simulation.isLoaded()  # the failed start left nothing for the next one


def test_a_new_process_resumes_from_a_saved_state(tmp_path):
    """Crash recovery: save at t, lose the process, start another from the state: it is at t with the
    same vehicles on the same lanes, steps on, and two resumptions evolve alike."""
    opts = _single_opts()
    p = SumoProcess(opts)
    p.start()
    try:
        timing = RunConfig().timing.model_dump(exclude={"per_intersection"})
        lanes = sorted({ln for inter in p.read_signals(timing)[0] for ln in (*inter.in_lanes, *inter.out_lanes)})
        p.register_lanes(lanes)
        for _ in range(240):
            p.step()
        at_save = p.lane_counts(lanes)
        state = p.save_state(tmp_path / "state" / "at240.xml")
        for _ in range(30):
            p.step()
        os.kill(p.pid, signal.SIGKILL)
        with pytest.raises(FieldLost):
            p.step()
    finally:
        p.close()
    assert sum(ls.count_veh for ls in at_save.values()) > 10
    after = []
    for _ in range(2):
        q = SumoProcess(dataclasses.replace(opts, load_state=state, begin_s=None))
        q.start()
        try:
            assert q.time_s() == 240.0 and q.pid != p.pid
            assert q.lane_counts(lanes) == at_save
            q.register_lanes(lanes)
            for _ in range(60):
                q.step()
            assert q.time_s() == 300.0
            after.append(q.lane_counts(lanes))
        finally:
            q.close()
    assert after[0] == after[1]
    assert sum(ls.count_veh for ls in after[0].values()) > 10


ORPHAN = textwrap.dedent("""
    import sys, time
    from signalwise.sim.backend import SumoOptions
    from signalwise.sim.scenario import load
    from signalwise.sim.worker import SumoProcess
    s = load("single")
    p = SumoProcess(SumoOptions(net_file=s.net_file, route_files=s.route_files))
    p.start()
    p.step()
    print(p.pid, flush=True)
    time.sleep(600)
""")


def test_killing_the_parent_leaves_no_sumo_running():
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 5.0
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), f"SUMO child {child} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_loop_resumes_on_a_new_process_after_the_old_one_is_killed(tmp_path):
    """What the live runtime's recovery does: the loop's checkpoint and SUMO's state saved together,
    the child killed, a new one started from the state; the loop reads from and writes to the new one
    (even when `field.backend` was swapped before `restore`, as the runtime does)."""
    cfg = RunConfig(scenario="single", controller="actuated", seed=1)
    scenario = resolve_scenario(cfg)
    layout = place_detectors(scenario.net_file, tmp_path, live=True)
    opts = sumo_options(cfg, scenario, end_s=scenario.begin_s + DURATION_S)
    opts.additional_files = (*opts.additional_files, *layout.additional_files)
    fld = open_field(cfg, scenario, opts, layout, backend_factory=SumoProcess)
    stepper = LoopStepper(cfg, fld, scenario.begin_s + DURATION_S)
    old = fld.backend
    try:
        while stepper.t < 120:
            stepper.step()
        state = old.save_state(tmp_path / "state.xml")
        checkpoint = stepper.checkpoint()
        for _ in range(10):
            stepper.step()
        os.kill(old.pid, signal.SIGKILL)
        with pytest.raises(FieldLost):
            stepper.step()
    finally:
        old.close()
    new = SumoProcess(dataclasses.replace(opts, load_state=state, begin_s=None))
    new.start()
    try:
        fld.backend = new
        stepper.restore(checkpoint, new)
        assert stepper.source is new and stepper.sink is new and stepper.t == 120.0
        while not stepper.done:
            stepper.step()
        assert any(e.time_s > 200 for e in stepper.events())
    finally:
        new.close()
