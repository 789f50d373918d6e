"""The stop-bar counts after a SUMO resumes from a saved state (crash recovery): SUMO's saved state keeps no loop
counts, so `detector_counts_veh` stays empty (never SUMO's zeros for "no period yet") until a whole 900 s period
after the restore has ended, and then holds that period's vehicles, as docs/controllers.md "Counting periods" says.

Real SUMO runs on `single`: resumed as a live recovery does (`SumoOptions.load_state`), by `SumoBackend.load_state`
in a running SUMO, and over TraCI from a SUMO started elsewhere with the state (`remote_port`)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from types import SimpleNamespace

import pytest
from support.loopback import free_port

from signalwise.core.types import ObservationNeed
from signalwise.sim.backend import SumoBackend, SumoOptions, build_command
from signalwise.sim.detectors import place_detectors
from signalwise.sim.scenario import load

pytestmark = pytest.mark.slow

PERIOD_S = 900.0  # sim/detectors.py COUNT_PERIOD_S, as docs/controllers.md gives it
SAVED_AT_S = 1000.0  # after the first run's first period: its loops had counts when it was saved


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    where = tmp_path_factory.mktemp("restore")
    s = load("single")
    layout = place_detectors(s.net_file, where / "det", instant=False)
    opts = SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=5, additional_files=(layout.live_file,))
    with SumoBackend(opts) as b:
        loops = tuple(b.api.inductionloop.getIDList())
        while b.time_s() < SAVED_AT_S:
            b.step()
        assert sum(b.api.inductionloop.getLastIntervalVehicleNumber(d) for d in loops) > 50
        state = b.save_state(where / "state.xml")
    return opts, state, loops


def _follow(b: SumoBackend, loops: tuple[str, ...], until_s: float) -> list[tuple[float, dict, dict]]:
    """(time, the observation's counts, the vehicles seen over each loop since the restore) at every step."""
    inter, need = SimpleNamespace(id="x"), ObservationNeed(detector_count_ids=loops)
    seen: dict[str, list[set]] = {d: [set()] for d in loops}
    rows = []
    while b.time_s() < until_s:
        b.step()
        t = b.time_s()
        for d in loops:
            seen[d][-1].update(b.api.inductionloop.getLastStepVehicleIDs(d))
        rows.append((t, b.observe(inter, t, need).detector_counts_veh, {d: len(seen[d][-1]) for d in loops}))
    return rows


def test_a_sumo_started_from_the_state_counts_a_whole_period_from_the_restore(saved):
    """The live recovery's way: a new SUMO loads the state as it starts."""
    opts, state, loops = saved
    with SumoBackend(dataclasses.replace(opts, load_state=state)) as b:
        assert b.time_s() == SAVED_AT_S
        rows = _follow(b, loops, SAVED_AT_S + PERIOD_S + 60)
    _check_period(rows, loops, SAVED_AT_S, SAVED_AT_S + PERIOD_S)


def test_a_state_loaded_into_a_running_sumo_counts_from_its_first_whole_period(saved):
    """`SumoBackend.load_state`: SUMO keeps its loops' periods going from the time the load was asked at, so the
    first period after the load holds only part of one; the counts wait for the one after."""
    opts, state, loops = saved
    with SumoBackend(opts) as b:
        for _ in range(200):
            b.step()
        assert b.load_state(state) == SAVED_AT_S
        # periods from 200 s: the first ends at 1100 s with 100 s of vehicles, the next, whole, at 2000 s
        rows = _follow(b, loops, 200 + 2 * PERIOD_S + 60)
    # SUMO 1.28 counts a little fewer here than the vehicles seen over the loops (14 of 1330 with seed 5, and more
    # on some runs under parallel tests): a quirk of a state loaded into a running SUMO, which the live recovery
    # does not use; what this test holds is the wait for a whole period, so 3 % of the period's vehicles is allowed
    _check_period(rows, loops, 200 + PERIOD_S, 200 + 2 * PERIOD_S, off_veh=40)


def test_a_sumo_started_elsewhere_from_the_state_counts_a_whole_period_from_its_begin(saved):
    """`remote_port`: a SUMO started from the state by someone else, connected to as it waits."""
    opts, state, loops = saved
    port = free_port()
    cmd = build_command(dataclasses.replace(opts, load_state=state)) + ["--remote-port", str(port)]
    sumo = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with SumoBackend(SumoOptions(remote_port=port)) as b:
            rows = _follow(b, loops, SAVED_AT_S + PERIOD_S + 60)
    finally:
        sumo.wait(timeout=30)
    _check_period(rows, loops, SAVED_AT_S, SAVED_AT_S + PERIOD_S)


def _check_period(rows, loops, period_start_s: float, whole_from_s: float, off_veh: int = 5) -> None:
    """Empty before `whole_from_s`; from then each loop's count is the vehicles seen over it in the whole period
    that ended there (from `period_start_s`), all loops together off by at most `off_veh` (a vehicle over a loop as
    a period ends is SUMO's in the next; 2 and 3 were both seen on the same seed, from one run to the next)."""
    before = [(t, c) for t, c, _ in rows if t < whole_from_s - 1e-6]
    assert before and [x for x in before if x[1]] == []
    after = [(t, c) for t, c, _ in rows if t >= whole_from_s - 1e-6]
    assert after and all(set(c) == set(loops) for _, c in after)
    seen = {}  # vehicles over each loop in the period: those seen by its end, less those seen by its start
    for t, _, n in rows:
        if abs(t - period_start_s) < 1e-6:
            seen = {d: -n[d] for d in loops}
        if abs(t - whole_from_s) < 1e-6:
            seen = {d: seen.get(d, 0) + n[d] for d in loops}
    counts = after[0][1]
    assert sum(counts.values()) > 50
    assert sum(abs(counts[d] - seen[d]) for d in loops) <= off_veh, (counts, seen)


PLANNER = '''\
import json

from signalwise.core import Decision


class Planner:
    """Wants the counts at every decision and logs what each got."""

    name = "planner"
    observation = "counts"
    wants_detectors = True
    period_s = 10.0

    def __init__(self, inter, ctx):
        self.inter = inter
        self.needs_counts_at = ctx.begin_s

    def decide(self, obs):
        with open(LOG, "a") as log:  # no file held: the run's saved state holds the controller
            log.write(json.dumps({"t": obs.time_s, "counts": obs.detector_counts_veh}) + "\\n")
        return Decision(self.inter.id, None, self.name)


def make(inter, ctx):
    return Planner(inter, ctx)
'''


def test_a_live_recovery_gives_no_counts_until_a_whole_period_after_the_restore(tmp_path):
    """A real live run whose simulator is killed after its first period: the controller had counts before the
    crash; after the recovery it gets none (not zeros) until a whole period after the restored time, then the
    vehicles of that period."""
    from support.crashes import crash_at

    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    log = tmp_path / "decisions.jsonl"
    (tmp_path / "planner.py").write_text(PLANNER.replace("LOG", repr(str(log))))
    rt = LiveRuntime(RunConfig(scenario="single", controller=f"py:{tmp_path / 'planner.py'}:make", interval_s=60.0),
                     LiveOptions(speed=None, duration_s=2200, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    crash_at(rt, [1230.0])
    rt.run()
    assert rt.restarts == 1
    resumed = rt.recoveries[0]["resumed_at_s"]
    assert 1170 <= resumed < 1230
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    back = next(i for i in range(1, len(rows)) if rows[i]["t"] < rows[i - 1]["t"])  # the first after the recovery
    before, after = rows[:back], rows[back:]
    assert [r["t"] for r in before if r["counts"]] == [r["t"] for r in before if r["t"] >= PERIOD_S]
    assert sum(before[-1]["counts"].values()) > 50
    assert after[0]["t"] <= resumed + 10
    assert [r["t"] for r in after if r["counts"]] == [r["t"] for r in after if r["t"] >= resumed + PERIOD_S]
    assert any(r["counts"] for r in after) and all(sum(r["counts"].values()) > 50 for r in after if r["counts"])
