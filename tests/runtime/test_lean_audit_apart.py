"""The `run` command audits a lean record in a forked process too when a core is free (`execute_run(...,
audit_apart=True)`), as every run does a full one: the verdict is the one the run's own process gives, and an
audit that fails there fails as it would here."""

from __future__ import annotations

import pytest

from signalwise.analytics.safety_audit import AuditInputError
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import _start_audit, execute_run


def test_a_lean_records_audit_apart_is_the_audit_here(tmp_path, monkeypatch):
    # a busy machine (the suite's own workers) would audit here and compare the audit with itself: a core is
    # said to be free, so the audit apart is the forked one (its verdict is asked from the child: `verdict`)
    monkeypatch.setattr("signalwise.runtime.run.spare_cores", lambda: 2.0)
    result = execute_run(RunConfig(scenario="single", duration_s=120, record="lean"), tmp_path / "run",
                         audit_apart=True)
    lean = RunConfig(scenario="single", record="lean", evidence="replay")  # any but inline may go apart
    here = _start_audit(result.run_dir, lean.model_copy(update={"evidence": "inline"}))()
    apart = _start_audit(result.run_dir, lean, lean_apart=True)
    assert apart.__name__ == "verdict"  # the forked audit's, not the verdict computed here (a lambda)
    assert here["checked"] and apart() == here == result.metrics["safety"]
    events = result.run_dir / "events.csv"
    events.write_text(events.read_text() + "not a time,J1,1,1\n")
    with pytest.raises(AuditInputError, match="bad event row"):
        _start_audit(result.run_dir, lean, lean_apart=True)()
