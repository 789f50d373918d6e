"""Emergency vehicles that follow one another on one approach (every 25 s, each standing 30 s inside the
preemption distance) make one continuous preemption at the signal: a real SUMO run of `single` shows the
signal's maximum dwell (45 s) bound it (110, then the other phases served before the next call), the audit
passes the log, and the live figure `preempt_active_s` counts the signal's preemption from its first 102, not
the youngest call's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import signalwise
from signalwise.analytics.safety_audit import audit_run
from signalwise.core import read_events
from signalwise.core.types import EventCode
from signalwise.runtime.live.preemption_watch import PreemptionWatch

SIGNALWISE = Path(sys.executable).with_name("signalwise")
NET = Path(signalwise.__file__).parent / "sim" / "scenarios" / "single" / "net.net.xml"
MAX_DWELL_S = 45.0
ENGINES = 6


def _routes() -> str:
    engines = "\n".join(
        f'    <vehicle id="ev{k}" type="engine" depart="{5 + 25 * k}" departLane="1" departSpeed="max">\n'
        f'        <route edges="W_C C_E"/>\n        <stop lane="W_C_1" endPos="{120 - 8 * k}" duration="30"/>\n'
        "    </vehicle>" for k in range(ENGINES))
    return f"""<routes>
    <vType id="car" vClass="passenger" length="4.5" accel="2.6" decel="4.5" sigma="0.5"/>
    <vType id="engine" vClass="emergency" length="6.5" accel="2.8" decel="5.0" sigma="0.3" speedFactor="1.3"/>
    <flow id="ns" type="car" begin="0" end="400" vehsPerHour="360" from="N_C" to="C_S"/>
    <flow id="ew" type="car" begin="0" end="400" vehsPerHour="360" from="E_C" to="C_W"/>
{engines}
</routes>
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("rolling")
    (tmp / "r.rou.xml").write_text(_routes())
    (tmp / "c.yaml").write_text(f"shield:\n  preempt_max_dwell_s: {MAX_DWELL_S}\n")
    done = subprocess.run([str(SIGNALWISE), "run", "--net", str(NET), "--routes", str(tmp / "r.rou.xml"), "-c",
                           "max-pressure", "--duration", "400", "--evidence", "inline", "--config",
                           str(tmp / "c.yaml"), "--out", str(tmp / "out")], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return next(p.parent for p in (tmp / "out").rglob("events.csv"))


def _episodes(events) -> list[tuple[float, float, int]]:
    """(first 102, last 104, calls) of each stretch the signal had a call on, from the log."""
    on: set[int] = set()
    out: list[list] = []
    for e in sorted(events, key=lambda e: (e.time_s, e.event_code != EventCode.PREEMPT_CALL_OFF)):
        if e.event_code == EventCode.PREEMPT_CALL_ON:
            if not on:
                out.append([e.time_s, None, 0])
            on.add(e.parameter)
            out[-1][2] += 1
        elif e.event_code == EventCode.PREEMPT_CALL_OFF:
            on.discard(e.parameter)
            if not on:
                out[-1][1] = e.time_s
    return [tuple(x) for x in out]


def test_engines_in_a_row_are_one_preemption_bounded_by_the_signals_dwell(run_dir):
    events = [e for e in read_events(run_dir / "events.csv") if e.device_id == "C"]
    episodes = _episodes(events)
    assert any(n >= 2 for _a, _b, n in episodes), episodes  # calls overlapped: one preemption, several calls
    timeouts = [e.time_s for e in events if e.event_code == EventCode.PREEMPT_MAX_PRESENCE_EXCEEDED]
    assert timeouts, episodes
    for a, b, _n in episodes:
        dwells = [e.time_s for e in events if e.event_code == EventCode.PREEMPT_BEGIN_DWELL and a <= e.time_s <= b]
        assert not dwells or b - dwells[0] <= MAX_DWELL_S + 1.0 + 1e-6, (a, b, dwells)
    report = audit_run(run_dir)
    assert report.ok, [str(v) for v in report.violations[:5]]
    rules = [line.split(",")[2] for line in (run_dir / "interventions.csv").read_text().splitlines()[1:]]
    assert "preempt_reservice" in rules

    # the live figure, read from the same log second by second, is the signal's preemption's age
    watch = PreemptionWatch()
    longest = 0.0
    by_second: dict[int, list] = {}
    for e in events:
        by_second.setdefault(int(e.time_s), []).append(e)
    for t in range(0, 401):
        watch.observe(by_second.get(t, []))
        longest = max(longest, watch.figures(float(t))["preempt_active_s"])
    assert longest == pytest.approx(max(b - a for a, b, _n in episodes if b is not None), abs=1.0)
