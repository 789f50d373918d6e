"""Mistyped controllers and route files, as a user types them.

`compare --controllers fixed,maxpressure` said "invalid controller (--controller)", the option of `run`, with no
suggestion; `--routes a.rou.xml,b.rou.xml` (how SUMO's own option lists files) said only "no such file".
"""

from __future__ import annotations

import pytest
from support.cli import signalwise

from signalwise.sim.scenario import load


@pytest.mark.parametrize("args, option", [
    (["compare", "--controllers", "fixed,maxpressure", "--seeds", "1"], "--controllers"),
    (["run", "--controller", "maxpressure"], "--controller"),
])
def test_a_mistyped_controller_names_the_option_given_and_the_controller_meant(tmp_path, args, option):
    p = signalwise(*args, "--duration", "60", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: invalid controller")
    assert f"({option})" in last or f"in {option}:" in last
    assert "unknown controller 'maxpressure' (did you mean max-pressure?); choose from" in last
    assert not (tmp_path / "out").exists()


def test_a_controller_like_no_other_gets_no_suggestion(tmp_path):
    p = signalwise("compare", "--controllers", "fixed,zzzz", "--seeds", "1", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert p.returncode == 2 and "unknown controller 'zzzz'; choose from" in p.stderr


def test_comma_separated_route_files_are_refused_with_how_to_give_several(tmp_path):
    single = load("single")
    (tmp_path / "a.rou.xml").write_text(single.route_files[0].read_text())
    (tmp_path / "b.rou.xml").write_text("<routes/>")
    p = signalwise("run", "--net", str(single.net_file), "--routes", "a.rou.xml,b.rou.xml", "--duration", "60",
                   "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert p.returncode == 2
    assert ("error: a.rou.xml,b.rou.xml: no such file; several route files are given one per --routes (--routes "
            "a.rou.xml --routes b.rou.xml)") in p.stderr
