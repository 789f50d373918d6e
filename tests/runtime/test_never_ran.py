"""A run whose controller never decided says so: in its metrics, its summary and every comparison table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from signalwise.control.base import register
from signalwise.control.learning.shipped import shipped_model_path
from signalwise.core import Decision
from signalwise.runtime.commands import _check_models, print_compare_table, print_run_summary
from signalwise.runtime.compare import summarize
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


class NeverSure:
    """Always proposes with confidence 0: the shield serves its fallback the whole run."""

    name = "never-sure"
    observation = "none"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter, ctx):
        self.inter = inter

    def decide(self, obs):
        return Decision(self.inter.id, None, self.name, 0.0)


register("never-sure")(NeverSure)


def test_never_ran_is_said_in_metrics_summary_and_comparison(tmp_path, capsys):
    runs = {}
    for c in ("fixed", "never-sure"):
        for seed in (1, 2):
            r = execute_run(RunConfig(scenario="single", controller=c, seed=seed, duration_s=300, emissions=False),
                            tmp_path / f"{c}-{seed}")
            runs[(c, seed)] = r.metrics
    assert runs[("fixed", 1)]["controller_ran"] is True and "warnings" not in runs[("fixed", 1)]
    bad = runs[("never-sure", 1)]
    assert bad["controller_ran"] is False
    assert "never ran" in bad["warnings"][0] and "confidence 0.00 below 0.50" in bad["warnings"][0]

    print_run_summary(bad, tmp_path)
    assert "warning: the controller never ran" in capsys.readouterr().out

    summary = summarize(["fixed", "never-sure"], [1, 2], runs)
    assert summary["never_ran"] == ["never-sure"]
    assert summary["fallback_share"]["fixed"] == 0.0 and summary["fallback_share"]["never-sure"] > 0.99
    print_compare_table(summary, width=100)
    out = capsys.readouterr().out
    assert "NEVER RAN" in out and "fallback share" in out and "never-sure never ran" in out
    # the table fits; a warning is one line however long (`run` prints its own so), to be read and grepped whole
    assert max(len(line) for line in out.splitlines() if not line.startswith("warning:")) <= 100


def test_a_single_seed_shows_no_spread_and_five_controllers_fit_100_columns(tmp_path, capsys):
    controllers = ["fixed", "webster", "actuated", "max-pressure", "chaos-free"]
    metrics = execute_run(RunConfig(scenario="single", controller="fixed", duration_s=120, emissions=False),
                          tmp_path / "r").metrics
    runs = {(c, 1): metrics for c in controllers}
    print_compare_table(summarize(controllers, [1], runs), width=100)
    out = capsys.readouterr().out
    assert "± n/a" in out and "± 0.0" not in out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(i for i, line in enumerate(lines) if "metric" in line)
    assert "delay per vehicle" in lines[header + 2]  # no wrapped cells: one line per metric value


def test_a_controller_with_no_completed_run_shows_a_dash_not_a_crash(tmp_path, capsys):
    metrics = execute_run(RunConfig(scenario="single", controller="fixed", duration_s=120, emissions=False),
                          tmp_path / "r").metrics
    summary = summarize(["fixed", "actuated"], [1], {("fixed", 1): metrics})  # every actuated run failed
    assert summary["fallback_share"]["actuated"] is None
    print_compare_table(summary, width=100)
    row = next(line for line in capsys.readouterr().out.splitlines() if "fallback share" in line)
    assert "0.0%" in row and "—" in row


def test_compare_refuses_a_model_that_is_not_there_before_running_anything(tmp_path):
    signalwise = str(Path(sys.executable).with_name("signalwise"))
    p = subprocess.run([signalwise, "compare", "-s", "single", "--controllers", f"fixed,ql:{tmp_path / 'nope'}",
                        "--seeds", "1", "--duration", "60", "--out", str(tmp_path / "cmp")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "no such model" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "cmp").exists()  # no run started


def test_the_model_check_reads_the_path_before_a_specs_options():
    """`ql:PATH?guide_visits=N` names the model at PATH: the check before a compare must not refuse it."""
    model = shipped_model_path("single")
    _check_models(["fixed", "ql", f"ql:{model}", f"ql:{model}?guide_visits=7", "ql:@active"])  # no SystemExit


def test_emissions_not_recorded_are_said_so_not_shown_as_zero(tmp_path, capsys):
    off = execute_run(RunConfig(scenario="single", controller="fixed", duration_s=120, emissions=False),
                      tmp_path / "off").metrics
    on = execute_run(RunConfig(scenario="single", controller="fixed", duration_s=120), tmp_path / "on").metrics
    assert off["emissions_recorded"] is False and on["emissions_recorded"] is True
    assert on["network"]["co2_kg"] > 0
    print_run_summary(off, tmp_path / "off")
    assert "not recorded" in capsys.readouterr().out
    print_run_summary(on, tmp_path / "on")
    assert f"{on['network']['co2_kg']:.1f} kg" in capsys.readouterr().out
    # a comparison of runs without emissions has no CO2 figure, not a CO2 of 0 for everyone
    summary = summarize(["fixed", "other"], [1], {("fixed", 1): off, ("other", 1): off})
    assert summary["metrics"]["co2_kg"]["controllers"]["fixed"]["mean"] is None
    assert summary["metrics"]["avg_delay_s"]["controllers"]["fixed"]["mean"] == off["network"]["avg_delay_s"]
    summary = summarize(["fixed"], [1], {("fixed", 1): on})
    assert summary["metrics"]["co2_kg"]["controllers"]["fixed"]["mean"] == on["network"]["co2_kg"]
