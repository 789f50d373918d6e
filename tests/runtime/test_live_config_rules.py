"""An alert rule of a `live --config` file whose metric the run never reports is said at start: the API refuses
such a rule, but one read from the file (a misspelt `stale_source`, a signal the run does not have) waited
silently for the whole run, and an operator trusting it would never hear from it."""

import pytest
from support.cli import in_a_process


@pytest.mark.slow
def test_a_config_rule_that_can_never_raise_is_warned_about_and_the_run_goes_on(tmp_path):
    config = tmp_path / "city.yaml"
    config.write_text("alerts:\n  rules:\n"
                      "    - {name: typo, metric: stale_source, op: '>', threshold: 0}\n"
                      "    - {name: spill_j9, metric: queue_spillback.J9, op: '>=', threshold: 1}\n"
                      "    - {name: busy, metric: shield_interventions_per_min, op: '>', threshold: 5}\n")
    p = in_a_process("live", "-s", "corridor", "--field", "none", "--duration", "5", "--speed", "max",
                     "--port", "0", "--config", str(config), "--out", str(tmp_path / "runs"), timeout_s=180)
    assert p.returncode == 0, p.stderr
    warned = [line for line in p.stderr.splitlines() if line.startswith("warning: alert rule ")]
    assert any(line.startswith("warning: alert rule typo: unknown metric 'stale_source'") for line in warned), warned
    assert any(line.startswith("warning: alert rule spill_j9: metric 'queue_spillback.J9'") for line in warned)
    assert all(line.endswith("it can never raise in this run") for line in warned)
    assert not any("busy" in line for line in warned)  # a figure the run reports: no warning
