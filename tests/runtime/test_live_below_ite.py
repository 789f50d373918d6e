"""A clearance configured below ITE's for a signal's geometry runs as given and is said (docs/configuration.md,
`timing.all_red_s`): by a live run as `signalwise run` records it in metrics.json, word for word. Real SUMO on corridor, whose J2
phase 3 needs a 2.4 s red clearance by ITE.

Found in a trial: `PUT /live/config/timing/intersections/J2 {"timing": {"all_red_s": 2}}` was answered
`applied` with an empty reason and nothing on stderr, replayed at every restart without a word, and a
`signalwise live --config` with the same value warned neither; only `signalwise run` and the audit said it.

A security review then found that any `operate` key could so cut the all-red to 0 s at every signal: under the
safety profile a change at run time below ITE's is refused (`runtime/live/loosening.py`), a stored one is not
applied again, and the --config is where such a value is set (a run started with it may keep it)."""

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


def test_a_change_below_ite_is_refused_at_run_time_and_a_stored_one_is_not_applied_again(tmp_path, caplog):
    """Under the safety profile a clearance below ITE's is not applied at run time (`loosening.clearance_refusal`):
    refused whole, naming the signal, the phase, the value and ITE's. One an earlier version stored in the
    corridor's lasting changes is refused when the corridor starts again, and said (stderr, the change log)."""
    out = tmp_path / "a"
    rt = _runtime(out)
    rt.open()
    with pytest.raises(ch.ChangeRefused, match=r"^timing: signal 'J2': phase 3 all_red_s 2 s below ITE's 2.4 s \("):
        rt.submit(ch.SignalTimingChange(intersection_id="J2", timing={"all_red_s": 2}), who="ops")
    # another signal's change that keeps its clearances is applied, and says nothing of J2's
    other = rt.submit(ch.SignalTimingChange(intersection_id="J1", timing={"min_green_s": 12}), who="ops")
    rt.run()
    assert other["result"] == "applied" and other["reason"] == "", other
    assert rt.timing_in_force()[1].per_intersection == {"J1": {"min_green_s": 12.0}}

    from signalwise.runtime.live.lasting import append_change

    append_change(rt.site_changes_file, {"at": "2026-11-29T23:11:10+00:00", "who": "ops", "kind": "signal_timing",
                                         "payload": {"kind": "signal_timing", "intersection_id": "J2",
                                                     "timing": {"all_red_s": 2}}, "result": "applied", "reason": ""})
    caplog.clear()
    again = _runtime(out)  # the corridor starts over: J1's change applied again, J2's stored one refused
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        again.open()
    again.run()
    replayed = [e for e in _logged(again) if e.get("replayed")]
    assert [(e["payload"]["intersection_id"], e["result"]) for e in replayed] == [("J1", "applied"),
                                                                                   ("J2", "refused")], replayed
    assert replayed[1]["reason"].startswith("timing: signal 'J2': phase 3 all_red_s 2 s below ITE's 2.4 s"), replayed
    assert again.timing_in_force()[1].per_intersection == {"J1": {"min_green_s": 12.0}}
    said = [r.getMessage() for r in caplog.records if "below ITE's" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("a stored change could not be applied again (timing: signal 'J2'")


def test_a_whole_timing_change_below_ite_names_each_signal_it_is_below_at(tmp_path):
    rt = _runtime(tmp_path)
    rt.open()
    with pytest.raises(ch.ChangeRefused) as refused:
        rt.submit(ch.TimingChange(timing={"all_red_s": 2}), who="ops")
    rt.run()
    # J1, J3 and J5 have phases needing 2.2 and 2.4 s; J2 and J4 one needing 2.4 s
    assert [part.split(":")[0] for part in str(refused.value).split("signal ")[1:]] == [
        "'J1'", "'J2'", "'J3'", "'J4'", "'J5'"], refused.value
    assert "signal 'J2': phase 3 all_red_s 2 s below ITE's 2.4 s" in str(refused.value)


def test_a_run_whose_config_is_below_ite_keeps_it_through_a_change_and_says_it(run_says, tmp_path):
    """The --config's 2 s at J2 runs as given and is said (docs/configuration.md, timing.all_red_s): a change at
    run time may keep it, and its answer says it as `signalwise run` does, word for word."""
    rt = _runtime(tmp_path, RunConfig(scenario="corridor", controller="max-pressure",
                                      timing={"per_intersection": {"J2": {"all_red_s": 2}}}))
    rt.open()
    answer = rt.submit(ch.SignalTimingChange(intersection_id="J2", timing={"all_red_s": 2, "min_green_s": 12}),
                       who="ops")
    rt.run()
    assert answer["result"] == "applied" and answer["reason"] == run_says, answer


@pytest.mark.slow  # a whole `signalwise live` process (6 s here); the change and replay paths run in make test
def test_live_with_a_config_below_ite_says_it_at_start_on_stderr(run_says, tmp_path):
    done = subprocess.run([SIGNALWISE, "live", "-s", "corridor", "-c", "max-pressure", "--config",
                           str(_config(tmp_path)), "--speed", "max", "--duration", "5", "--host", "127.0.0.1",
                           "--port", "0", "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "below ITE" in line]
    assert len(said) == 1 and said[0].endswith(f"signalwise.live: {run_says}"), done.stderr
