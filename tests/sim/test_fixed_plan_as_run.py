"""Where `fixed`, the baseline, runs the network's program other than as written, the run says so: a green shorter
than its phase's minimum (walk + pedestrian clearance, or min_green_s) is lengthened to it, and a cycle that leaves
links waiting past cycle_max_s is cut by the shield. Each is a note in signal_model.json and a warning of the run,
with the figures the signal shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

SINGLE = load("single")
PLAN = "fixed at signal 'C' is not the network's program as written: "
# 20 links: 0-2 E approach, 3 E left, 4-6 N, 7 N left, 8-10 W, 11 W left, 12-14 S, 15 S left, 16-19 crosswalks
EW, EW_LEFT, NS, NS_LEFT = ("gGGrrrrrgGGrrrrrrGrG", "rrrGrrrrrrrGrrrrrrrr", "rrrrgGGrrrrrgGGrGrGr",
                            "rrrrrrrGrrrrrrrGrrrr")
PEDS_ONLY = "rrrrrrrrrrrrrrrrGGGG"


def _yellow(state: str) -> str:
    return state.replace("G", "y").replace("g", "y")


def _with_program(folder: Path, phases: list[tuple[str, float]]) -> Path:
    """The single scenario with signal C running `phases` (state, duration) as its program."""
    tll = folder / "program.add.xml"
    rows = "\n".join(f'    <phase duration="{d:g}" state="{s}"/>' for s, d in phases)
    tll.write_text(f'<additional>\n  <tlLogic id="C" type="static" programID="mine" offset="0">\n{rows}\n'
                   "  </tlLogic>\n</additional>\n")
    cfg = folder / "mine.sumocfg"
    cfg.write_text(f"""<configuration><input>
  <net-file value="{SINGLE.net_file}"/><route-files value="{SINGLE.route_files[0]}"/>
  <additional-files value="{tll.name}"/></input>
  <time><begin value="0"/><end value="900"/></time></configuration>""")
    return cfg


def _greens_s(run_dir: Path, phase: int) -> list[float]:
    """Each whole green of `phase` at C in the event log (begin green 1 to end green 7), s."""
    out, began = [], None
    for e in read_events(run_dir / "events.csv"):
        if e.device_id == "C" and e.parameter == phase and e.event_code == 1:
            began = e.time_s
        elif e.device_id == "C" and e.parameter == phase and e.event_code == 7 and began is not None:
            out.append(round(e.time_s - began, 1))
    return out


def _plan_warning(metrics: dict) -> str | None:
    found = [w for w in metrics.get("warnings", []) if w.startswith(PLAN)]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_an_exclusive_pedestrian_phase_shorter_than_its_walk_and_clearance_is_lengthened_and_said(tmp_path):
    cfg = _with_program(tmp_path, [(EW, 30), (EW_LEFT, 10), (PEDS_ONLY, 8), (NS, 30), (NS_LEFT, 10)])
    r = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=240, emissions=False), tmp_path / "f")
    warning = _plan_warning(r.metrics)
    assert warning is not None, r.metrics.get("warnings")
    said = re.search(r"greens shorter than the minimum green are lengthened to it \(phase 3 8 s < (\d+) s: "
                     r"walk (\d+) s \+ pedestrian clearance (\d+) s\)", warning)
    assert said, warning
    least, walk, clearance = map(int, said.groups())
    assert least == walk + clearance
    # what the note says is what ran: the pedestrian phase shows its walk and clearance, the others as written
    greens = _greens_s(r.run_dir, 3)
    assert greens and set(greens) == {least}, greens
    assert set(_greens_s(r.run_dir, 2)) == {10}
    (model,) = json.loads((r.run_dir / "signal_model.json").read_text())
    assert any(n.endswith(warning.removeprefix(PLAN)) for n in model["notes"]), model["notes"]
    assert audit_run(r.run_dir).ok
    # another controller never plays the program: nothing to say
    other = execute_run(RunConfig(sumocfg=cfg, controller="max-pressure", duration_s=30, emissions=False),
                        tmp_path / "m")
    assert _plan_warning(other.metrics) is None


def test_a_green_shorter_than_min_green_names_the_setting_that_lengthens_it(tmp_path):
    cfg = _with_program(tmp_path, [(EW, 30), (_yellow(EW), 3), (EW_LEFT, 4), (_yellow(EW_LEFT), 3), (NS, 30),
                                   (_yellow(NS), 3), (NS_LEFT, 10), (_yellow(NS_LEFT), 3)])
    r = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=200, emissions=False,
                              timing={"per_intersection": {"C": {"min_green_s": 8}}}), tmp_path / "f")
    warning = _plan_warning(r.metrics)
    assert warning is not None and ("greens shorter than the minimum green are lengthened to it (phase 2 4 s < 8 s: "
                                    "timing.per_intersection.C.min_green_s 8 s)") in warning, warning
    assert set(_greens_s(r.run_dir, 2)) == {8}
    assert set(_greens_s(r.run_dir, 4)) == {10}  # as written: 10 s is above the 8 s minimum


def test_a_cycle_that_leaves_links_waiting_past_cycle_max_is_said_only_when_the_shield_cuts_it(tmp_path):
    """Four phases of 31 s with their yellows make a 152 s cycle as played: more than cycle_max_s 150 s, so the
    shield ends greens early; four of 30 s fit, and nothing is said."""
    def run(green_s: float) -> dict:
        folder = tmp_path / f"g{green_s:g}"
        folder.mkdir()
        cfg = _with_program(folder, [p for s in (EW, EW_LEFT, NS, NS_LEFT) for p in ((s, green_s), (_yellow(s), 3))])
        return execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=420, emissions=False),
                           folder / "f").metrics

    fits, cut = run(30), run(31)
    assert _plan_warning(fits) is None and "cycle_max" not in fits["shield_interventions"]
    warning = _plan_warning(cut)
    assert warning is not None and "its cycle of 152 s as played" in warning and \
        "more than cycle_max_s 150 s: the shield ends greens early" in warning, warning
    assert cut["shield_interventions"].get("cycle_max", 0) > 0


@pytest.mark.slow
def test_compare_says_it_once_before_the_table(tmp_path):
    cfg = _with_program(tmp_path, [(EW, 30), (EW_LEFT, 10), (PEDS_ONLY, 8), (NS, 30), (NS_LEFT, 10)])
    p = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "compare", "--sumocfg", str(cfg),
                        "-c", "fixed,max-pressure", "--seeds", "2", "--duration", "30", "--workers", "1",
                        "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    said = [line for line in p.stderr.splitlines() if "greens shorter than the minimum green" in line]
    assert len(said) == 1 and said[0].startswith(f"warning: {PLAN}") and "(phase 3 8 s < " in said[0], said


def test_signals_with_the_same_sentence_share_one_warning_line():
    """ingolstadt21 under the benchmark profile: 15 signals' 6 s greens lengthened to 7 s made 15 lines alike."""
    from signalwise.runtime.run import plan_warnings

    same = "greens shorter than the minimum green are lengthened to it (phase 2 6 s < 7 s: timing.min_green_s 7 s)"
    notes = {f"S{k}": [same] for k in range(7)} | {"T": ["an offset of 12 s is not played"]}
    lines = plan_warnings(notes)
    assert lines == [
        f"fixed at signals 'S0', 'S1', 'S2', 'S3', 'S4' and 2 more is not the network's program as written: {same}",
        "fixed at signal 'T' is not the network's program as written: an offset of 12 s is not played",
    ]
