"""`signalwise live` refuses what cannot run before the run starts: one `error:` line, a non-zero exit, no run
directory, nothing left running (the real command, in a process of its own).

- an API port already in use (it used to run the whole duration without its API and exit 0);
- a duration or a state interval that is not a positive number (a negative duration reached SUMO, whose own
  error came out beside ours; `--state-every 0` or `-1` saved the simulator's state every tick);
- `--mqtt` beside SUMO (`--field sumo`): the loop observes SUMO's own detectors, so the feed drove nothing and
  its events were logged in events.csv beside SUMO's for the same channels;
- a `SIGNALWISE_*` setting it cannot take, named by its variable as `serve` names it (a Redis that does not answer
  is an outage, not refused: tests/api/test_redis_down_at_start.py);
- a `--config` file whose `alerts:` rules are invalid (it came out as a traceback);
- a controller that cannot run on the network (it left a half-made run directory, and its SUMO process).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _live(tmp_path: Path, *args: str, port: int | None = None, redis_url: str | None = None
          ) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    env.pop("SIGNALWISE_REDIS_URL", None)
    if redis_url is not None:
        env["SIGNALWISE_REDIS_URL"] = redis_url
    return subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--speed", "max", "--out", str(tmp_path / "runs"),
                           "--port", str(port or _free_port()), *args],
                          env=env, capture_output=True, text=True, timeout=60)


def _refused(done: subprocess.CompletedProcess, tmp_path: Path, code: int) -> str:
    """The one `error:` line of a run refused before it started."""
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # the run never started
    return lines[0]


def test_an_api_port_in_use_refuses_the_run_before_it_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _live(tmp_path, "--duration", "30", port=port)
    line = _refused(done, tmp_path, code=1)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line
    assert "API on http" not in done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--duration", "-5"), "--duration must be a positive number"),
    (("--duration", "0"), "--duration must be a positive number"),
    (("--duration", "30", "--state-every", "-1"), "--state-every must be a positive number"),
    (("--duration", "30", "--state-every", "0"), "--state-every must be a positive number"),
    # asked to actuate with nothing to actuate: it used to run in shadow without a word
    (("--duration", "30", "--field", "none", "--sink", "sumo"), "--sink sumo needs a simulator to actuate"),
    # a database named by a bare path: it ran the whole run, then failed to store it
    (("--duration", "30", "--db", "plain.db"), "--db: 'plain.db' is not a database URL"),
])
@pytest.mark.slow
def test_a_duration_or_state_interval_that_is_not_positive_is_one_usage_error(tmp_path, args, says):
    assert says in _refused(_live(tmp_path, *args), tmp_path, code=2)


def test_mqtt_beside_sumo_is_refused_with_the_reason(tmp_path):
    line = _refused(_live(tmp_path, "--duration", "30", "--mqtt", "127.0.0.1:1883"), tmp_path, code=2)
    assert "--mqtt needs --field none" in line and "twice in events.csv" in line


@pytest.mark.parametrize(("value", "says"), [
    ("mqtt://127.0.0.1:1883", "not a URL or credentials"),
    ("user:pw@127.0.0.1:1883", "not a URL or credentials"),
    ("::1:1883", "--mqtt takes HOST:PORT"),
    ("[::1:1883", "--mqtt takes HOST:PORT"),
    ("[fe80::1]x:1883", "--mqtt takes HOST:PORT"),
    ("127.0.0.1", "--mqtt takes HOST:PORT"),
])
@pytest.mark.slow
def test_an_mqtt_broker_given_as_a_url_or_with_credentials_is_refused_before_the_run(tmp_path, value, says):
    """They used to start a run whose client retried a host named `mqtt://127.0.0.1` for ever, all in fallback."""
    line = _refused(_live(tmp_path, "--duration", "30", "--field", "none", "--mqtt", value), tmp_path, code=2)
    assert says in line
    if "credentials" in says:
        assert "SIGNALWISE_MQTT_USERNAME" in line


def test_a_bad_setting_in_the_environment_is_named_by_its_variable_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNALWISE_JWT_SECRET", "short")  # tokens need 32 characters of secret
    line = _refused(_live(tmp_path, "--duration", "30"), tmp_path, code=2)
    assert line.startswith("error: SIGNALWISE_JWT_SECRET: ") and "at least 32" in line, line


def test_a_config_whose_alert_rules_are_invalid_is_one_usage_error(tmp_path):
    """A rule without its metric in the `--config` file's `alerts:` section came out as a traceback, exit 1."""
    config = tmp_path / "run.yaml"
    config.write_text("alerts:\n  rules:\n  - {name: late, threshold: 1}\n")
    line = _refused(_live(tmp_path, "--duration", "30", "--config", str(config)), tmp_path, code=2)
    assert line == "error: alerts: rules.0.metric: Field required"


def test_a_controller_that_cannot_run_here_leaves_no_run_directory(tmp_path):
    """The controller is built once SUMO has read the network, in the run directory it made: a refused run
    left that directory behind, half made (its detector file, no run.json)."""
    line = _refused(_live(tmp_path, "--duration", "30", "--controller", f"ql:{tmp_path / 'no-model'}"), tmp_path,
                    code=2)
    assert "no such model" in line


def test_a_runtime_that_cannot_start_closes_its_simulator(tmp_path):
    """In a program that embeds the runtime: a runtime refused at `open()` ends the SUMO process it started
    and removes its run directory; the next one starts."""
    from signalwise.control.base import ControllerUnavailable
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    refused = LiveRuntime(RunConfig(scenario="single", controller=f"ql:{tmp_path / 'no-model'}"),
                          LiveOptions(speed=None, duration_s=10), tmp_path / "refused")
    with pytest.raises(ControllerUnavailable, match="no such model"):
        refused.open()
    assert not (tmp_path / "refused").exists()
    pid = refused.field.backend.pid
    assert pid and not Path(f"/proc/{pid}").exists()  # ended and reaped, not left running beside this process
    rt = LiveRuntime(RunConfig(scenario="single", controller="fixed"), LiveOptions(speed=None, duration_s=10),
                     tmp_path / "next")
    rt.open()
    rt.run()
    assert rt.status()["status"] == "complete"
