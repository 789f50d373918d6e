"""A command's table in a pipe or a file (`make demo | tee demo.log`, a CI log) keeps a row to a line: rich lays out
anything that is not a terminal in 80 columns, and folded every cell of a wide table. COLUMNS still decides."""

from __future__ import annotations

import pytest
from support.cli import signalwise

from signalwise.sim.scenario import list_scenarios


def _rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("│")]


@pytest.mark.slow
def test_a_piped_table_takes_the_width_it_needs():
    p = signalwise("scenarios")
    assert p.returncode == 0, p.stderr
    rows = _rows(p.stdout)
    for name, description in list_scenarios():  # 80 columns left a description 55 characters a line
        assert any(name in row and description[:100] in row for row in rows), (name, p.stdout)
    assert max(map(len, rows)) > 80


@pytest.mark.parametrize("env", [{"FORCE_COLOR": "1"}, {"COLUMNS": "0"}, {"COLUMNS": "wide"}, {"TTY_COMPATIBLE": "1"}],
                         ids=["force-color", "columns-0", "columns-not-a-number", "tty-compatible"])
@pytest.mark.slow
def test_a_ci_environment_or_a_columns_that_is_no_width_still_gets_the_whole_table(env):
    """CI services set FORCE_COLOR, which rich counts as a terminal (80 columns again); COLUMNS=0 printed nothing."""
    p = signalwise("scenarios", env=env)
    assert p.returncode == 0, p.stderr
    rows = _rows(p.stdout)
    for name, description in list_scenarios():
        assert any(name in row and description[:100] in row for row in rows), (name, p.stdout)


def test_columns_in_the_environment_is_the_width():
    p = signalwise("scenarios", env={"COLUMNS": "60"})
    assert p.returncode == 0, p.stderr
    assert max(map(len, p.stdout.splitlines())) <= 60
    assert len(_rows(p.stdout)) > len(list_scenarios())  # folded to fit
