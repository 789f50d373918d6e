"""A user's own controller through signalwise's loop and shield, without forking the package: a `py:` file or module,
an installed plugin (entry point group `signalwise.controllers`), in `run` and in `compare`'s worker processes; the
one-line refusals of one that cannot run; the shield's fallback when one raises; the API refusing `py:`.

Real `signalwise` processes on `single` (SUMO and worker processes stay out of the test's own process), and a real
uvicorn on 127.0.0.1 for the API.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.loopback import serving_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "longest_queue.py"
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
BAD_INPUT = 2
INTERRUPTED = 130


def sw(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def run_dir(out: Path) -> Path:
    (found,) = [p for p in out.iterdir() if p.is_dir()]
    return found


def metrics(out: Path) -> dict:
    return json.loads((run_dir(out) / "metrics.json").read_text())


def interventions(out: Path) -> list[dict]:
    with open(run_dir(out) / "interventions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def short_run(spec: str, cwd: Path, duration_s: int = 300, env: dict[str, str] | None = None):
    return sw("run", "-s", "single", "-c", spec, "--duration", str(duration_s), "--record", "lean",
              "--out", str(cwd / "runs"), cwd=cwd, env=env)


def _module_package(where: Path) -> None:
    """`mylab.ctl`: the example as a module of a package in `where`."""
    (where / "mylab").mkdir()
    (where / "mylab" / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, where / "mylab" / "ctl.py")


def test_a_py_file_controller_runs_through_the_shield_and_the_audit_is_clean(tmp_path):
    spec = f"py:{EXAMPLE}:make"
    p = short_run(spec, tmp_path)
    assert p.returncode == 0, p.stderr
    m = metrics(tmp_path / "runs")
    assert m["controller"] == spec and m["controller_ran"]
    assert m["safety"]["violations"] == 0 and sum(m["safety"]["checked"].values()) > 0
    assert m["network"]["controller_errors"] == 0 and m["network"]["fallback_fraction"] == 0
    # its proposals reached the shield, which held them to the minimum green
    assert any("proposed by longest-queue" in row["detail"] for row in interventions(tmp_path / "runs"))


def test_the_docs_show_the_example_as_it_is():
    page = (ROOT / "docs" / "controllers.md").read_text()
    assert "```python\n" + EXAMPLE.read_text() + "```\n" in page


def test_a_module_spec_is_imported_from_the_current_directory(tmp_path):
    _module_package(tmp_path)
    p = short_run("py:mylab.ctl:make", tmp_path, duration_s=120)
    assert p.returncode == 0, p.stderr
    m = metrics(tmp_path / "runs")
    assert m["controller_ran"] and m["safety"]["violations"] == 0 and m["network"]["controller_errors"] == 0


def _plugin_site(where: Path) -> Path:
    """A directory holding an installed distribution `mylab-plugins` (its dist-info, as pip writes it) whose
    entry points offer `longest-queue`, and a `fixed` that would shadow the built-in."""
    site = where / "site"
    info = site / "mylab_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[signalwise.controllers]\nlongest-queue = mylab_lq:make\n"
                                           "fixed = mylab_lq:make\n")
    shutil.copy(EXAMPLE, site / "mylab_lq.py")
    return site


def test_an_installed_plugin_runs_by_name_and_cannot_shadow_a_built_in(tmp_path):
    env = {"PYTHONPATH": str(_plugin_site(tmp_path))}
    p = short_run("longest-queue", tmp_path, duration_s=120, env=env)
    assert p.returncode == 0, p.stderr
    m = metrics(tmp_path / "runs")
    assert m["controller"] == "longest-queue" and m["controller_ran"] and m["safety"]["violations"] == 0
    assert any("proposed by longest-queue" in row["detail"] for row in interventions(tmp_path / "runs"))
    assert "controller plugin 'fixed' not loaded" in p.stderr and "named like the built-in controller" in p.stderr
    # an unknown name lists the plugin among the choices, and says which plugin was not loaded and why
    p = short_run("nope", tmp_path, env=env)
    assert p.returncode == BAD_INPUT
    last = p.stderr.strip().splitlines()[-1]
    assert "choose from" in last and "longest-queue" in last and "fixed: mylab-plugins" in last


@pytest.mark.slow
def test_compare_loads_a_users_controllers_in_its_worker_processes(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "lq.py")
    _module_package(tmp_path)
    names = ["fixed", "py:./lq.py:make", "py:mylab.ctl:make"]
    p = sw("compare", "-s", "single", "-c", ",".join(names), "--seeds", "2", "--workers", "2", "--duration", "120",
           "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["controllers"] == names
    runs = [json.loads(f.read_text()) for f in (tmp_path / "cmp").glob("*/metrics.json")]
    assert sorted(r["controller"] for r in runs) == sorted(names * 2)
    assert all(r["controller_ran"] and r["safety"]["violations"] == 0 for r in runs)
    ours = [r["network"]["avg_delay_s"] for r in runs if r["controller"] != "fixed"]
    assert len(set(ours)) == 2  # the file and the module are one controller: the same two seeds' figures


@pytest.mark.parametrize(("source", "factory", "says"), [
    ("import no_such_module_here\n", "make",
     "cannot import ctl.py: ModuleNotFoundError: No module named 'no_such_module_here'"),
    ("def make(inter, ctx:\n", "make", "cannot import ctl.py: SyntaxError:"),
    ("def build(inter, ctx):\n    pass\n", "make", "ctl.py defines no 'make'"),
    ("make = 3\n", "make", "3 is not callable"),
])
@pytest.mark.slow
def test_a_module_that_cannot_give_a_factory_is_refused_in_one_line_before_the_run(tmp_path, source, factory, says):
    (tmp_path / "ctl.py").write_text(source)
    p = short_run(f"py:ctl.py:{factory}", tmp_path)
    assert p.returncode == BAD_INPUT
    lines = p.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[-1].startswith("error: controller 'py:ctl.py:") and says in lines[-1], \
        p.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


class_without = """
from signalwise.core import Decision


class Half:
    name = "half"
    observation = "lanes"

    def __init__(self, inter):
        self.inter = inter


def make(inter, ctx):
    return Half(inter)


def failing(inter, ctx):
    raise ValueError("needs a detector on every lane")
"""


@pytest.mark.parametrize(("factory", "says"), [
    ("make", "Half is no controller: period_s (seconds of green between decisions, > 0) is missing; observation "
             "(one of full, counts, stopped, none) is 'lanes'; wants_detectors (a bool) is missing; "
             "decide(observation) -> Decision is missing"),
    ("failing", "its factory failed: ValueError: needs a detector on every lane"),
])
@pytest.mark.slow
def test_what_a_factory_makes_is_held_to_what_the_loop_needs(tmp_path, factory, says):
    (tmp_path / "ctl.py").write_text(class_without)
    p = short_run(f"py:ctl.py:{factory}", tmp_path)
    assert p.returncode == BAD_INPUT
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: controller 'py:ctl.py:{factory}' at signal 'C': ") and says in last, p.stderr
    assert "Traceback" not in p.stderr
    status = json.loads((run_dir(tmp_path / "runs") / "run.json").read_text())
    assert status["status"] == "failed" and status["ran"] is False  # refused before the first step


def test_a_controller_that_raises_mid_run_is_the_shields_to_handle(tmp_path):
    (tmp_path / "flaky.py").write_text(EXAMPLE.read_text() + '''

class Flaky(LongestQueue):
    def decide(self, obs):
        if obs.time_s >= 120:
            raise RuntimeError("model server went away")
        return super().decide(obs)


def flaky(inter, ctx):
    return Flaky(inter, 5.0)
''')
    p = short_run("py:flaky.py:flaky", tmp_path)
    assert p.returncode == 0, p.stderr
    m = metrics(tmp_path / "runs")
    assert m["network"]["controller_errors"] > 0 and m["network"]["fallback_fraction"] > 0.3
    assert m["safety"]["violations"] == 0
    fallbacks = [r for r in interventions(tmp_path / "runs") if r["rule"] == "fallback"]
    assert fallbacks and fallbacks[0]["detail"] == "controller failed" and float(fallbacks[0]["time_s"]) >= 120
    assert "model server went away" in p.stderr  # the loop's warning names the error


def test_the_api_refuses_a_py_controller_named_by_a_request(tmp_path):
    """Loading a module a request names is running code on the server: a live change to a `py:` controller and
    a prediction by one are refused, the module never imported; the run's own (the operator's) stays allowed."""
    from signalwise.api import create_app
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key

    marker = tmp_path / "imported"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n\ndef make(inter, ctx):\n    pass\n")
    evil = f"py:{tmp_path / 'evil.py'}:make"
    own = f"py:{EXAMPLE}:make"
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    rt = LiveRuntime(RunConfig(scenario="single", controller=own),
                     LiveOptions(speed=None, duration_s=60, in_process=True), tmp_path / "live")
    rt.open()
    app.state.live = rt
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                                     headers={"X-API-Key": key}, timeout=20) as client:
            for path, body in (("/api/v1/live/controller", {"controller": evil}),
                               ("/api/v1/live/changes", {"kind": "controller", "controller": evil})):
                r = client.post(path, json=body)
                assert r.status_code == 422, r.text
                assert "a request loads no code on the server" in r.json()["message"], r.text
            r = client.post("/api/v1/ml/predict", json={"intersection_id": "C", "phase_number": 1,
                                                        "time_in_phase_s": 20, "controller": evil})
            assert r.status_code == 422 and "a request loads no code on the server" in r.json()["message"], r.text
            assert not marker.exists()
            assert [c["result"] for c in client.get("/api/v1/live/changes").json()] == ["refused", "refused"]
            for spec in ("fixed", own):  # to the baseline and back to the run's own controller
                r = client.post("/api/v1/live/controller", json={"controller": spec})
                assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    finally:
        rt.field.backend.close()


class _WatchedPath(list):
    """`sys.path`, with every change made to it recorded."""

    def __init__(self, items):
        super().__init__(items)
        self.changes: list[tuple[str, str]] = []

    def insert(self, index, item):
        self.changes.append(("insert", item))
        super().insert(index, item)

    def remove(self, item):
        self.changes.append(("remove", item))
        super().remove(item)

    def append(self, item):
        self.changes.append(("append", item))
        super().append(item)


def test_a_py_module_controller_is_loaded_once_and_later_builds_leave_sys_path_alone(tmp_path, monkeypatch):
    """A controller is built for every intersection, and by each /ml/predict of a live run from API threads: after the
    first load, building one again takes the kept factory and changes nothing process-wide."""
    from shield_fixtures import make_intersection

    from signalwise.control.base import ControlContext, factory_of, make

    module = f"swtest_lq_{os.getpid()}"
    shutil.copy(EXAMPLE, tmp_path / f"{module}.py")
    monkeypatch.chdir(tmp_path)
    spec = f"py:{module}:make"
    try:
        first = make(spec, make_intersection(), ControlContext())
        assert first.name == "longest-queue"
        watched = _WatchedPath(sys.path)
        monkeypatch.setattr(sys, "path", watched)
        factory = factory_of(spec)
        assert make(spec, make_intersection(), ControlContext()).name == "longest-queue"
        assert watched.changes == []
        assert factory is sys.modules[module].make
        del sys.modules[module]  # the factory is kept by signalwise, not looked up again in the import system
        assert factory_of(spec) is factory and watched.changes == []
    finally:
        sys.modules.pop(module, None)


exiting = """
from signalwise.core import Decision


class Licensed:
    name = "licensed"
    observation = "counts"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter):
        self.inter = inter

    def decide(self, obs):
        raise SystemExit(0)  # a library's licence check calling sys.exit()


def make(inter, ctx):
    return Licensed(inter)


def exits(inter, ctx):
    raise SystemExit(3)
"""


@pytest.mark.slow
def test_system_exit_from_a_controller_is_an_error_the_shield_handles_and_the_run_completes(tmp_path):
    (tmp_path / "ctl.py").write_text(exiting)
    p = short_run("py:ctl.py:make", tmp_path, duration_s=120)
    assert p.returncode == 0, p.stderr
    status = json.loads((run_dir(tmp_path / "runs") / "run.json").read_text())
    assert status["status"] == "complete", status
    m = metrics(tmp_path / "runs")
    assert m["network"]["controller_errors"] > 0 and m["network"]["fallback_fraction"] > 0.9
    assert m["safety"]["violations"] == 0
    assert "decide raised SystemExit: 0" in p.stderr
    # from the factory: refused in one line, as any error of it
    shutil.rmtree(tmp_path / "runs")
    p = short_run("py:ctl.py:exits", tmp_path)
    assert p.returncode == BAD_INPUT
    assert p.stderr.strip().splitlines()[-1] == ("error: controller 'py:ctl.py:exits' at signal 'C': its factory "
                                                 "failed: SystemExit: 3"), p.stderr
    # and while its module imports: before any run directory is made
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "gone.py").write_text("import sys\n\nsys.exit(4)\n")
    p = short_run("py:gone.py:make", tmp_path)
    assert p.returncode == BAD_INPUT
    assert p.stderr.strip().splitlines()[-1] == ("error: controller 'py:gone.py:make': cannot import gone.py: "
                                                 "SystemExit: 4"), p.stderr
    assert not (tmp_path / "runs").exists()


editing = """
import dataclasses

from signalwise.core import Decision


class Cleaning:
    name = "cleaning"
    observation = "counts"
    wants_detectors = False
    period_s = 1.0

    def __init__(self, inter):
        self.inter = inter

    def decide(self, obs):
        for lane, state in list(obs.lanes.items()):  # "cleans" its data in place
            obs.lanes[lane] = dataclasses.replace(state, count_veh=0, queue_veh=0)
        return Decision(self.inter.id, None, self.name)


def make(inter, ctx):
    return Cleaning(inter)
"""


@pytest.mark.slow
def test_a_controller_editing_its_observation_does_not_switch_off_the_shields_calls(tmp_path):
    """Under `cycle_calls` the shield registers calls from the lane counts after the controller decided: a
    controller zeroing them in place left a protected left unserved for 900 s, with an audit that reads the
    calls the shield logged finding nothing. It decides on its own copy; every phase is called and served."""
    (tmp_path / "ctl.py").write_text(editing)
    (tmp_path / "calls.yaml").write_text("timing: {cycle_calls: true}\n")
    p = sw("run", "-s", "single", "-c", "py:ctl.py:make", "--config", "calls.yaml", "--duration", "900",
           "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with open(run_dir(tmp_path / "runs") / "events.csv", newline="") as fh:
        events = [(int(r["EventId"]), int(r["Parameter"])) for r in csv.DictReader(fh)]
    model = json.loads((run_dir(tmp_path / "runs") / "signal_model.json").read_text())
    phases = {p["number"] for p in model[0]["phases"]}
    assert {n for code, n in events if code == 43} == phases  # called
    assert {n for code, n in events if code == 1} == phases  # and served
    assert metrics(tmp_path / "runs")["safety"]["violations"] == 0


interrupting = """
import pathlib
import time

from signalwise.core import Decision


class Interrupting:
    name = "interrupting"
    observation = "none"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter):
        self.inter = inter

    def decide(self, obs):
        raise KeyboardInterrupt  # a library's way of giving up, no key pressed


class Slow(Interrupting):
    def decide(self, obs):
        pathlib.Path("deciding").touch()
        time.sleep(60)  # a model server that does not answer: the operator stops the run meanwhile
        return Decision(self.inter.id, None, self.name)


def make(inter, ctx):
    return Interrupting(inter)


def slow(inter, ctx):
    return Slow(inter)
"""


@pytest.mark.parametrize(("signum", "reason"), [(signal.SIGINT, "interrupted"),
                                                (signal.SIGTERM, "terminated (SIGTERM)")])
@pytest.mark.slow
def test_ctrl_c_or_sigterm_while_a_controller_decides_stops_the_run(tmp_path, signum, reason):
    """The operator's stop reaches the run while the controller's `decide` waits: Python's own SIGINT handler
    raises inside `time.sleep`, the run's SIGTERM handler in its own frame; neither is the controller's error."""
    (tmp_path / "ctl.py").write_text(interrupting)
    proc = subprocess.Popen([SIGNALWISE, "run", "-s", "single", "-c", "py:ctl.py:slow", "--duration", "120",
                             "--record", "lean", "--out", str(tmp_path / "runs")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"},
                            # Ctrl-C as in a terminal: a suite started in the background hands its children
                            # SIGINT ignored, and Python then installs no handler for it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "deciding").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "deciding").exists(), proc.communicate(timeout=10)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED, err
    status = json.loads((run_dir(tmp_path / "runs") / "run.json").read_text())
    assert (status["status"], status["reason"]) == ("incomplete", reason)
