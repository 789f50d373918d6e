"""A clearance configured below ITE's for a signal's geometry runs as given and is said (docs/configuration.md,
`timing.all_red_s`): by a live run as `signalwise run` records it in metrics.json, word for word. Real SUMO on corridor, whose J2
phase 3 needs a 2.4 s red clearance by ITE.

Found in a trial: `PUT /live/config/timing/intersections/J2 {"timing": {"all_red_s": 2}}` was answered
`applied` with an empty reason and nothing on stderr, replayed at every restart without a word, and a
`signalwise live --config` with the same value warned neither; only `signalwise run` and the audit said it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
J2_RED_2S = "timing:\n  per_intersection:\n    J2:\n      all_red_s: 2\n"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "ar.yaml"
    path.write_text(J2_RED_2S)
    return path


@pytest.fixture(scope="module")
def run_says(tmp_path_factory) -> str:
    """The warning `signalwise run` records for J2's red clearance of 2 s in its metrics.json (its terminal gives
    it as a line per setting)."""
    tmp = tmp_path_factory.mktemp("run")
    done = subprocess.run([SIGNALWISE, "run", "-s", "corridor", "-c", "max-pressure", "--config", str(_config(tmp)),
                           "--duration", "20", "--out", str(tmp / "runs")], capture_output=True, text=True,
                          timeout=300, cwd=tmp)
    assert done.returncode == 0, done.stderr
    run_dir = next((tmp / "runs").iterdir())
    said = [w for w in json.loads((run_dir / "metrics.json").read_text())["warnings"] if "below ITE" in w]
    assert len(said) == 1 and said[0].startswith("signal 'J2': below ITE: "), said
    assert "warning: below ITE at signal J2: timing.per_intersection.J2.all_red_s 2 s, where ITE's red clearance is " \
        in " ".join(done.stdout.split()), done.stdout
    return said[0]


def _runtime(out: Path, cfg: RunConfig | None = None) -> LiveRuntime:
    return LiveRuntime(cfg or RunConfig(scenario="corridor", controller="max-pressure"),
                       LiveOptions(speed=None, duration_s=5, in_process=True, state_every_s=60), out / "run")


def _logged(rt: LiveRuntime) -> list[dict]:
    return [json.loads(line) for line in (rt.run_dir / "changes.jsonl").read_text().splitlines()]


def test_a_change_below_ite_is_said_in_its_answer_the_log_and_stderr_and_again_at_each_replay(run_says, tmp_path,
                                                                                                caplog):
    out = tmp_path / "a"
    rt = _runtime(out)
    rt.open()
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        answer = rt.submit(ch.SignalTimingChange(intersection_id="J2", timing={"all_red_s": 2}), who="ops")
        # another signal's change says nothing of J2's clearance (as a raised cycle bound is said: the signal's own)
        other = rt.submit(ch.SignalTimingChange(intersection_id="J1", timing={"min_green_s": 12}), who="ops")
    rt.run()
    assert answer["result"] == "applied" and answer["reason"] == run_says, answer
    assert other["result"] == "applied" and other["reason"] == "", other
    assert _logged(rt)[0]["reason"] == run_says
    said = [r.getMessage() for r in caplog.records if "below ITE" in r.getMessage()]
    assert said == [f"signal_timing change by ops: {run_says}"], said

    caplog.clear()
    again = _runtime(out)  # the corridor starts over: the lasting change is applied again, and said again
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        again.open()
    again.run()
    replayed = [e for e in _logged(again) if e.get("replayed") and e["payload"].get("intersection_id") == "J2"]
    assert [e["reason"] for e in replayed] == [run_says], replayed
    said = [r.getMessage() for r in caplog.records if "below ITE" in r.getMessage()]
    assert said == [f"signal_timing change by restart: {run_says}"], said


def test_a_whole_timing_change_below_ite_names_each_signal_it_is_below_at(run_says, tmp_path):
    rt = _runtime(tmp_path)
    rt.open()
    answer = rt.submit(ch.TimingChange(timing={"all_red_s": 2}), who="ops")
    rt.run()
    assert answer["result"] == "applied"
    lines = answer["reason"].split("; signal ")
    # J2's line as the run says it, its key being the run's timing here rather than J2's own
    assert run_says.replace("timing.per_intersection.J2.all_red_s", "timing.all_red_s") in answer["reason"], answer
    assert all(line.startswith(("signal '", "'")) and "below ITE" in line for line in lines), lines


@pytest.mark.slow  # a whole `signalwise live` process (6 s here); the change and replay paths run in make test
def test_live_with_a_config_below_ite_says_it_at_start_on_stderr(run_says, tmp_path):
    done = subprocess.run([SIGNALWISE, "live", "-s", "corridor", "-c", "max-pressure", "--config",
                           str(_config(tmp_path)), "--speed", "max", "--duration", "5", "--host", "127.0.0.1",
                           "--port", "0", "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "below ITE" in line]
    assert len(said) == 1 and said[0].endswith(f"signalwise.live: {run_says}"), done.stderr
