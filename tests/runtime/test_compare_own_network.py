"""signalwise compare takes your own network as run does: --net/--routes or --sumocfg, with --timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "compare", *args], capture_output=True, text=True, timeout=300)


def test_compare_on_a_net_and_routes_under_a_profile(tmp_path):
    single = load("single")
    p = _compare("--net", str(single.net_file), "--routes", str(single.route_files[0]), "--controllers",
                 "fixed,max-pressure", "--seeds", "1", "--duration", "120", "--workers", "1", "--timing",
                 "benchmark", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["scenario"] == single.net_file.name
    assert summary["controllers"] == ["fixed", "max-pressure"]
    assert all(len(e["values"]) == 1 for e in summary["metrics"]["avg_delay_s"]["controllers"].values())
    config = (tmp_path / "cmp" / "max-pressure-s1" / "config.yaml").read_text()
    assert "profile: benchmark" in config and "yellow_s: 3.0" in config


def test_compare_refuses_a_missing_network_in_one_line(tmp_path):
    p = _compare("--net", str(tmp_path / "nowhere.net.xml"), "--routes", str(tmp_path / "r.rou.xml"),
                 "--seeds", "1", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error:") and "nowhere.net.xml" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cmp").exists()
