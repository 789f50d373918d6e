"""A user's additional files in a run (findings 2 and 6 of the consultant's trial).

SUMO writes a detector's `file`, a calibrator's `output` and a timed event's `dest` beside the additional file
that names them: loaded as it is, a user's file writes over the observed counts in the user's folder, and a
comparison's parallel runs write the same file. A run writes them into its own `sumo/additional/` and says so;
SUMO's reason for refusing such a file is in the one error line; an output a .sumocfg asks for is named as not
written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario, sumocfg_note
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import SimulationError, SumoBackend, SumoOptions
from signalwise.sim.scenario import load
from signalwise.sim.worker import SumoProcess

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
USER_OUTPUT = "loops_observed.xml"
PRECIOUS = "<precious field counts/>\n"
LANE = "W_C_1"  # an approach of the built-in single, 236 m long


def _project(folder: Path, pos_m: float = 10.0, output_section: str = "") -> Path:
    """A consultant's folder: the built-in single's network and demand, a loop whose output file is named beside
    its additional file, where a file of that name (the observed counts) already is, and a .sumocfg naming them."""
    single = load("single")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "det.add.xml").write_text(f'<additional><inductionLoop id="d1" lane="{LANE}" pos="{pos_m:g}" '
                                        f'period="60" file="{USER_OUTPUT}"/></additional>')
    (folder / USER_OUTPUT).write_text(PRECIOUS)
    cfg = folder / "det.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{single.net_file}"/><route-files '
                   f'value="{single.route_files[0]}"/><additional-files value="det.add.xml"/></input>'
                   f'{output_section}<time><begin value="0"/><end value="600"/></time></configuration>')
    return cfg


def _loop_intervals(path: Path) -> int:
    return path.read_text().count('<interval begin=')


def test_a_runs_detector_output_is_in_its_directory_and_the_users_file_untouched(tmp_path):
    cfg = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=120, emissions=False), run_dir)
    assert (tmp_path / "project" / USER_OUTPUT).read_text() == PRECIOUS
    written = run_dir / "sumo" / "additional" / USER_OUTPUT
    assert _loop_intervals(written) == 2 and 'id="d1"' in written.read_text()
    warnings = json.loads((run_dir / "metrics.json").read_text())["warnings"]
    said = [w for w in warnings if f"sumo/additional/{USER_OUTPUT}" in w]
    assert len(said) == 1 and "inductionLoop d1 (det.add.xml)" in said[0]
    assert str(tmp_path / "project" / USER_OUTPUT) in said[0]


@pytest.mark.slow
def test_two_parallel_runs_of_a_comparison_each_keep_their_own_output(tmp_path):
    cfg = _project(tmp_path / "project")
    out = tmp_path / "cmp"
    p = subprocess.run([SIGNALWISE, "compare", "--sumocfg", str(cfg), "--controllers", "fixed", "--seeds", "2",
                        "--workers", "2", "--duration", "120", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    outputs = sorted(out.glob(f"*/sumo/additional/{USER_OUTPUT}"))
    assert [o.parent.parent.parent.name for o in outputs] == ["fixed-s1", "fixed-s2"]
    assert all(_loop_intervals(o) == 2 for o in outputs)
    assert (tmp_path / "project" / USER_OUTPUT).read_text() == PRECIOUS
    assert f"sumo/additional/{USER_OUTPUT}" in p.stderr


def test_sumos_reason_for_refusing_an_additional_file_is_in_the_error_line(tmp_path):
    cfg = _project(tmp_path / "project", pos_m=500.0)  # beyond the lane's end
    p = subprocess.run([SIGNALWISE, "run", "--sumocfg", str(cfg), "-c", "fixed", "--duration", "60", "--run-dir",
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    error = p.stderr.strip().splitlines()[-1]
    assert error.startswith("error: SUMO refused the input: The position of e1Detector 'd1' lies beyond the "
                            f"lane's '{LANE}' end"), error
    assert str(tmp_path / "project" / "det.add.xml") in error  # the user's file, not the run's copy of it
    assert "Process Error" not in p.stderr


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "worker"])
def test_the_reason_reaches_a_simulator_in_this_process_and_in_a_worker(tmp_path, in_process):
    _project(tmp_path / "project", pos_m=500.0)
    single = load("single")
    opts = SumoOptions(net_file=single.net_file, additional_files=(tmp_path / "project" / "det.add.xml",))
    sim = SumoBackend(opts) if in_process else SumoProcess(opts)
    with pytest.raises(SimulationError, match="lies beyond the lane's 'W_C_1' end"):
        sim.start()
    sim.close()


def test_a_sumocfg_asking_for_outputs_is_told_they_are_not_written(tmp_path):
    cfg = _project(tmp_path / "project", output_section=(
        '<output><tripinfo-output value="trips.xml"/><fcd-output value="out/fcd.xml"/>'
        '<human-readable-time value="true"/></output>'))
    run_cfg = RunConfig(sumocfg=cfg)
    note = sumocfg_note(run_cfg, resolve_scenario(run_cfg))
    assert (f"tripinfo-output: not written at {tmp_path / 'project' / 'trips.xml'}; the run writes its own trips "
            "into its directory (sumo/tripinfo.xml)") in note
    assert f"fcd-output: not written at {tmp_path / 'project' / 'out' / 'fcd.xml'}" in note
    assert "human-readable-time" not in note and "\n" not in note


def test_a_worker_writes_an_included_files_outputs_where_it_is_told_and_its_inputs_still_resolve(tmp_path):
    """What a live run's simulator does: an `<include>`d file's detector writes into the directory given, and
    the relative inputs of the files copied (the include itself, a variable speed sign's steps) still load."""
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "area.add.xml").write_text(
        f'<additional><laneAreaDetector id="a1" lane="{LANE}" pos="50" endPos="150" period="30" '
        'file="area.xml"/></additional>')
    (folder / "vss.xml").write_text('<vss><step time="0" speed="8"/></vss>')
    (folder / "main.add.xml").write_text(
        '<additional><include href="sub/area.add.xml"/>'
        f'<variableSpeedSign id="v1" lanes="{LANE}" file="vss.xml"/></additional>')
    single = load("single")
    out_dir = tmp_path / "live-run" / "sumo" / "additional"
    sim = SumoProcess(SumoOptions(net_file=single.net_file, route_files=single.route_files, end_s=120,
                                  additional_files=(folder / "main.add.xml",), additional_outputs_dir=out_dir))
    sim.start()
    try:
        for _ in range(90):
            sim.step()
    finally:
        sim.close()
    assert not (folder / "sub" / "area.xml").exists()
    assert (out_dir / "area.xml").read_text().count("<interval begin=") == 3
    assert sorted(p.name for p in (out_dir / "loaded").iterdir()) == ["area.add.xml", "main.add.xml"]


def _project_options(folder: Path) -> SumoOptions:
    """The simulator's options for the user's project, with no run directory to write into."""
    scenario = resolve_scenario(RunConfig(sumocfg=_project(folder)))
    return SumoOptions(net_file=scenario.net_file, route_files=scenario.route_files,
                       additional_files=scenario.additional_files, end_s=120)


def test_without_a_run_directory_the_outputs_go_to_a_scratch_directory_removed_at_close(tmp_path):
    """The start a comparison makes to check the network, a live run's simulator: nothing in the user's folder."""
    sim = SumoBackend(_project_options(tmp_path / "project"))
    sim.start()
    try:
        for _ in range(61):
            sim.step()
    finally:
        sim.close()
    assert (tmp_path / "project" / USER_OUTPUT).read_text() == PRECIOUS
    scratch = sim.additionals.files[0].parent.parent  # the copy SUMO loaded, in `loaded/` of the scratch directory
    assert scratch.name.startswith("signalwise-additional-") and not scratch.exists()


def test_a_killed_worker_leaves_no_scratch_directory_behind(tmp_path):
    """A live run's simulator that crashed or was killed: the directory its outputs went to is made and removed by
    the process that started it, not by the child that died."""
    sim = SumoProcess(_project_options(tmp_path / "project"))
    sim.start()
    try:
        for _ in range(61):
            sim.step()
        assert (tmp_path / "project" / USER_OUTPUT).read_text() == PRECIOUS
        scratch = sim._scratch  # the directory this process made for the child's SUMO
        assert (scratch / "additional" / USER_OUTPUT).is_file()
        os.kill(sim.pid, signal.SIGKILL)
        with pytest.raises(SimulationError):
            sim.step()
    finally:
        sim.close()
    assert not scratch.exists()


# -- the evidence replay: a second SUMO of the run ------------------------------------------------------------------

def _project_including_the_detector(folder: Path) -> Path:
    """`_project`, its .sumocfg naming only `main.add.xml`, which includes the file with the detector."""
    cfg = _project(folder)
    (folder / "main.add.xml").write_text('<additional><include href="det.add.xml"/></additional>')
    cfg.write_text(cfg.read_text().replace('value="det.add.xml"', 'value="main.add.xml"'))
    return cfg


@pytest.mark.parametrize("element", [
    '<include href="det.add.xml"/>',
    '<timedEvent type="SaveTLSStates" source="C" dest="states.xml"/>',
    '<tlLogic id="C" type="actuated" programID="a" offset="0"><param key="file" value="loops.xml"/>'
    '<phase duration="30" state="GGgrrrGGgrrr"/></tlLogic>',
], ids=["include", "timedEvent", "tlLogic-param"])
def test_every_output_an_additional_file_asks_for_keeps_the_evidence_in_the_runs_own_sumo(tmp_path, element):
    from signalwise.sim.replay import writes_own_outputs

    folder = tmp_path / "project"
    _project(folder)
    (folder / "main.add.xml").write_text(f"<additional>{element}</additional>")
    assert writes_own_outputs([folder / "main.add.xml"]) == [folder / "main.add.xml"]


def test_a_run_whose_detector_file_is_included_records_inline_and_leaves_the_users_file_as_it_is(tmp_path):
    """Replayed, a second SUMO would load the user's files as they are, and write the observed counts over."""
    from signalwise.runtime.loop import _replays_evidence

    cfg = _project_including_the_detector(tmp_path / "project")
    observed = tmp_path / "project" / USER_OUTPUT
    before_ns = observed.stat().st_mtime_ns
    auto = RunConfig(sumocfg=cfg, controller="fixed", duration_s=120)
    assert _replays_evidence(auto, resolve_scenario(auto), SumoBackend) is False
    with pytest.raises(SimulationError, match="main.add.xml makes SUMO write files"):
        execute_run(auto.model_copy(update={"evidence": "replay"}), tmp_path / "forced")
    result = execute_run(auto, tmp_path / "run")
    assert "evidence" not in result.metrics and result.metrics["network"]["co2_kg"] > 0  # the run's own SUMO
    assert observed.stat().st_mtime_ns == before_ns and observed.read_text() == PRECIOUS
    assert _loop_intervals(tmp_path / "run" / "sumo" / "additional" / USER_OUTPUT) == 2


def test_the_replays_sumo_writes_the_additional_files_outputs_into_a_directory_of_its_own(tmp_path):
    """Whatever lets a replay start, its SUMO writes what the additional files ask for into the run, beside (not
    over) what the run's own SUMO writes there, and the user's file stays as it is."""
    from signalwise.sim.replay import replay_signal_states

    _project(tmp_path / "project")
    single = load("single")
    sumo_dir = tmp_path / "run" / "sumo"
    sumo_dir.mkdir(parents=True)
    opts = SumoOptions(net_file=single.net_file, route_files=single.route_files,
                       additional_files=(tmp_path / "project" / "det.add.xml",),
                       outputs={"tripinfo-output": sumo_dir / "replay-tripinfo.xml"})
    replay_signal_states(opts, [(120.0, [])], 120.0)
    assert (tmp_path / "project" / USER_OUTPUT).read_text() == PRECIOUS
    assert _loop_intervals(sumo_dir / "additional" / "replay" / USER_OUTPUT) == 2
    assert not (sumo_dir / "additional" / USER_OUTPUT).exists()  # the run's own SUMO's place


def test_a_live_runs_recovery_keeps_what_the_users_detector_wrote_before_the_crash(tmp_path):
    """The simulator is lost at 250 s (libsumo closed under the loop) and started again from the state saved at
    240 s: its SUMO opens the detector's output anew, which would empty the file holding the intervals before."""
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.sim.sumo_home import import_libsumo

    cfg = _project(tmp_path / "project")
    rt = LiveRuntime(RunConfig(sumocfg=cfg, controller="fixed"),
                     LiveOptions(speed=None, duration_s=400, in_process=True, state_every_s=60), tmp_path / "live")
    rt.open()
    step = rt.field.backend.step

    def crash_once():
        if not rt.recoveries and rt.field.backend.time_s() >= 250.0:
            import_libsumo().close()
        return step()
    rt.field.backend.step = crash_once
    rt.run()
    assert [r["crashed_at_s"] for r in rt.recoveries] == [250.0]
    additional = rt.run_dir / "sumo" / "additional"
    assert _loop_intervals(additional / USER_OUTPUT) >= 4  # 0-60 s ... 180-240 s, written before the crash
    assert '<interval begin="0.00"' in (additional / USER_OUTPUT).read_text()
    assert _loop_intervals(additional / "recovery-1" / USER_OUTPUT) >= 2  # from the saved state on
    assert (tmp_path / "project" / USER_OUTPUT).read_text() == PRECIOUS
