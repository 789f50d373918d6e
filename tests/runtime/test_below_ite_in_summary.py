"""A red clearance of 0 s runs under the safety profile (MUTCD 4E.06 leaves the red clearance optional), and is
said as a yellow below ITE is: a warning line per signal, and a row of the run's summary beside the audit's
violations, so "0 safety violations" is not read as ITE's endorsement of a timing with no red clearance. Real
SUMO runs of the built-in corridor."""

import json

from support.cli import signalwise


def _run(tmp_path, name, timing_yaml):
    config = tmp_path / f"{name}.yaml"
    config.write_text(timing_yaml)
    out = tmp_path / name
    done = signalwise("run", "-s", "corridor", "-c", "actuated", "--config", str(config), "--duration", "120",
                      "--out", str(out))
    assert done.returncode == 0, done.stderr
    return done, json.loads(next(out.glob("*/metrics.json")).read_text())


def test_no_red_clearance_runs_and_the_summary_says_it_is_below_ite(tmp_path):
    done, metrics = _run(tmp_path, "ar0", "timing:\n  all_red_s: 0\n")
    said = done.stdout + done.stderr
    # every signal is warned of, as a yellow below ITE is
    for tls in ("J1", "J2", "J3", "J4", "J5"):
        assert f"warning: signal '{tls}': below ITE: timing.all_red_s 0 s is below ITE" in said, said
    below = metrics["below_ite_timing"]
    assert {b["signal"] for b in below} == {"J1", "J2", "J3", "J4", "J5"}
    assert all(b["setting"] == "timing.all_red_s" and b["interval"] == "red clearance" and b["value_s"] == 0
               and b["phases"] and min(b["ite_s"]) >= 1.0 for b in below), below
    ite = [s for b in below for s in b["ite_s"]]
    row = next(line for line in said.splitlines() if "configured below ITE (not violations)" in line)
    assert f"red clearance 0 s (ITE {min(ite):g}-{max(ite):g} s) at 5 signals" in row, row
    assert metrics["safety"]["violations"] == 0  # the audit holds the run to its own timing: no violation


def test_a_yellow_and_a_signals_own_red_clearance_below_ite_are_each_recorded(tmp_path):
    _done, metrics = _run(tmp_path, "mixed", "timing:\n  yellow_s: 3\n  per_intersection:\n    J2:\n"
                                            "      all_red_s: 0.5\n")
    below = {(b["signal"], b["setting"]): b for b in metrics["below_ite_timing"]}
    # ITE's yellow at the corridor's 50 km/h is 3.3 s
    assert {s for s, k in below if k == "timing.yellow_s"} == {"J1", "J2", "J3", "J4", "J5"}
    assert set(below[("J1", "timing.yellow_s")]["ite_s"]) == {3.3}
    assert [k for s, k in below if k.endswith("all_red_s")] == ["timing.per_intersection.J2.all_red_s"]
    assert below[("J2", "timing.per_intersection.J2.all_red_s")]["value_s"] == 0.5


def test_ites_own_values_and_the_benchmark_profiles_rule_are_not_recorded(tmp_path):
    _done, metrics = _run(tmp_path, "ite", "timing:\n  min_green_s: 8\n")
    assert "below_ite_timing" not in metrics
    _done, metrics = _run(tmp_path, "bench", "timing:\n  profile: benchmark\n")  # 3 s yellow, no all-red: its rule
    assert "below_ite_timing" not in metrics
