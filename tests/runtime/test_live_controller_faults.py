"""A live run shows what its controller did wrong while it goes: the snapshot counts the errors and the proposals
the shield could not follow, each raises its alert (held until acknowledged, raised again by the next one), and
the run directory's `controller_errors.csv` lists each kind as it comes; `run.json` keeps the totals at the end.

Real SUMO (an in-process live runtime on `single`, paced so the test can act between decisions) and a `py:`
controller written for the test, which fails when the test leaves it a cue file.
"""

from __future__ import annotations

import csv
import inspect
import json
import threading
import time
from pathlib import Path

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.alerts import BUILTIN_RULES, AlertEngine
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

CONTROLLER = '''\
from pathlib import Path

from signalwise.core import Decision

CUES = Path({cues!r})


class OnCue:
    """Holds the green; raises a KeyError once per `raise` cue, proposes a phase that does not exist once per
    `nowhere` cue."""

    name = "on_cue"
    observation = "none"
    wants_detectors = False
    period_s = 1.0

    def __init__(self, inter):
        self.inter = inter

    def decide(self, obs):
        if (CUES / "raise").exists():
            (CUES / "raise").unlink()
            return {{}}["E1_0"]
        if (CUES / "nowhere").exists():
            (CUES / "nowhere").unlink()
            return Decision(self.inter.id, len(self.inter.phases) + 3, self.name)
        return Decision(self.inter.id, None, self.name)


def on_cue(inter, ctx):
    return OnCue(inter)
'''


def _until(what, timeout_s: float = 10.0):
    """What `what()` returns once it is true (the loop runs in its own thread); fails naming the wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_s} s: {inspect.getsource(what).strip()}")


def _active(rt: LiveRuntime, rule: str):
    return next((a for a in rt.alerts.active() if a.rule == rule), None)


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "controller_errors.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_live_runs_controller_faults_show_in_its_snapshot_alerts_and_run_directory(tmp_path):
    cues = tmp_path / "cues"
    cues.mkdir()
    module = tmp_path / "on_cue.py"
    module.write_text(CONTROLLER.format(cues=str(cues)))
    run_dir = tmp_path / "runs" / "live"
    rt = LiveRuntime(RunConfig(scenario="single", controller=f"py:{module}:on_cue", out_dir=tmp_path / "runs"),
                     LiveOptions(speed=50, duration_s=3600, in_process=True, snapshot_hz=50, alerts_hz=50),
                     run_dir, alerts=AlertEngine(BUILTIN_RULES))
    rt.open()
    assert rt.snapshot.controller_faults is None  # no loop yet
    assert _rows(run_dir) == []  # the file is there from the start, with its header
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        _until(lambda: (rt.snapshot.controller_faults or {}).get("decisions", 0) > 2)
        assert rt.snapshot.controller_faults["errors"] == 0 and _active(rt, "controller_errors") is None

        (cues / "raise").touch()
        first = _until(lambda: _active(rt, "controller_errors"))
        assert first.value == 1 and first.subjects == ("C",) and first.level == "warning"
        assert "KeyError: 'E1_0' (at " in first.message and "controller_errors.csv" in first.message
        _until(lambda: (rt.snapshot.controller_faults or {}).get("errors") == 1)
        # written as the run goes, not only at its end (a live run may be killed)
        row = _until(lambda: _rows(run_dir))[0]
        assert (row["kind"], row["count"], row["type"], row["signals"]) == ("raised", "1", "KeyError", "C")
        assert row["message"] == "'E1_0'" and row["where"].startswith(f"{module}:")

        cleared = rt.acknowledge_alert(first.id, "ops")
        assert cleared.cleared_reason == "acknowledged by ops" and _active(rt, "controller_errors") is None
        time.sleep(0.3)  # evaluations go on with the same count: what was acknowledged raises nothing
        assert _active(rt, "controller_errors") is None

        (cues / "raise").touch()
        again = _until(lambda: _active(rt, "controller_errors"))
        assert again.id != first.id and again.value == 2

        (cues / "nowhere").touch()
        invalid = _until(lambda: _active(rt, "controller_invalid_proposals"))
        assert invalid.value == 1 and invalid.subjects == ("C",) and "phase index" in invalid.message
        _until(lambda: (rt.snapshot.controller_faults or {}).get("invalid_proposals") == 1)
    finally:
        rt.stop()
        loop.join(30)
    assert rt.status_text == "stopped"
    rows = {r["kind"]: r for r in _rows(run_dir)}
    assert rows["raised"]["count"] == "2" and rows["invalid_phase"]["count"] == "1"
    faults = json.loads((run_dir / "run.json").read_text())["controller_faults"]
    assert (faults["errors"], faults["invalid_proposals"]) == (2, 1) and faults["decisions"] > 3
    assert [k["kind"] for k in faults["kinds"]] == ["raised", "invalid_phase"]
    assert not (run_dir / "controller_errors.csv.partial").exists()
