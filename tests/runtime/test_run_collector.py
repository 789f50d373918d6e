"""`signalwise run` holds Python's cyclic garbage collector off while it reads, runs and records
(`signalwise.collector`): no collector pass walks the run's records, and afterwards the collector is as it was. A
library caller of `execute_run` (training's episodes, one after another in a process) keeps its collector."""

from __future__ import annotations

import gc
import sys

import pytest
from support.cli import signalwise

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


@pytest.fixture
def passes_in_runs():
    """The collector passes that start while a run (`execute_run`) is on the stack."""
    seen: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase != "start":
            return
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == "execute_run":
                seen.append(info["generation"])
                return
            frame = frame.f_back

    gc.callbacks.append(note)
    yield seen
    gc.callbacks.remove(note)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_run_command_makes_no_collector_pass_and_leaves_the_collector_as_it_was(tmp_path, passes_in_runs,
                                                                                    enabled_before):
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        p = signalwise("run", "--scenario", "single", "--controller", "max-pressure", "--duration", "300",
                       "--record", "lean", "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
        assert gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()
    assert p.returncode == 0, p.stderr
    assert passes_in_runs == []


def test_a_library_run_keeps_the_collector(tmp_path, passes_in_runs):
    assert gc.isenabled()
    execute_run(RunConfig(scenario="single", controller="max-pressure", duration_s=300, record="lean"), tmp_path / "r")
    assert passes_in_runs  # a run makes enough objects for the young generation's passes
