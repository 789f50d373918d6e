"""A red clearance of 0 s runs under the safety profile (MUTCD 4E.06 leaves the red clearance optional), and is
said as a yellow below ITE is: a warning line per setting naming its signals (metrics.json keeps one per signal),
and a row of the run's summary beside the audit's violations, so "0 safety violations" is not read as ITE's
endorsement of a timing with no red clearance. Real SUMO runs of the built-in corridor."""

import json

from support.cli import signalwise
from support.tables import table_rows


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
    # every signal is warned of, as a yellow below ITE is: in one line on the terminal, one each in metrics.json
    assert "warning: below ITE at 5 signals (J1, J2, J3, J4, J5): timing.all_red_s 0 s, where " in said, said
    for tls in ("J1", "J2", "J3", "J4", "J5"):
        assert any(w.startswith(f"signal '{tls}': below ITE: timing.all_red_s 0 s is below ITE")
                   for w in metrics["warnings"]), metrics["warnings"]
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


def test_two_settings_below_ite_read_a_line_each_with_the_value_shown(tmp_path):
    """The engineer's re-trial, finding 4: a 3 s yellow and a 0.5 s red clearance (and J3's own 4.5 s yellow, shown
    5 s) gave a paragraph per signal and an audit line per signal, phase and interval (37 lines), burying the two
    rounding warnings; the summary row said "red clearance 0.5 s" where the signals showed 1 s."""
    done, metrics = _run(tmp_path, "clr", "timing:\n  yellow_s: 3\n  all_red_s: 0.5\n  per_intersection:\n"
                                          "    J3:\n      yellow_s: 4.5\n")
    lines = (done.stdout + done.stderr).splitlines()
    # the premise: metrics.json holds the detail, a note per signal and the audit's lines
    notes = [w for w in metrics["warnings"] if "below ITE" in w]
    assert len(notes) == 5 and len(metrics["safety"]["below_ite"]) > 5, metrics["warnings"]
    said = [line for line in lines if "below ITE" in line and not line.startswith("│")]
    assert len(said) == 2, said  # a line per setting
    yellow, red = said
    assert yellow.startswith("warning: below ITE at 4 signals (J1, J2, J4, J5): timing.yellow_s 3 s, where ITE's "
                             "yellow is 3.3 s for their geometry"), yellow
    assert red.startswith("warning: below ITE at 5 signals (J1, J2, J3, J4, J5): timing.all_red_s 0.5 s, shown 1 s "
                          "at 1 s steps, where ITE's red clearance is "), red
    assert all("metrics.json" in line and " m / " not in line for line in said), said  # the inputs stay there
    # the rounding warnings stand out: each on a line of its own, right under them
    rounding = [line for line in lines if "runs as" in line and "in whole steps" in line]
    assert [line.split(" runs as")[0] for line in rounding] == ["warning: timing.all_red_s 0.5 s",
                                                                  "warning: timing.per_intersection.J3.yellow_s 4.5 s"]
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) <= 6, warned
    # the summary row gives the value as configured and as shown
    row = table_rows(done.stdout)["configured below ITE (not violations)"][0]
    assert "red clearance 0.5 s, shown 1 s at 1 s steps (ITE " in row, row
    red_clearance = [b for b in metrics["below_ite_timing"] if b["interval"] == "red clearance"]
    assert all(b["value_s"] == 0.5 and b["shown_s"] == 1.0 for b in red_clearance), red_clearance
