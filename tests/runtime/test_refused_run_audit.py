"""A run refused once SUMO has read the network (no controllable signal, a model that does not fit) keeps its
directory, `run.json` `failed` with `ran: false`; `signalwise audit` says it never ran, in one warning line, and
judges the runs that ran: `audit runs/*` after a refusal is not exit 2 for evidence nobody broke."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.cli import in_a_process, signalwise

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load


def _no_signal_network(folder: Path) -> tuple[Path, Path]:
    """A 2x2 grid from SUMO's netgenerate with no traffic light (no --tls.guess), and a route over it."""
    from signalwise.sim.sumo_home import sumo_home

    home = sumo_home()
    net = folder / "nosignals.net.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "2", "-o", str(net)], check=True,
                   capture_output=True, env={**os.environ, "SUMO_HOME": str(home)})
    routes = folder / "r.rou.xml"
    routes.write_text('<routes><vehicle id="v" depart="0"><route edges="A0B0"/></vehicle></routes>')
    return net, routes


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_audit_of_every_run_passes_when_the_only_other_is_a_refusal(tmp_path):
    net, routes = _no_signal_network(tmp_path)
    p = in_a_process("run", "--net", str(net), "--routes", str(routes), "--duration", "30", "--run-dir", "runs/refused",
                     cwd=tmp_path)
    assert p.returncode == 2 and "no controllable traffic light" in p.stderr, p.stderr
    info = json.loads((tmp_path / "runs" / "refused" / "run.json").read_text())
    assert info["status"] == "failed" and info["ran"] is False and "no controllable" in info["reason"]
    p = in_a_process("run", "-s", "single", "--duration", "60", "--run-dir", "runs/ran", cwd=tmp_path)
    assert p.returncode == 0, p.stderr

    p = signalwise("audit", "runs/refused", "runs/ran", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert _lines(p.stderr) == ["warning: runs/refused: a run that never ran (run.json: failed, refused before its "
                                "first step: no controllable traffic light (the network has no traffic lights)); "
                                "no evidence to audit"], p.stderr
    assert "1 run(s) audited: no violations, 1 that never ran" in p.stdout

    p = signalwise("audit", "runs/refused", cwd=tmp_path)  # nothing that ran: no evidence at all is not a pass
    assert p.returncode == 2 and _lines(p.stderr)[-1] == "error: nothing to audit: no run given ever ran", p.stderr


def test_a_model_that_does_not_fit_is_a_run_that_never_ran_too(tmp_path):
    single = load("single")  # the built-in's files as a user's own network: no model is shipped for it
    p = in_a_process("run", "-c", "ql", "--net", str(single.net_file), "--routes", str(single.route_files[0]),
                     "--duration", "60", "--run-dir", "r", cwd=tmp_path)
    assert p.returncode == 2 and "no model given" in p.stderr, p.stderr
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "failed" and info["ran"] is False
    p = signalwise("audit", "r", cwd=tmp_path)
    assert "r: a run that never ran" in p.stderr and "not a complete run directory" not in p.stderr, p.stderr


def test_a_run_that_failed_after_it_ran_is_still_broken_evidence(tmp_path, monkeypatch):
    """A full disk while the evidence is written: the run ran, and what it left is broken (exit 2, as before)."""
    import signalwise.runtime.run as run_module

    def disk_full(cfg, loop, run_dir):
        raise OSError("disk full")

    monkeypatch.setattr(run_module, "write_evidence", disk_full)
    with pytest.raises(OSError):
        execute_run(RunConfig(scenario="single", controller="fixed", duration_s=60, emissions=False),
                    tmp_path / "broke")
    info = json.loads((tmp_path / "broke" / "run.json").read_text())
    assert info["status"] == "failed" and info["ran"] is True
    p = signalwise("audit", "broke", cwd=tmp_path)
    assert p.returncode == 2 and "broke: not a complete run directory" in p.stderr, p.stderr
    assert "never ran" not in p.stderr
