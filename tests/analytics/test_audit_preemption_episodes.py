"""The audit bounds a preemption episode (continuous preemption at a signal: calls overlapping one another) by
the signal's maximum dwell, not by each call's, and is not relaxed by a run directory that leaves the dwell or
the entry minimum out or sets it below the configuration's own bound.

One real run of `single` (max-pressure) with an emergency vehicle that stands 100 s inside the preemption
distance (the shield's own call, channel 1, timed out at its 60 s dwell), then copies of its evidence with calls
written into events.csv, as a shield that let calls roll over (or a hand) would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from test_audit_preemption_claims import _allowed_s, _engine_span, _preempt_violations, _run, _stamp

from signalwise.analytics.safety_audit import PREEMPT_MAX_DWELL_S, audit_run, read_preemption_evidence


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("preempt_episodes"), "on")


def _with_calls(run_dir: Path, dest: Path, calls: list[tuple[int, float, float]]) -> Path:
    """A copy of the run's evidence with (channel, 102 at, 104 at) calls appended to events.csv."""
    shutil.copytree(run_dir, dest)
    with open(dest / "events.csv", "a") as fh:
        for channel, on_s, off_s in calls:
            fh.write(f"{_stamp(on_s)},C,102,{channel}\n{_stamp(off_s)},C,104,{channel}\n")
    return dest


def _shield_call(run_dir: Path) -> tuple[float, float, float]:
    """The shield's own call: its 102, first 107 and 104 (seconds of the run)."""
    times = {}
    for line in (run_dir / "events.csv").read_text().splitlines():
        stamp, dev, code, _param = line.rsplit(",", 3)
        if dev == "C" and code in ("102", "107", "104") and code not in times:
            h, m, s = stamp.split(" ")[1].split(":")
            times[code] = int(h) * 3600 + int(m) * 60 + float(s)
    return times["102"], times["107"], times["104"]


def test_overlapping_calls_add_no_time_to_the_preemption_they_make(run_dir, tmp_path):
    assert audit_run(run_dir).ok
    on_s, dwell_s, off_s = _shield_call(run_dir)
    depart, arrival = _engine_span(run_dir)
    one = _allowed_s(run_dir, dwell_s=60.0)  # one entry, one dwell, a step
    # two more calls, each shorter than one call's allowance and each explained by the engine still there,
    # that keep the signal preempted long after the first call's dwell ran out
    a, b = off_s - 30, off_s + 30
    assert dwell_s < a and b < arrival and 70 < one and b + 50 - on_s > one
    copy = _with_calls(run_dir, tmp_path / "rolling", [(2, a, a + 70), (3, b, b + 50)])
    found = _preempt_violations(audit_run(copy))
    assert [v.time_s for v in found] == [on_s]
    assert found[0].measured_s == pytest.approx(b + 50 - on_s)
    assert found[0].required_s == pytest.approx(one, abs=1e-3)


def test_a_run_directory_without_the_dwell_is_held_to_the_largest_any_run_may_have(run_dir, tmp_path):
    on_s, dwell_s, _off = _shield_call(run_dir)
    copy = _with_calls(run_dir, tmp_path / "no_dwell", [(2, dwell_s + 5, 399.0)])  # after the first dwell began
    config = yaml.safe_load((copy / "config.yaml").read_text())
    del config["shield"]["preempt_max_dwell_s"]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert read_preemption_evidence(copy).max_dwell_s is None
    report = audit_run(copy)
    found = _preempt_violations(report)
    assert [v.time_s for v in found] == [on_s]
    assert found[0].required_s == pytest.approx(_allowed_s(run_dir, dwell_s=PREEMPT_MAX_DWELL_S), abs=1e-3)
    assert any(w.rule == "preempt_dwell_unknown" for w in report.warnings)


def test_an_entry_minimum_below_the_configurations_bound_does_not_relax_the_minimum_green(run_dir, tmp_path):
    """A 1 s green of phase 2 written into the log during the preemption, with config.yaml claiming an entry
    minimum of 0.1 s: a violation of the 2 s the configuration allows at least, as with no claim at all."""
    on_s, _dwell, off_s = _shield_call(run_dir)
    t = on_s + 40
    assert t + 6 < off_s
    copies = {}
    for name, entry in (("claimed", 0.1), ("honest", None)):
        copy = _with_calls(run_dir, tmp_path / name, [])
        with open(copy / "events.csv", "a") as fh:
            fh.write(f"{_stamp(t)},C,1,2\n{_stamp(t + 1)},C,8,2\n{_stamp(t + 5)},C,9,2\n{_stamp(t + 5)},C,10,2\n"
                     f"{_stamp(t + 6)},C,11,2\n")
        config = yaml.safe_load((copy / "config.yaml").read_text())
        if entry is None:
            del config["shield"]["preempt_entry_min_green_s"]
        else:
            config["shield"]["preempt_entry_min_green_s"] = entry
        (copy / "config.yaml").write_text(yaml.safe_dump(config))
        copies[name] = [v for v in audit_run(copy).violations if v.rule == "min_green" and v.time_s == t]
    assert len(copies["honest"]) == 1 and copies["honest"][0].required_s == 2.0
    assert [(v.measured_s, v.required_s) for v in copies["claimed"]] == [(1.0, 2.0)]
