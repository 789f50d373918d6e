"""A full run's evidence recorded by a second SUMO that replays the run's signal states (`sim/replay.py`).

The replay records the emissions, the per-edge intervals and the detector passages, and reads them in its own
process. It must be the same traffic as the run, to the byte, or its files are not the run's evidence.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from signalwise.runtime.compare import compare_controllers
from signalwise.runtime.config import RunConfig
from signalwise.runtime.evidence import EvidenceReplay, replay_digest
from signalwise.runtime.loop import resolve_scenario, run_loop, sumo_options
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import SimulationError
from signalwise.sim.replay import ReplayProcess, same_traffic, writes_own_outputs

EVIDENCE = ("events.csv", "detector_passages.csv", "timeseries.csv", "trips.csv", "queues.csv", "signal_states.csv")


@pytest.mark.parametrize(("scenario", "controller", "duration_s"), [
    ("corridor", "max-pressure", 700),  # emergency vehicles preempt three times (calls at 587, 609, 627 s)
    ("corridor", "actuated", 300),  # a controller that reads SUMO's live detector loops
    ("single", "max-pressure", 900),  # pedestrians and their signals
])
@pytest.mark.slow
def test_a_replayed_record_is_the_inline_record_byte_for_byte(tmp_path, scenario, controller, duration_s):
    runs = {}
    for evidence in ("inline", "replay"):
        cfg = RunConfig(scenario=scenario, controller=controller, duration_s=duration_s, evidence=evidence)
        runs[evidence] = execute_run(cfg, tmp_path / evidence)
    inline, replay = runs["inline"], runs["replay"]
    if scenario == "corridor" and controller == "max-pressure":
        assert replay.metrics["network"]["preemptions"] > 0
    assert replay.metrics["evidence"] == {"mode": "replay", "same_traffic": True}
    assert "evidence" not in inline.metrics
    for name in EVIDENCE:
        assert (replay.run_dir / name).read_bytes() == (inline.run_dir / name).read_bytes(), name
    assert replay.metrics["network"] == inline.metrics["network"]
    assert replay.metrics["intersections"] == inline.metrics["intersections"]
    assert replay.metrics["safety"] == inline.metrics["safety"]  # audited in a forked process, and inline
    assert replay.metrics["safety"]["violations"] == 0 and replay.metrics["safety"]["checked"]
    assert replay.metrics["network"]["co2_kg"] > 0
    assert len((replay.run_dir / "detector_passages.csv").read_text().splitlines()) > 100
    assert (replay.run_dir / "sumo" / "emissions.xml").read_bytes().split(b"-->", 1)[1] == \
        (inline.run_dir / "sumo" / "emissions.xml").read_bytes().split(b"-->", 1)[1]
    # the emissions were the replay's alone, the cheap records the run's: SUMO writes the options it ran with at
    # the head of its outputs
    run_head, replay_head = (_options_header(replay.run_dir / "sumo" / name)
                             for name in ("tripinfo.xml", "replay-tripinfo.xml"))
    assert "emissions.add.xml" not in run_head and "emissions.add.xml" in replay_head
    for recording in ("meandata.add.xml", "detectors-instant.add.xml"):
        assert recording in run_head and recording not in replay_head, recording
    assert ("detectors.add.xml" in run_head) == (controller == "actuated")  # the live loops it reads


def _options_header(path):
    text = path.read_text()
    return text[:text.index("-->")]


@pytest.fixture(scope="module")
def lean_loop(tmp_path_factory):
    """A lean run of `single` (600 s, max-pressure): its config and loop, read by the replays of its users (each
    replay writes into a folder of its own)."""
    cfg = RunConfig(scenario="single", controller="max-pressure", duration_s=600, record="lean")
    return cfg, run_loop(cfg, tmp_path_factory.mktemp("lean") / "run")


def _replay_files(tmp_path, loop):
    """The files a replay of `loop` writes, named as `run_loop` names them."""
    out = tmp_path / "replay"
    out.mkdir()
    return {"tripinfo": loop.files["tripinfo"], "replay_tripinfo": out / "replay-tripinfo.xml",
            "emissions": out / "emissions.xml"}


def _start_replay(cfg, loop, files):
    """A replay of `loop` recording its emissions, as `run_loop` starts one, and the `EvidenceReplay` awaiting it."""
    from signalwise.sim.outputs import write_meandata_file

    scenario = resolve_scenario(cfg)
    add = write_meandata_file(files["emissions"].parent / "emissions.add.xml", 60, None, files["emissions"])
    opts = sumo_options(cfg, scenario, end_s=loop.end_s, extra_args=[
        "--tripinfo-output.write-unfinished", "true", "--tripinfo-output.write-undeparted", "true"],
        outputs={"tripinfo-output": files["replay_tripinfo"]})
    opts.additional_files = (*opts.additional_files, add)
    recorder = ReplayProcess(opts, loop.end_s, lambda: replay_digest(files, None, ("emissions",)))
    return recorder, EvidenceReplay(recorder, opts, loop.end_s, ("emissions",))


def test_a_replay_shown_other_states_drives_other_traffic_and_its_files_are_dropped(tmp_path, lean_loop):
    cfg, loop = lean_loop
    files = _replay_files(tmp_path, loop)
    initial = [s for s in loop.signal_states if s[0] == loop.begin_s]
    assert len(initial) < len(loop.signal_states)  # max-pressure changed phase during the run
    recorder, evidence = _start_replay(cfg, loop, files)
    recorder.close_input(loop.end_s, initial)  # the replay sees only the first states: no signal changes phase
    outcome, rows = evidence.wait(files, loop.signal_states, None)
    assert outcome["same_traffic"] is False and rows.emissions == []
    assert "the replay's traffic differs from the run's" in outcome["failed"]
    assert "emissions" not in files and not (tmp_path / "replay" / "emissions.xml").exists()


def test_a_replay_shown_the_same_states_drives_the_same_traffic(tmp_path, lean_loop):
    cfg, loop = lean_loop
    files = _replay_files(tmp_path, loop)
    recorder, evidence = _start_replay(cfg, loop, files)
    recorder.close_input(loop.end_s, loop.signal_states)
    outcome, rows = evidence.wait(files, loop.signal_states, None)
    assert outcome == {"mode": "replay", "same_traffic": True}
    assert b"CO2_abs" in files["emissions"].read_bytes()
    assert rows.emissions and sum(r.get("CO2_abs", 0) for r in rows.emissions) > 0  # read in the replay's process
    assert same_traffic(files["tripinfo"], files["replay_tripinfo"]) is None


def test_a_replay_killed_mid_run_is_replayed_in_the_run_and_the_evidence_is_complete(tmp_path):
    def kill_the_replay(done_s, _total_s):
        if done_s >= 300:
            for child in multiprocessing.active_children():
                if child.name == "signalwise-evidence-replay":
                    child.kill()

    runs = {}
    for evidence in ("replay", "inline"):
        cfg = RunConfig(scenario="single", controller="max-pressure", duration_s=600, evidence=evidence)
        runs[evidence] = execute_run(cfg, tmp_path / evidence, progress=kill_the_replay)
    result, inline = runs["replay"], runs["inline"]
    assert result.status == "complete"
    evidence = result.metrics["evidence"]
    assert evidence["same_traffic"] is True and "the replay process" in evidence["replayed_here"]
    assert "warnings" not in result.metrics
    assert result.metrics["network"] == inline.metrics["network"]  # CO2 and fuel included
    for name in EVIDENCE:
        assert (result.run_dir / name).read_bytes() == (inline.run_dir / name).read_bytes(), name
    assert len((result.run_dir / "detector_passages.csv").read_text().splitlines()) > 10
    assert result.metrics["safety"]["violations"] == 0


def test_an_interrupted_run_stops_its_replay(tmp_path):
    def interrupt(done_s, _total_s):
        if done_s >= 120:
            raise KeyboardInterrupt

    cfg = RunConfig(scenario="single", controller="max-pressure", duration_s=600, evidence="replay")
    with pytest.raises(KeyboardInterrupt):
        execute_run(cfg, tmp_path / "run", progress=interrupt)
    assert not [c for c in multiprocessing.active_children() if c.name == "signalwise-evidence-replay"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "incomplete"


def _network_with_its_own_detector_output(tmp_path):
    from signalwise.sim.scenario import load

    s = load("single")
    lane = "N_C_0"
    add = tmp_path / "own.add.xml"
    add.write_text(f'<additional><inductionLoop id="own" lane="{lane}" pos="10" period="60" file="own.xml"/>'
                   '</additional>')
    cfg_file = tmp_path / "own.sumocfg"
    cfg_file.write_text(f"""<configuration><input><net-file value="{s.net_file}"/>
        <route-files value="{','.join(map(str, s.route_files))}"/><additional-files value="{add.name}"/></input>
        <time><begin value="0"/><end value="300"/></time></configuration>""")
    return cfg_file, add


def test_a_network_that_writes_its_own_files_records_inline(tmp_path):
    cfg_file, add = _network_with_its_own_detector_output(tmp_path)
    assert writes_own_outputs([add]) == [add]
    quiet = tmp_path / "quiet.add.xml"
    quiet.write_text('<additional><inductionLoop id="q" lane="x" pos="1" period="60" file="NUL"/></additional>')
    assert writes_own_outputs([quiet]) == []

    result = execute_run(RunConfig(sumocfg=cfg_file, controller="max-pressure"), tmp_path / "auto")
    assert "evidence" not in result.metrics  # auto: the run's own SUMO recorded it
    assert result.metrics["network"]["co2_kg"] > 0
    with pytest.raises(SimulationError, match="own.add.xml makes SUMO write files"):
        execute_run(RunConfig(sumocfg=cfg_file, controller="max-pressure", evidence="replay"), tmp_path / "forced")


def test_replay_is_refused_where_sumo_is_not_in_this_process(tmp_path):
    with pytest.raises(SimulationError, match="evidence: replay needs SUMO in this process"):
        execute_run(RunConfig(scenario="single", duration_s=60, remote_port=1, evidence="replay"), tmp_path / "r")


@pytest.mark.skipif((os.cpu_count() or 1) > 2, reason="the rule is for runs that fill the machine's cores")
@pytest.mark.slow
def test_compare_runs_that_fill_the_cores_record_inline(tmp_path):
    result = compare_controllers(RunConfig(scenario="single", duration_s=300), ["fixed", "max-pressure"], [1],
                                 tmp_path / "cmp", workers=2)
    assert result.runs and all("evidence" not in m for m in result.runs.values())
    assert all(m["network"]["co2_kg"] > 0 for m in result.runs.values())


def test_an_audit_that_fails_in_its_own_process_fails_as_it_would_here(tmp_path):
    from signalwise.analytics.safety_audit import AuditInputError
    from signalwise.runtime.run import _start_audit

    result = execute_run(RunConfig(scenario="single", duration_s=120, record="lean"), tmp_path / "run")
    events = result.run_dir / "events.csv"
    events.write_text(events.read_text() + "not a time,J1,1,1\n")
    full = RunConfig(scenario="single", evidence="replay")
    with pytest.raises(AuditInputError, match="bad event row"):
        _start_audit(result.run_dir, full)()
    with pytest.raises(AuditInputError, match="bad event row"):
        _start_audit(result.run_dir, full.model_copy(update={"evidence": "inline"}))()


def test_a_replay_whose_sumo_refuses_the_input_ends_in_a_reason_not_a_traceback(tmp_path, capfd):
    """The replay's process hits the refusal the run's own SUMO hits (a broken route file) and, when it gets there
    first, used to print its traceback beside the run's one-line error."""
    from signalwise.sim.backend import SumoOptions
    from signalwise.sim.scenario import load

    bad = tmp_path / "x.rou.xml"
    bad.write_text("this is no route file\n")
    opts = SumoOptions(net_file=load("single").net_file, route_files=(bad,), begin_s=0, end_s=60)
    recorder = ReplayProcess(opts, 60.0, None)
    recorder.close_input(60.0, [])
    assert recorder.wait(60) == "the replay's SUMO could not start or stopped"
    assert "Traceback" not in capfd.readouterr().err


def _tripinfo(path, trips):
    path.write_text('<!-- generated by SUMO, its options and files -->\n<tripinfos>\n'
                    + "".join(f"    {t}\n" for t in trips) + "</tripinfos>\n")
    return path


def _trip(vid, depart, arrival, time_loss):
    # as SUMO writes it: the values that part two SUMOs come past the first 120 characters
    return (f'<tripinfo id="{vid}" depart="{depart}" departLane="28198821#3_1" departPos="4.40" departSpeed="7.66" '
            f'departDelay="0.00" arrival="{arrival}" arrivalLane="32038051#0_1" timeLoss="{time_loss}" '
            f'devices="tripinfo_{vid} routing_{vid}" vType="pkw"/>')


def test_a_replay_that_drove_otherwise_is_told_by_the_vehicle_and_the_values_that_differ(tmp_path):
    first = _trip("151372_418_0", "25207.00", "25240.00", "4.53")
    run = _tripinfo(tmp_path / "run.xml", [first, _trip("193213_435_0", "25775.00", "25849.00", "64.12")])
    replay = _tripinfo(tmp_path / "replay.xml", [first, _trip("193213_435_0", "25775.00", "25847.00", "61.60")])
    assert same_traffic(run, replay) == ("vehicle 193213_435_0 departing at 25775.00, run vs replay: "
                                         "arrival 25849.00 vs 25847.00, timeLoss 64.12 vs 61.60")
    assert same_traffic(run, run) is None


def test_a_replay_that_ended_trips_in_another_order_or_not_at_all_is_told_so(tmp_path):
    a, b = _trip("a", "10.00", "50.00", "1.00"), _trip("b", "12.00", "50.00", "2.00")
    run = _tripinfo(tmp_path / "run.xml", [a, b])
    assert same_traffic(run, _tripinfo(tmp_path / "swapped.xml", [b, a])) == \
        "vehicle a departing at 10.00: the same trip, written later in the replay's output"
    assert same_traffic(run, _tripinfo(tmp_path / "later.xml", [b, _trip("a", "10.00", "55.00", "6.00")])) == \
        "vehicle a departing at 10.00, run vs replay: arrival 50.00 vs 55.00, timeLoss 1.00 vs 6.00"
    assert same_traffic(run, _tripinfo(tmp_path / "none.xml", [b])) == "vehicle a departing at 10.00: not in the " \
        "replay's output"
    assert same_traffic(run, _tripinfo(tmp_path / "fewer.xml", [a])) == "vehicle b departing at 12.00: not in the " \
        "replay's output"
    assert same_traffic(run, tmp_path / "gone.xml").startswith("tripinfo unreadable")
