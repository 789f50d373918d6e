"""`train --sumocfg` says which of the file's settings its episodes leave out, in the line `run`, `compare` and
`evaluate` give (`runtime.loop.sumocfg_note`), before the first episode: a model trained silently with 300 s
teleports on a .sumocfg that asked for 120 s was first told so at `evaluate`.

Real SUMO runs: `single`'s files as a user's .sumocfg, one 60 s episode (tabular) or a two-candidate
generation (phase-score)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SUMOCFG = """<configuration>
    <input>
        <net-file value="my.net.xml"/>
        <route-files value="my.rou.xml"/>
    </input>
    <time><begin value="0"/><end value="600"/></time>
    <processing><time-to-teleport value="120"/></processing>
</configuration>
"""
AGENTS = {
    "tabular": ["--agent", "tabular", "--episodes", "1", "--batch", "1"],
    "phase-score": ["--agent", "phase-score", "--generations", "1", "--popsize", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("agent", list(AGENTS))
def test_train_names_the_sumocfg_settings_its_episodes_leave_out(tmp_path, agent):
    sc = load("single")
    shutil.copy(sc.net_file, tmp_path / "my.net.xml")
    shutil.copy(sc.route_files[0], tmp_path / "my.rou.xml")
    (tmp_path / "my.sumocfg").write_text(SUMOCFG)
    r = subprocess.run([SIGNALWISE, "train", *AGENTS[agent], "--sumocfg", "my.sumocfg", "--workers", "1",
                        "--duration", "60", "--validation-seeds", "1", "--out", "t"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "time-to-teleport 120: not applied" in warnings[0], r.stderr
    assert "my.sumocfg" in warnings[0]
