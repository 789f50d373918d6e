"""A controller's faults stay visible after the run: each kind of error it raised (type, message, where) and each kind
of proposal the shield could not follow is kept once, with its count, in the run directory (`controller_errors.csv`,
`metrics.json`); stderr says each kind once and its count at the end, not a line per failed decision; a run in which
they took more than a small share of the decisions warns, naming the share; `compare` shows them.

Real `signalwise` processes on `single` with a `py:` controller written for the test.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.core import Decision
from signalwise.runtime.controller_faults import LOG_EVERY_S, ControllerFaults

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
CONTROLLER = '''\
from signalwise.core import Decision


class Flaky:
    """Holds the green; every third call looks up a detector that is not there."""

    name = "flaky"
    observation = "none"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter):
        self.inter, self.calls = inter, 0

    def decide(self, obs):
        self.calls += 1
        if self.calls % 3 == 0:
            return {}["E1_0"]  # the KeyError
        return Decision(self.inter.id, None, "flaky")


class Nowhere(Flaky):
    """Always proposes a phase the signal does not have."""

    def decide(self, obs):
        return Decision(self.inter.id, len(self.inter.phases) + 3, "nowhere")


class Drifting(Flaky):
    """Holds the green; its period_s is None after its second call, NaN after its fourth, raises after its sixth,
    and is 5 s again from its seventh on."""

    @property
    def period_s(self):
        if self.calls in (2, 3):
            return None
        if self.calls in (4, 5):
            return float("nan")
        if self.calls == 6:
            return 1 / 0  # the ZeroDivisionError
        return 5.0

    def decide(self, obs):
        self.calls += 1
        return Decision(self.inter.id, None, "drifting")


class Numbered(Flaky):
    """Returns the phase's number, not a Decision."""

    def decide(self, obs):
        return 2


def flaky(inter, ctx):
    return Flaky(inter)


def nowhere(inter, ctx):
    return Nowhere(inter)


def drifting(inter, ctx):
    return Drifting(inter)


def numbered(inter, ctx):
    return Numbered(inter)
'''
#: the line of CONTROLLER that raises
RAISING_LINE = CONTROLLER.splitlines().index('            return {}["E1_0"]  # the KeyError') + 1
#: the line of CONTROLLER where Drifting's period_s raises
PERIOD_RAISING_LINE = CONTROLLER.splitlines().index("            return 1 / 0  # the ZeroDivisionError") + 1


def sw(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={**os.environ, "COLUMNS": "200"})


def run_of(tmp_path: Path, factory: str) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp_path / "ctl.py").write_text(CONTROLLER)
    done = sw("run", "-s", "single", "-c", f"py:ctl.py:{factory}", "--duration", "300", "--record", "lean",
              "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done, tmp_path / "run"


def kinds_kept(run_dir: Path) -> list[dict]:
    with open(run_dir / "controller_errors.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_error_is_kept_once_with_its_count_and_said_once_with_its_total(tmp_path):
    done, run_dir = run_of(tmp_path, "flaky")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    errors = metrics["network"]["controller_errors"]
    faults = metrics["controller_faults"]
    assert errors > 10 and faults["errors"] == errors
    assert abs(faults["error_share"] - 1 / 3) < 0.02 and faults["decisions"] >= 3 * errors

    (kind,) = kinds_kept(run_dir)  # one kind, however many times it was raised
    assert kind["kind"] == "raised" and kind["type"] == "KeyError" and kind["message"] == "'E1_0'"
    assert int(kind["count"]) == errors and kind["first_signal"] == "C" and kind["signals"] == "C"
    assert kind["where"] == f"{(tmp_path / 'ctl.py').resolve()}:{RAISING_LINE}"
    assert faults["kinds"][0]["count"] == errors

    said = [line for line in done.stderr.splitlines() if "KeyError: 'E1_0'" in line]
    assert len(said) == 2, done.stderr  # when first raised, and its total at the end
    assert " failed at C t=" in said[0] and f"ctl.py:{RAISING_LINE}" in said[0]
    assert f"{errors} times in all at signal C" in said[1]

    (warning,) = [w for w in metrics["warnings"] if "raised an error" in w]
    assert f"at {errors} of {faults['decisions']} decisions ({faults['error_share']:.1%})" in warning
    assert "KeyError: 'E1_0'" in warning
    assert "warning: the controller raised an error at" in done.stdout  # under the run's table


def test_a_controller_whose_every_proposal_is_invalid_warns(tmp_path):
    done, run_dir = run_of(tmp_path, "nowhere")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["network"]["fallback_fraction"] > 0.99  # a phase the signal lacks: the fallback serves
    faults = metrics["controller_faults"]
    assert faults["invalid_proposals"] == faults["decisions"] > 0 and faults["invalid_share"] == 1.0
    (kind,) = kinds_kept(run_dir)
    assert kind["kind"] == "invalid_phase" and kind["message"].startswith("phase index 7 does not exist")
    (warning,) = [w for w in metrics["warnings"] if "could not be followed" in w]
    assert f"{faults['decisions']} of the controller's {faults['decisions']} proposals (100.0%)" in warning
    assert "phase index 7 does not exist" in warning and "the shield's Webster fallback served" in warning
    assert [r["reason"] for r in metrics["fallback_reasons"]] == ["phase that does not exist"]
    assert not [w for w in metrics["warnings"] if "fallback took over" in w], metrics["warnings"]
    assert sum("phase index 7" in line for line in done.stderr.splitlines()) == 2


def test_a_period_s_a_controller_leaves_unusable_is_kept_as_a_fault_and_the_controller_is_asked_on(tmp_path):
    """The loop reads `period_s` after every decision: None crashed the run (`t + None`), NaN stopped the
    controller being asked for good (`t >= NaN` never holds) with no fault kept. Each is an error of the
    controller at that decision; the last usable period is kept, and it is asked again 5 s of green later."""
    done, run_dir = run_of(tmp_path, "drifting")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    faults = json.loads((run_dir / "metrics.json").read_text())["controller_faults"]
    assert faults["decisions"] > 20  # asked on: 300 s, every 5 s of green
    kinds = {k["message"].partition(" after decide")[0]: k for k in kinds_kept(run_dir)}
    assert sorted(kinds) == ["Drifting.period_s is None", "Drifting.period_s is nan",
                             "reading Drifting.period_s"], kinds
    for said, count in (("Drifting.period_s is None", 2), ("Drifting.period_s is nan", 2)):
        kind = kinds[said]
        assert (kind["kind"], kind["type"], kind["count"], kind["where"]) == (
            "raised", "ControllerAttributeError", str(count), "")
        assert "it must be seconds of green between decisions, > 0: the last usable one, 5, is kept" in \
            kind["message"]
    raising = kinds["reading Drifting.period_s"]
    assert raising["count"] == "1" and "raised ZeroDivisionError: division by zero" in raising["message"]
    assert raising["where"] == f"{(tmp_path / 'ctl.py').resolve()}:{PERIOD_RAISING_LINE}"
    assert faults["errors"] == 5  # from its seventh call on, its decisions are followed again


def test_a_decide_returning_no_decision_is_an_unreadable_proposal_not_an_error(tmp_path):
    """`return 2` (the phase, not a Decision) failed inside the shield and was kept as an AttributeError placed
    in shield.py; it is a proposal the shield cannot read, the fallback serving."""
    done, run_dir = run_of(tmp_path, "numbered")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["network"]["controller_errors"] == 0 and metrics["network"]["fallback_fraction"] > 0.9
    (kind,) = kinds_kept(run_dir)
    assert (kind["kind"], kind["type"], kind["where"]) == ("unreadable", "", "")
    assert kind["message"] == "decision not readable: decide returned int, not a Decision"
    assert metrics["controller_faults"]["invalid_proposals"] == metrics["controller_faults"]["decisions"] > 0


@pytest.mark.slow
def test_compare_shows_the_errors_in_its_table_and_under_it(tmp_path):
    (tmp_path / "ctl.py").write_text(CONTROLLER)
    done = sw("compare", "-s", "single", "-c", "fixed,py:ctl.py:flaky", "--seeds", "1", "--duration", "120",
              "--workers", "1", "--out", "cmp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    errors = summary["controller_errors"]
    assert errors["fixed"] == 0 and errors["py:ctl.py:flaky"] > 0
    (row,) = [line for line in done.stdout.splitlines() if line.strip("│┃ ").startswith("controller errors")]
    assert row.split("│")[-2].strip() == str(errors["py:ctl.py:flaky"])
    assert "warning: py:ctl.py:flaky s1: the controller raised an error at" in done.stdout
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert f"| controller errors | count, summed over the seeds | 0 | {errors['py:ctl.py:flaky']} |" in report


def test_a_kind_raised_on_and_on_is_said_again_at_most_once_a_minute_with_the_count_since(caplog):
    now = [0.0]
    faults = ControllerFaults("mine", clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="signalwise.runtime")
    for i in range(10):  # every 10 s of the wall clock, for 100 s
        now[0] = 10.0 * i
        try:
            {}["x"]
        except KeyError as exc:
            faults.raised(exc, "C", float(i))
    faults.proposed(Decision("C", 1.5, "mine"), "phase index 1.5 is not a whole number", 4, "C", 9.0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "further ones of this kind are counted" in lines[0]
    assert f"({int(LOG_EVERY_S / 10) - 1} more of this kind since its last line)" in lines[1]
    assert "decision not readable: phase index 1.5" in lines[2]
    caplog.clear()
    faults.log_totals()
    (total,) = [r.getMessage() for r in caplog.records]  # the unreadable one was said whole: no total for it
    assert "KeyError: 'x'" in total and "10 times in all at signal C" in total
    assert faults.as_metrics()["invalid_proposals"] == 1
