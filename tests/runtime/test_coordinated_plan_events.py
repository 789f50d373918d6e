"""A coordinated run logs each signal's plan in its hi-res log as a field controller logs a coordination pattern:
131 (pattern 1; 254, Free, at a signal it cannot coordinate), 132 (cycle) and 133 (offset), whole seconds, at the
run's start. `signalwise atspm` then names the plan with its cycle and offset in plans.csv, and the independent
audit reads the pattern as no timing revision. A `fixed` run logs none. On test_coordinated_runs.py's arterial
(80 s cycle, offsets 0, 25 and 55 s), 200 s runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from test_coordinated_runs import CYCLE_S, OFFSETS_S, STEP_S, _arterial  # its arterial with offsets

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

PLAN_CODES = {"131", "132", "133", "156"}


def _run(tmp_path: Path, controller: str, **config) -> tuple[Path, dict]:
    net, routes = _arterial(tmp_path)
    cfg = RunConfig(net=net, routes=[routes], controller=controller, duration_s=200, emissions=False,
                    step_length_s=STEP_S, **config)
    result = execute_run(cfg, tmp_path / controller)
    return result.run_dir, result.metrics


def _plan_events(run_dir: Path) -> dict[str, list[tuple[str, str, int]]]:
    """Per device, its plan events (time stamp, code, parameter), and the stamp of its first event under "first"."""
    out: dict[str, list] = {}
    with open(run_dir / "events.csv") as fh:
        for r in csv.DictReader(fh):
            dev = out.setdefault(r["DeviceId"], [])
            if not dev:
                dev.append(("first", r["TimeStamp"], 0))
            if r["EventId"] in PLAN_CODES:
                dev.append((r["TimeStamp"], r["EventId"], int(r["Parameter"])))
    return out


def _audit(run_dir: Path) -> dict:
    from support.cli import signalwise

    p = signalwise("audit", "--json", str(run_dir))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)[str(run_dir)]


def _plans_csv(run_dir: Path) -> list[dict]:
    from support.cli import signalwise

    out = run_dir / "atspm"
    p = signalwise("atspm", str(run_dir), "--out", str(out), "--no-charts")
    assert p.returncode == 0, p.stderr
    with open(out / "plans.csv") as fh:
        return list(csv.DictReader(fh))


def _assert_logged(run_dir: Path, want: dict[str, tuple[int, int, int]]) -> None:
    """Each device logged exactly its (pattern, cycle, offset) as 131, 132 and 133, with its first event."""
    for tls, (pattern, cycle, offset) in want.items():
        first, *plan = _plan_events(run_dir)[tls]
        assert sorted((code, param) for _t, code, param in plan) == [
            ("131", pattern), ("132", cycle), ("133", offset)], (tls, plan)
        assert {t for t, _c, _p in plan} == {first[1]}, (tls, first, plan)


def _assert_audit_clean(run_dir: Path, metrics: dict) -> None:
    assert metrics["safety"]["violations"] == 0, metrics["safety"]
    report = _audit(run_dir)
    assert report["ok"] and report["violations"] == [] and report["warnings"] == [], report


def test_a_coordinated_run_logs_its_plan_and_atspm_names_it(tmp_path):
    run_dir, metrics = _run(tmp_path, "coordinated")
    for tls, offset in OFFSETS_S.items():  # the plan the events log is the one metrics.json records
        assert metrics["coordination"][tls]["cycle_s"] == CYCLE_S and metrics["coordination"][tls]["offset_s"] == offset
    _assert_logged(run_dir, {tls: (1, int(CYCLE_S), int(offset)) for tls, offset in OFFSETS_S.items()})
    _assert_audit_clean(run_dir, metrics)
    rows = _plans_csv(run_dir)
    assert {r["DeviceId"] for r in rows} == set(OFFSETS_S)
    for r in rows:
        assert (r["Plan"], r["PlanName"], r["Cycle_s"], r["Offset_s"]) == (
            "1", "Plan 1", str(int(CYCLE_S)), str(int(OFFSETS_S[r["DeviceId"]]))), r


def test_a_signal_coordinated_cannot_hold_logs_the_free_pattern(tmp_path):
    # 37 s + 3 s splits leave 34 s of green after the safety profile's 6 s change: below a 36 s minimum green
    run_dir, metrics = _run(tmp_path, "coordinated", timing={"min_green_s": 36, "max_green_s": 60})
    assert all("not_coordinated" in metrics["coordination"][tls] for tls in OFFSETS_S)
    _assert_logged(run_dir, {tls: (254, 0, 0) for tls in OFFSETS_S})
    _assert_audit_clean(run_dir, metrics)
    rows = _plans_csv(run_dir)
    assert rows and all((r["Plan"], r["PlanName"], r["Cycle_s"], r["Offset_s"]) == ("254", "Free", "0", "0")
                        for r in rows), rows


def test_a_fixed_run_logs_no_plan(tmp_path):
    """The checks above can fail: `fixed` drops the offsets and logs no plan, so its plans are unknown."""
    run_dir, metrics = _run(tmp_path, "fixed")
    assert all(plan == [] for _first, *plan in _plan_events(run_dir).values())
    _assert_audit_clean(run_dir, metrics)
    rows = _plans_csv(run_dir)
    assert rows and all((r["Plan"], r["PlanName"], r["Cycle_s"]) == ("", "unknown", "") for r in rows), rows
