"""Which controller `signalwise live` runs when an earlier run of the corridor was switched through the API.

The switch is a lasting change, kept in `live-<scenario>.changes.jsonl` beside the runs and applied again when a
later run starts. A controller typed on the command line (`-c`) wins over it, the file's other lasting changes
still apply, and one line says what was not applied; without `-c` the stored controller runs, from the first
tick. Either way the banner, the run directory and run.json name the controller that runs. A stored controller
that cannot run any more (its model gone) is refused with one line and the command's controller runs.

The file is made for real: a `signalwise live` run of `corridor` changed through its API, then stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.cli import in_a_process, stop_if_running
from support.models import write_model

from signalwise.envs.episode import probe_network
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario
from signalwise.sim.detectors import plan_detectors

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
HTTP = httpx.Client(timeout=15, limits=httpx.Limits(max_keepalive_connections=0))
FILE = "live-corridor.changes.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corridor_model(path: Path) -> Path:
    """A real `ql` model of corridor's signals, as a run plans them (a zero table: it runs, guided)."""
    cfg = RunConfig(scenario="corridor")
    inters, _lengths = probe_network(cfg, resolve_scenario(cfg))
    by_tls = plan_detectors(resolve_scenario(cfg).net_file)
    return write_model(path, [dataclasses.replace(i, detectors=by_tls.get(i.id, ())) for i in inters],
                       scenario="corridor")


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[str, Path]:
    """(the corridor's changes file as a live run left it, the model its last controller switch names)."""
    root = tmp_path_factory.mktemp("earlier")
    model = _corridor_model(root / "model")
    port = _free_port()
    proc = subprocess.Popen([SIGNALWISE, "live", "-s", "corridor", "--speed", "10", "--port", str(port), "--out",
                             str(root / "runs"), "--insecure-no-auth"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SIGNALWISE_MODELS_DIR": str(root)})  # where the API may name it
    base = f"http://127.0.0.1:{port}/api/v1/live"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if HTTP.get(f"{base}/status").json().get("running"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "signalwise live did not start in 90 s"
            time.sleep(0.2)
        for method, route, body in [("PUT", "config/timing", {"timing": {"min_green_s": 12}}),
                                    ("POST", "controller", {"controller": "fixed"}),
                                    ("PUT", "config/shield", {"shield": {"max_observation_age_s": 15}}),
                                    ("POST", "controller", {"controller": f"ql:{model}"})]:
            answer = HTTP.request(method, f"{base}/{route}", json=body)
            assert answer.status_code == 200, answer.text
        assert HTTP.get(f"{base}/status").json()["controller"] == f"ql:{model}"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        stop_if_running(proc)
    text = (root / "runs" / FILE).read_text()
    assert [json.loads(line)["kind"] for line in text.splitlines()] == ["timing", "controller", "shield", "controller"]
    return text, model


def _live(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """A short unpaced `signalwise live` of corridor into `out`, and its run directory (the only one made)."""
    p = in_a_process("live", "-s", "corridor", "--speed", "max", "--duration", "30", "--port", "0", "--out",
                     str(out), *args)
    assert p.returncode == 0, p.stderr[-3000:]
    made = [d for d in out.iterdir() if d.is_dir()]
    assert len(made) == 1, made
    return p, made[0]


def _changes(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "changes.jsonl").read_text().splitlines()]


def _copied(stored_text: str, tmp_path: Path) -> Path:
    out = tmp_path / "runs"
    out.mkdir()
    (out / FILE).write_text(stored_text)
    return out


@pytest.mark.slow
def test_a_controller_given_on_the_command_line_wins_and_the_other_lasting_changes_still_apply(stored, tmp_path):
    text, model = stored
    out = _copied(text, tmp_path)
    p, run_dir = _live(out, "-c", "actuated")
    assert run_dir.name.endswith("-live-corridor-actuated")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["controller"] == "actuated" and run["signal_controllers"] == {}
    assert "live: actuated on corridor" in p.stderr
    said = " ".join(p.stderr.split())  # rich wraps the banner; the replay's lines are printed unbroken
    not_applied = [line for line in p.stderr.splitlines() if "not applied" in line]
    assert len(not_applied) == 1, p.stderr  # one line for the file's controller changes
    assert f"controller change to ql:{model}" in not_applied[0] and "--controller actuated" in not_applied[0]
    assert "1 earlier: fixed" in not_applied[0]
    assert "controller now: actuated" in said
    replayed = [c for c in _changes(run_dir) if c.get("replayed")]
    assert [(c["kind"], c["result"]) for c in replayed] == [("timing", "applied"), ("controller", "refused"),
                                                           ("shield", "applied"), ("controller", "refused")]
    assert all(c["made_by"] == "insecure" for c in replayed)
    assert "--controller actuated was given on the command line" in replayed[-1]["reason"]
    revisions = {d["id"]: d.get("timing_revisions") for d in json.loads((run_dir / "signal_model.json").read_text())}
    assert all(r and set(r[-1]["min_green_s"]) == {12} for r in revisions.values())  # the timing held
    assert (out / FILE).read_text() == text  # the file keeps the switch for a run that names no controller


@pytest.mark.slow
def test_without_a_controller_the_stored_model_controller_runs_from_the_start_and_names_the_run(stored, tmp_path):
    text, model = stored
    out = _copied(text, tmp_path)
    p, run_dir = _live(out)
    spec = f"ql:{model}"
    assert "-live-corridor-ql-" in run_dir.name and "max-pressure" not in run_dir.name
    run = json.loads((run_dir / "run.json").read_text())
    assert run["controller"] == spec and run["signal_controllers"] == {}
    said = " ".join(p.stderr.split())
    assert f"live: {spec} on corridor" in said
    assert f"controller now: {spec}" in said and "not applied" not in said
    config = (run_dir / "config.yaml").read_text()
    assert f"controller: {spec}" in config  # the run's own configuration: what ran from its first tick
    replayed = [c for c in _changes(run_dir) if c.get("replayed")]
    assert [c["result"] for c in replayed] == ["applied"] * 4
    assert (out / FILE).read_text() == text


@pytest.mark.slow
def test_a_stored_controller_whose_model_is_gone_is_refused_in_one_line_and_the_commands_runs(stored, tmp_path):
    text, model = stored
    out = _copied(text, tmp_path)
    away = tmp_path / "model-away"
    shutil.move(model, away)
    try:
        p, run_dir = _live(out)
    finally:
        shutil.move(away, model)
    assert run_dir.name.endswith("-live-corridor-max-pressure")  # the attempt with the stored one left nothing
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["controller"] == "max-pressure" and run["signal_controllers"] == {}
    refused = [line for line in p.stderr.splitlines() if "not applied" in line]
    assert len(refused) == 1 and f"ql:{model}" in refused[0] and "no such model" in refused[0], p.stderr
    assert "controller now: max-pressure" in p.stderr
    assert "Traceback" not in p.stderr
    replayed = [c for c in _changes(run_dir) if c.get("replayed")]
    assert [(c["kind"], c["result"]) for c in replayed][-1] == ("controller", "refused")
    assert [c["kind"] for c in replayed if c["result"] == "applied"] == ["timing", "controller", "shield"]


def test_signals_started_on_the_stored_controller_keep_it_past_their_first_green(tmp_path):
    """The run started with the stored controller is not handed a fresh one of the same kind at each signal's
    first green (as applying the stored switch again would): the controllers it started with run to the end."""
    from signalwise.runtime.live import changes as ch
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    opts = LiveOptions(speed=None, duration_s=120, in_process=True)
    first = LiveRuntime(RunConfig(scenario="corridor", out_dir=tmp_path), opts, tmp_path / "first")
    first.open()
    first.submit(ch.ControllerChange(controller="fixed"), who="ops")
    first.run()
    second = LiveRuntime(RunConfig(scenario="corridor", controller="fixed", out_dir=tmp_path), opts,
                         tmp_path / "second")  # as `signalwise live` starts it without -c
    second.open()
    started = dict(second.stepper.controllers)
    second.run()
    assert second.controller_spec == "fixed"
    assert all(second.stepper.controllers[t] is c for t, c in started.items())
    assert [(c["kind"], c["result"]) for c in second.changes if c.get("replayed")] == [("controller", "applied")]


@pytest.mark.slow
def test_a_live_run_of_a_controller_file_is_named_after_the_file_not_its_path(tmp_path):
    """`-c py:../examples/longest_queue.py:make` names the run directory `py-longest_queue-make`, as `signalwise run`
    names its own, not the path's punctuation."""
    example = Path(__file__).resolve().parents[2] / "examples" / "longest_queue.py"
    out = tmp_path / "runs"
    out.mkdir()
    _p, run_dir = _live(out, "-c", f"py:{example}:make")
    assert run_dir.name.endswith("-live-corridor-py-longest_queue-make"), run_dir.name
