"""A user's own controller in a live run: what it cannot do to the run, and what a lasting change cannot do to a
later one.

- A controller the run's saved state cannot hold (a lock, a client: `copy.deepcopy` fails) is refused by a switch
  over the API (422, with the reason), at start (one line), and when a stored switch to it is replayed at a
  restart (logged as refused, the corridor starts); one that becomes uncopyable mid-run leaves the run going.
- A `SystemExit` from `decide` is an error the shield handles, not the end of the run.
- A stored switch to a `py:` controller never loads its module into a later run that did not name it, and a
  restart never starts on a switch the operator had switched away from to it.

Real SUMO (in-process runtimes, and `signalwise live` processes on 127.0.0.1 for what a restart does), a real
uvicorn for the API, a real installed plugin (a dist-info on the Python path, as pip writes it).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.loopback import serving_port

from signalwise.control.base import ControllerUnavailable
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.lasting import append_change, site_changes_file
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
BAD_INPUT = 2
MODULE = "swtest_live_controllers"

CONTROLLERS = '''
import threading

from signalwise.core import Decision


class Holding:
    name = "holding"
    observation = "counts"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter):
        self.inter = inter

    def decide(self, obs):
        return Decision(self.inter.id, None, self.name)


class Locked(Holding):
    """Holds a lock from the start, as a controller sharing a model server's client does."""

    def __init__(self, inter):
        super().__init__(inter)
        self.lock = threading.Lock()


class LazilyLocked(Holding):
    """Takes its lock at its first decision: it passes every check made before it runs."""

    def decide(self, obs):
        self.lock = threading.Lock()
        return super().decide(obs)


class Exiting(Holding):
    """A library that calls sys.exit() (a licence check) under decide."""

    def decide(self, obs):
        raise SystemExit(0)


def holding(inter, ctx):
    return Holding(inter)


def locked(inter, ctx):
    return Locked(inter)


def lazily_locked(inter, ctx):
    return LazilyLocked(inter)


def exiting(inter, ctx):
    return Exiting(inter)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory holding the installed distribution `swtest-plugins`, whose plugin `locked` holds a lock."""
    where = tmp_path_factory.mktemp("site")
    info = where / "swtest_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: swtest-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[signalwise.controllers]\nlocked = {MODULE}:locked\n")
    (where / f"{MODULE}.py").write_text(CONTROLLERS)
    return where


def _spec(site: Path, factory: str) -> str:
    return f"py:{site / f'{MODULE}.py'}:{factory}"


def _runtime(tmp_path: Path, controller: str, duration_s: float = 60, **opts) -> LiveRuntime:
    return LiveRuntime(RunConfig(scenario="single", controller=controller, out_dir=tmp_path / "runs"),
                       LiveOptions(**{"speed": None, "duration_s": duration_s, "in_process": True,
                                      "state_every_s": 10, **opts}),
                       tmp_path / "runs" / "live")


def _live(out: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A short unpaced `signalwise live` of `single` into `out`, as a supervisor restarts it."""
    return subprocess.run([SIGNALWISE, "live", "-s", "single", "--speed", "max", "--duration", "20", "--port", "0",
                           "--out", str(out), *args], capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def _made(out: Path) -> Path:
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return run_dir


def _replayed(run_dir: Path) -> list[dict]:
    lines = (run_dir / "changes.jsonl").read_text().splitlines()
    return [c for c in map(json.loads, lines) if c.get("replayed")]


def test_a_switch_to_a_controller_the_runs_state_cannot_hold_is_refused_over_the_api(site, tmp_path, monkeypatch):
    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key

    monkeypatch.syspath_prepend(str(site))
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    rt = _runtime(tmp_path, "max-pressure")
    rt.open()
    app.state.live = rt
    with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                                                 timeout=20) as client:
        r = client.post("/api/v1/live/controller", json={"controller": "locked"})
        assert r.status_code == 422, r.text
        said = r.json()["message"]
        assert "controller 'locked' cannot run here: it cannot be saved with the run's state" in said, said
        assert "cannot pickle '_thread.lock' object" in said and "__deepcopy__" in said
        assert [c["result"] for c in client.get("/api/v1/live/changes").json()] == ["refused"]
    rt.run()  # the run goes on to its end, on its own controller, saving its state
    assert rt.status_text == "complete" and rt.controller_spec == "max-pressure" and rt._saved is not None
    assert not site_changes_file(tmp_path / "runs", "single").exists()  # nothing kept for a later run


def test_a_run_started_with_a_controller_its_state_cannot_hold_is_refused_in_one_line(site, tmp_path):
    rt = _runtime(tmp_path, _spec(site, "locked"))
    with pytest.raises(ControllerUnavailable) as refused:
        rt.open()
    said = str(refused.value)
    assert "\n" not in said and said.startswith(f"controller {_spec(site, 'locked')!r} cannot run live at signal 'C'")
    assert "cannot pickle '_thread.lock' object" in said
    assert not (tmp_path / "runs" / "live").exists()


@pytest.mark.slow
def test_a_stored_switch_to_a_controller_the_state_cannot_hold_is_refused_at_restart_and_the_corridor_starts(
        site, tmp_path):
    """The file as a run that took the switch left it: every later start without -c replayed it and died."""
    out = tmp_path / "runs"
    out.mkdir()
    for change in (ch.ControllerChange(controller="locked"), ch.ControllerChange(controller="locked",
                                                                                 intersections=["C"])):
        append_change(site_changes_file(out, "single"), {**ch.record(change, "ops", "applied"), "field": "sumo"})
    env = {"PYTHONPATH": str(site)}
    p = _live(out, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    run_dir = _made(out)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["controller"] == "max-pressure" and run["signal_controllers"] == {}
    replayed = _replayed(run_dir)
    assert [(c["kind"], c["result"]) for c in replayed] == [("controller", "refused")] * 2
    assert all("it cannot be saved with the run's state" in c["reason"] for c in replayed)
    assert sum("not applied: controller" in line for line in p.stderr.splitlines()) == 2, p.stderr
    # typed on the command line: one line, before the run
    p = _live(tmp_path / "other", "-c", "locked", cwd=tmp_path, env=env)
    assert p.returncode == BAD_INPUT, p.stderr[-3000:]
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("error: controller 'locked' cannot run live at signal 'C': it cannot be saved"), \
        p.stderr
    assert "Traceback" not in p.stderr


def test_a_controller_that_cannot_be_saved_any_more_mid_run_leaves_the_run_going(site, tmp_path, caplog):
    rt = _runtime(tmp_path, _spec(site, "lazily_locked"))
    rt.open()
    with caplog.at_level(logging.ERROR, logger="signalwise.live"):
        rt.run()
    assert rt.status_text == "complete" and rt._saved is None  # no recovery from a state older than the records
    said = [r.getMessage() for r in caplog.records if "state cannot be saved" in r.getMessage()]
    assert len(said) == 1 and "at signal 'C'" in said[0] and "a lost simulator ends the run" in said[0], said


def test_system_exit_from_decide_is_an_error_the_shield_handles_and_the_live_run_goes_on(site, tmp_path):
    rt = _runtime(tmp_path, _spec(site, "exiting"), duration_s=30)
    rt.open()
    rt.run()
    assert rt.status_text == "complete"
    assert rt.stepper.controller_errors > 0
    assert all(sh.in_fallback for sh in rt.stepper.shields.values())


@pytest.mark.slow
def test_a_stored_py_switch_never_loads_its_module_into_a_later_run_that_did_not_name_it(site, tmp_path, monkeypatch):
    """The first run was started with `-c py:./ctl.py:make`; its operator switched to fixed and back to it over
    the API (allowed: its own). A later `signalwise live` without -c, started elsewhere, must not import the
    ./ctl.py found there."""
    first_dir, later_dir = tmp_path / "first", tmp_path / "later"
    first_dir.mkdir()
    later_dir.mkdir()
    own = CONTROLLERS.replace("def holding(", "def make(")
    (first_dir / "ctl.py").write_text(own)
    marker = tmp_path / "imported"
    (later_dir / "ctl.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + own)  # planted where it starts
    spec = "py:./ctl.py:make"
    monkeypatch.chdir(first_dir)
    rt = LiveRuntime(RunConfig(scenario="single", controller=spec, out_dir=tmp_path / "runs"),
                     LiveOptions(speed=None, duration_s=20, in_process=True), tmp_path / "runs" / "first",
                     command_controller=spec)
    rt.open()
    for change in (ch.ControllerChange(controller="fixed"), ch.ControllerChange(controller=spec),
                   ch.ControllerChange(controller=spec, intersections=["C"])):
        assert rt.submit(change, who="ops")["result"] == "applied"
    rt.run()
    stored = site_changes_file(tmp_path / "runs", "single").read_text()
    assert [json.loads(line)["payload"]["controller"] for line in stored.splitlines()] == ["fixed", spec, spec]
    p = _live(tmp_path / "runs", cwd=later_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not marker.exists()
    run_dir = [d for d in (tmp_path / "runs").iterdir() if d.is_dir() and d.name != "first"][0]
    run = json.loads((run_dir / "run.json").read_text())
    # its own configuration's controller (the default), not fixed, which the operator had switched away from
    assert run["controller"] == "max-pressure" and run["signal_controllers"] == {}
    replayed = _replayed(run_dir)
    assert [(c["payload"]["controller"], c["result"]) for c in replayed] == [
        ("fixed", "applied"), (spec, "refused"), (spec, "refused")]
    assert all("a stored change loads no code" in c["reason"] for c in replayed[1:])
    not_applied = [line for line in p.stderr.splitlines() if "not applied: controller" in line]
    assert len(not_applied) == 2 and all(line.endswith(
        "a stored change loads no code: a py: controller runs only when the run starts on it (its own -c or "
        "--config names it)") for line in not_applied), p.stderr


@pytest.mark.slow
def test_a_restart_with_the_same_config_starts_on_its_py_controller_not_on_the_switch_made_before_it(
        site, tmp_path):
    """The first run was started with a --config naming py:Y (no -c); its operator switched to fixed and back to
    py:Y over the API. A supervisor starts the same command again: it runs py:Y, its own, never fixed."""
    spec = _spec(site, "holding")
    config = tmp_path / "corridor.yaml"
    config.write_text(f"controller: {spec}\n")
    rt = LiveRuntime(RunConfig(scenario="single", controller=spec, out_dir=tmp_path / "runs"),
                     LiveOptions(speed=None, duration_s=20, in_process=True), tmp_path / "runs" / "first")
    rt.open()
    for change in (ch.ControllerChange(controller="fixed"), ch.ControllerChange(controller=spec)):
        assert rt.submit(change, who="ops")["result"] == "applied"
    rt.run()
    stored = site_changes_file(tmp_path / "runs", "single").read_text()
    assert [json.loads(line)["payload"]["controller"] for line in stored.splitlines()] == ["fixed", spec]
    p = _live(tmp_path / "runs", "--config", str(config), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = [d for d in (tmp_path / "runs").iterdir() if d.is_dir() and d.name != "first"][0]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["controller"] == spec and run["signal_controllers"] == {}, run
    assert [(c["payload"]["controller"], c["result"]) for c in _replayed(run_dir)] == [
        ("fixed", "applied"), (spec, "applied")]
    assert f"controller now: {spec}" in p.stderr, p.stderr


def test_a_failure_is_told_with_the_controller_its_signal_was_switched_to(site, tmp_path, caplog):
    """The run started with fixed; signal C was switched to the user's controller, which fails: the warning names
    that controller, not the run's (a vendor read 'controller fixed failed at C' while C ran their plugin)."""
    rt = _runtime(tmp_path, "fixed", duration_s=30)
    rt.open()
    spec = _spec(site, "exiting")
    rt.submit(ch.ControllerChange(controller=spec, intersections=["C"]), who="ops")
    with caplog.at_level(logging.WARNING, logger="signalwise"):
        rt.run()
    said = [r.getMessage() for r in caplog.records if " failed at C " in r.getMessage()]
    assert said and all(m.startswith(f"controller {spec} failed") for m in said), said
