"""A controller's errors grouped as its author reads them: a kind is the error's type and the line of the controller
that raised it, the first message its example, so a message naming a lane or the time is not a new kind at each
decision (stderr said up to 20 lines a run); the catch-all past `MAX_KINDS` is never named the most frequent; a
count of one reads "once"; in `compare` each line names its run's seed. Also what else a controller gets wrong
without raising: a Decision for another signal (the Webster fallback serves, as for an invalid phase, whatever its
confidence), None at every decision (said once),
a slow `decide` (its wall time in the summary, and a warning when a live run would alert on it).

Real `signalwise` processes on `single` with controllers written for the test, and `ControllerFaults` given real
exceptions raised from a module written for the test.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.controller_faults import MAX_KINDS, ControllerFaults

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
CONTROLLER = '''\
import time

from signalwise.core import Decision


class Chatty:
    """Every third call raises with the time in its message; every fourth looks up a lane named by the call."""

    name = "chatty"
    observation = "counts"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter):
        self.inter, self.calls = inter, 0

    def decide(self, obs):
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError(f"boom at {obs.time_s}")
        if self.calls % 4 == 0:
            return Decision(self.inter.id, 0 if obs.lanes["nope_%d" % self.calls] else 1, self.name)
        return Decision(self.inter.id, None, self.name)


class Elsewhere(Chatty):
    """Proposes the next phase, for a signal of another name."""

    def decide(self, obs):
        return Decision("nonexistent", (obs.signal.phase_index + 1) % len(self.inter.phases), self.name)


class Forgetful(Chatty):
    """Works out a phase and forgets to return it."""

    def decide(self, obs):
        Decision(self.inter.id, (obs.signal.phase_index + 1) % len(self.inter.phases), self.name)


class Slow(Chatty):
    """Thinks for 0.15 s at every decision."""

    def decide(self, obs):
        time.sleep(0.15)
        return Decision(self.inter.id, None, self.name)


def chatty(inter, ctx):
    return Chatty(inter)


def elsewhere(inter, ctx):
    return Elsewhere(inter)


def forgetful(inter, ctx):
    return Forgetful(inter)


def slow(inter, ctx):
    return Slow(inter)
'''
LINES = CONTROLLER.splitlines()
RAISING_LINE = LINES.index('            raise RuntimeError(f"boom at {obs.time_s}")') + 1
LOOKUP_LINE = next(i for i, line in enumerate(LINES, 1) if 'obs.lanes["nope_%d"' in line)


def sw(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={**os.environ, "COLUMNS": "200"})


def run_of(tmp_path: Path, factory: str, duration_s: int = 300) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp_path / "ctl.py").write_text(CONTROLLER)
    done = sw("run", "-s", "single", "-c", f"py:ctl.py:{factory}", "--duration", str(duration_s), "--record",
              "lean", "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done, tmp_path / "run"


def kinds_kept(run_dir: Path) -> list[dict]:
    with open(run_dir / "controller_errors.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_error_whose_message_changes_is_one_kind_per_type_and_line(tmp_path):
    done, run_dir = run_of(tmp_path, "chatty")
    kinds = {k["type"]: k for k in kinds_kept(run_dir)}
    assert sorted(kinds) == ["KeyError", "RuntimeError"]
    ctl = (tmp_path / "ctl.py").resolve()
    boom, lookup = kinds["RuntimeError"], kinds["KeyError"]
    assert boom["where"] == f"{ctl}:{RAISING_LINE}" and boom["message"] == "boom at 11.0"  # the first, as example
    assert lookup["where"] == f"{ctl}:{LOOKUP_LINE}" and lookup["message"] == "'nope_4'"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert int(boom["count"]) + int(lookup["count"]) == metrics["controller_faults"]["errors"]
    assert int(boom["count"]) > 10 and int(lookup["count"]) > 5
    said = [line for line in done.stderr.splitlines() if line.startswith("controller py:ctl.py:chatty")]
    assert len(said) == 4, done.stderr  # each kind when first raised, and its total at the end
    (warning,) = [w for w in metrics["warnings"] if "raised an error" in w]
    assert f"most often RuntimeError: boom at 11.0 (at {ctl}:{RAISING_LINE}), {boom['count']} times" in warning


def _raisers(tmp_path: Path, n: int):
    """`n` functions of a module written here, each raising a KeyError on a line of its own."""
    (tmp_path / "raisers.py").write_text("".join(f"def f{i}(lane):\n    raise KeyError(lane)\n" for i in range(n)))
    spec = importlib.util.spec_from_file_location("raisers", tmp_path / "raisers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [getattr(module, f"f{i}") for i in range(n)]


def _raise(faults: ControllerFaults, fn, lane: str, t: float) -> None:
    try:
        fn(lane)
    except KeyError as exc:
        faults.decisions += 1
        faults.raised(exc, "C", t)


def test_past_the_kinds_kept_apart_the_catch_all_is_never_the_most_frequent_and_one_reads_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.runtime")
    fns = _raisers(tmp_path, MAX_KINDS + 10)
    faults = ControllerFaults("mine", clock=lambda: 0.0)
    t = 0.0
    for i, fn in enumerate(fns):  # each once: the ten past MAX_KINDS go to the catch-all
        _raise(faults, fn, f"lane_{i}", t := t + 1)
    (warning,) = faults.warnings()
    assert "most often" not in warning and "1 times" not in warning
    assert f"e.g. KeyError: 'lane_0' (at {tmp_path / 'raisers.py'}:2), once" in warning
    lumped = [f for f in faults.kinds.values() if f.lumped]
    assert len(lumped) == 1 and lumped[0].count == 10 and len(faults.kinds) == MAX_KINDS + 1
    for lane in ("a", "b", "c"):  # the second function again, with other lanes: the same kind
        _raise(faults, fns[1], lane, t := t + 1)
    assert len(faults.kinds) == MAX_KINDS + 1
    (warning,) = faults.warnings()
    assert f"most often KeyError: 'lane_1' (at {tmp_path / 'raisers.py'}:4), 4 times" in warning


def test_a_decision_for_another_signal_sends_the_signal_to_its_fallback_and_is_kept_as_an_invalid_proposal(tmp_path):
    """A controller always naming another signal, at confidence 1, is a broken one: the Webster fallback serves the
    whole run (counted in the fallback share), never "trusted again" at its next confident decision, and its greens
    are the fallback plan's, not held to their maximum."""
    done, run_dir = run_of(tmp_path, "elsewhere")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    faults = metrics["controller_faults"]
    assert faults["invalid_proposals"] == faults["decisions"] > 0
    (kind,) = kinds_kept(run_dir)
    assert kind["kind"] == "wrong_signal" and "decision for signal 'nonexistent'" in kind["message"]
    rules = metrics["shield_interventions"]
    assert rules["wrong_signal"] > 0 and rules["fallback"] == 1 and "fallback_end" not in rules
    assert metrics["network"]["fallback_fraction"] > 0.99
    (warning,) = [w for w in metrics["warnings"] if "could not be followed" in w]
    assert "the shield's Webster fallback served" in warning
    # the fallback's reason is that warning's: no second sentence for it
    assert [r["reason"] for r in metrics["fallback_reasons"]] == ["decision for another signal"]
    assert not [w for w in metrics["warnings"] if "fallback took over" in w], metrics["warnings"]
    with open(run_dir / "events.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    greens = sum(row["EventId"] == "1" for row in rows)  # phase begin green
    max_outs = sum(row["EventId"] == "5" for row in rows)  # phase max out
    assert greens > 10 and max_outs == 0 and rules.get("max_green", 0) == 0  # the plan's greens, none run to the max


def test_a_controller_returning_none_at_every_decision_is_said_once(tmp_path):
    done, run_dir = run_of(tmp_path, "forgetful", duration_s=600)
    said = [line for line in done.stderr.splitlines() if "returned None, not a Decision" in line]
    assert len(said) == 1 and "at C from t=1 to t=3" in said[0], done.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (warning,) = [w for w in metrics["warnings"] if "returned None" in w]
    assert "for 300 s or more at signal C (from t=1)" in warning
    assert metrics["controller_faults"]["none_returned"] == {"C": 1.0}
    assert "warning: the controller returned None" in done.stdout


@pytest.mark.slow
def test_a_slow_decide_shows_its_wall_time_in_the_summary_and_warns(tmp_path):
    done, run_dir = run_of(tmp_path, "slow", duration_s=60)
    times = json.loads((run_dir / "metrics.json").read_text())["decision_time"]
    assert times["decisions"] >= 10 and 150 <= times["median_ms"] <= times["p99_ms"] <= times["max_ms"]
    assert times["longer_than_step"] == 0
    (row,) = [line for line in done.stdout.splitlines() if "decision time: median / p99 / max" in line]
    assert f"{times['median_ms']:.2f} / {times['p99_ms']:.2f} / {times['max_ms']:.2f} ms" in row
    assert "p99 at which a live run raises its decision_latency alert" in done.stdout


def test_a_quick_controller_shows_its_time_and_no_warning(tmp_path):
    done = sw("run", "-s", "single", "-c", "max-pressure", "--duration", "120", "--record", "lean", "--run-dir",
              "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["decision_time"]["p99_ms"] < 100 and metrics["decision_time"]["longer_than_step"] == 0
    assert "decision time: median / p99 / max" in done.stdout and "decision_latency" not in done.stdout


@pytest.mark.slow
def test_compare_names_the_seed_of_each_line(tmp_path):
    (tmp_path / "ctl.py").write_text(CONTROLLER)
    done = sw("compare", "-s", "single", "-c", "fixed,py:ctl.py:chatty", "--seeds", "2", "--duration", "120",
              "--workers", "1", "--out", "cmp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("controller py:ctl.py:chatty")]
    seeds = [line.split()[2].rstrip(":") for line in said]  # "controller SPEC s2 failed ...", "... SPEC s2: ..."
    assert len(said) == 8 and sorted(seeds) == ["s1"] * 4 + ["s2"] * 4, done.stderr
