"""Coordinated fixed-time control on a real SUMO run: a three-signal arterial from SUMO's netgenerate whose programs
share an 80 s cycle with offsets 0, 25 and 55 s. Under the safety profile's clearances (longer than the program's
3 s yellow), each phase's green onsets recur every cycle at the offset's position in the program, within a step,
and the independent audit finds nothing; `fixed` (the program's greens from the run's start) does not hold them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.sumo_home import sumo_home

OFFSETS_S = {"A0": 0.0, "B0": 25.0, "C0": 55.0}
CYCLE_S = 80.0
STEP_S = 1.0
#: onsets from here on are past the run's start transition (which may take most of a cycle per signal)
SETTLED_S = 2 * CYCLE_S


def _arterial(folder: Path) -> tuple[Path, Path]:
    """netgenerate's 3x1 grid with signals at A0, B0, C0 (static, 80 s cycle: 37 s green + 3 s yellow, twice), the
    offsets written into the network, and through traffic both ways plus some cross traffic."""
    home = sumo_home()
    plain = folder / "plain.net.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.x-number", "3", "--grid.y-number", "1",
                    "--grid.length", "200", "--grid.attach-length", "150", "--tls.set", "A0,B0,C0",
                    "--tls.cycle.time", str(int(CYCLE_S)), "--tls.default-type", "static", "-o", str(plain)],
                   check=True, capture_output=True, env={**os.environ, "SUMO_HOME": str(home)})
    text = plain.read_text()
    for tls, offset in OFFSETS_S.items():
        text, n = re.subn(rf'(<tlLogic id="{tls}" [^>]*offset=)"0"', rf'\g<1>"{offset:g}"', text)
        assert n == 1, tls
    net = folder / "art.net.xml"
    net.write_text(text)
    routes = folder / "art.rou.xml"
    routes.write_text("""<routes>
  <flow id="eb" from="left0A0" to="C0right0" begin="0" end="3600" vehsPerHour="500"/>
  <flow id="wb" from="right0C0" to="A0left0" begin="0" end="3600" vehsPerHour="400"/>
  <flow id="nb" from="bottom1B0" to="B0top1" begin="0" end="3600" vehsPerHour="150"/>
  <flow id="sb" from="top0A0" to="A0bottom0" begin="0" end="3600" vehsPerHour="120"/>
</routes>""")
    return net, routes


def _program_onsets_s(net: Path) -> dict[str, list[float]]:
    """Per signal, where each green (a state with a green and no yellow) begins in its program, read from the
    network file: the positions a coordinated plan keeps."""
    out = {}
    for logic in ET.parse(net).getroot().iter("tlLogic"):
        if logic.get("id") not in OFFSETS_S:
            continue
        t, onsets = 0.0, []
        for phase in logic.iter("phase"):
            state = phase.get("state")
            if "G" in state and "y" not in state.lower():
                onsets.append(t)
            t += float(phase.get("duration"))
        assert t == CYCLE_S
        out[logic.get("id")] = onsets
    return out


def _green_onsets_s(run_dir: Path) -> dict[tuple[str, int], list[float]]:
    """(signal, phase number) -> the times its greens began (event 1), s from the run's start."""
    out: dict[tuple[str, int], list[float]] = {}
    with open(run_dir / "events.csv") as fh:
        rows = list(csv.DictReader(fh))
    t0 = dt.datetime.fromisoformat(rows[0]["TimeStamp"])
    for r in rows:
        if r["EventId"] == "1":
            t = (dt.datetime.fromisoformat(r["TimeStamp"]) - t0).total_seconds()
            out.setdefault((r["DeviceId"], int(r["Parameter"])), []).append(t)
    return out


def _off_schedule_s(onset_s: float, tls: str, program_onset_s: float) -> float:
    """How far a green onset is from the nearest point (offset + program onset) mod cycle, s."""
    d = (onset_s - OFFSETS_S[tls] - program_onset_s) % CYCLE_S
    return min(d, CYCLE_S - d)


def _run(tmp_path: Path, controller: str, **config) -> tuple[Path, dict]:
    net, routes = _arterial(tmp_path)
    cfg = RunConfig(net=net, routes=[routes], controller=controller, duration_s=420, emissions=False,
                    step_length_s=STEP_S, **config)
    result = execute_run(cfg, tmp_path / controller)
    return result.run_dir, result.metrics


@pytest.mark.slow
def test_coordinated_greens_recur_every_cycle_at_the_programs_offset(tmp_path):
    run_dir, metrics = _run(tmp_path, "coordinated")
    assert metrics["safety"]["violations"] == 0, metrics["safety"]
    program = _program_onsets_s(tmp_path / "art.net.xml")
    onsets = _green_onsets_s(run_dir)
    for tls, positions in program.items():
        plan = metrics["coordination"][tls]
        assert plan["cycle_s"] == CYCLE_S and plan["offset_s"] == OFFSETS_S[tls]
        # the safety profile's yellow + all-red is longer than the program's 3 s yellow: the greens give it up
        assert all(c > 3.0 for c in plan["clearance_s"]), plan
        assert plan["green_s"] == [s - c for s, c in zip(plan["split_s"], plan["clearance_s"], strict=True)]
        for number, position in enumerate(positions, start=1):
            settled = [t for t in onsets[(tls, number)] if t >= SETTLED_S]
            assert len(settled) >= 2, (tls, number, onsets[(tls, number)])
            for t in settled:
                assert _off_schedule_s(t, tls, position) <= STEP_S + 1e-9, (tls, number, t, settled)
            gaps = [b - a for a, b in zip(settled, settled[1:], strict=False)]
            assert all(abs(g - CYCLE_S) <= STEP_S + 1e-9 for g in gaps), (tls, number, gaps)
    assert not metrics.get("warnings"), metrics.get("warnings")


@pytest.mark.slow
def test_fixed_does_not_hold_the_programs_offset(tmp_path):
    """The check above can fail: `fixed` plays the same program from the run's start under the same clearances,
    and its onsets leave the offsets' positions."""
    run_dir, metrics = _run(tmp_path, "fixed")
    assert metrics["safety"]["violations"] == 0
    program = _program_onsets_s(tmp_path / "art.net.xml")
    onsets = _green_onsets_s(run_dir)
    worst = max(_off_schedule_s(t, tls, program[tls][number - 1])
                for (tls, number), ts in onsets.items() for t in ts if t >= SETTLED_S)
    assert worst > STEP_S, worst


@pytest.mark.slow
def test_a_signal_whose_splits_cannot_hold_the_minimum_green_is_not_coordinated_and_the_run_says_why(tmp_path):
    # 37 s + 3 s splits leave 34 s of green after the safety profile's 6 s change: below a 36 s minimum green
    run_dir, metrics = _run(tmp_path, "coordinated", timing={"min_green_s": 36, "max_green_s": 60})
    assert metrics["safety"]["violations"] == 0
    for tls in OFFSETS_S:
        reason = metrics["coordination"][tls]["not_coordinated"]
        assert "below its shortest green 36 s" in reason, reason
        said = [w for w in metrics["warnings"] if f"coordinated at signal {tls!r} runs the uncoordinated plan" in w]
        assert len(said) == 1, metrics["warnings"]
    # the plan fixed runs: every green 37 s (the program's), from the run's start
    with open(run_dir / "events.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["DeviceId"] == "B0" and r["EventId"] in ("1", "8")]
    times = [dt.datetime.fromisoformat(r["TimeStamp"]) for r in rows]
    greens = [(b - a).total_seconds() for a, b, r in zip(times, times[1:], rows, strict=False)
              if r["EventId"] == "1"]
    assert greens and all(g == 37.0 for g in greens), greens


def test_compare_runs_coordinated_beside_fixed_on_the_corridor(tmp_path):
    """`signalwise compare --controllers fixed,coordinated` on the built-in corridor (as its help lists it): both
    run, the audit finds nothing, and the coordinated runs hold a plan at every signal of the corridor."""
    from support.cli import signalwise

    out = tmp_path / "cmp"
    p = signalwise("compare", "-s", "corridor", "--controllers", "fixed,coordinated", "--seeds", "1",
                   "--duration", "120", "--workers", "1", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["controllers"] == ["fixed", "coordinated"] and summary["failures"] == {}
    coordinated = json.loads((out / "coordinated-s1" / "metrics.json").read_text())
    assert coordinated["safety"]["violations"] == 0
    assert set(coordinated["coordination"]) == {"J1", "J2", "J3", "J4", "J5"}
    assert all("not_coordinated" not in plan for plan in coordinated["coordination"].values())
