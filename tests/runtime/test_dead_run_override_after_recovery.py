"""A run killed with SIGKILL after a simulator recovery: the next run of the corridor names the override it had in
force with the end the recovery moved it to, as the run itself last said it, not the end it was made with.

Found in a trial: a hold made at t=42 for 300 s (`until t=342 s`), SUMO killed (the run logged `override on J2 now
until t=319 s (was t=342 s)`), then the whole command killed: the next run's warning, its `previous_run_died`
alert and the dead run's `overrides_in_force` all said t=342. Real processes, real kills: the SUMO worker and then
the whole `signalwise live` process group, with SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from signalwise.runtime.live.previous import overrides_in_force

pytestmark = pytest.mark.slow

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
HTTP = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = what()
        except (httpx.HTTPError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"not within {timeout_s} s: {what.__doc__ or what}")


def test_the_next_run_names_the_override_end_a_recovery_moved(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([SIGNALWISE, "live", "-s", "corridor", "--speed", "10", "--state-every", "30",
                             "--insecure-no-auth", "--port", str(port), "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=tmp_path)
    try:
        _wait(lambda: HTTP.get(f"{base}/api/v1/live/status").json().get("running"))
        _wait(lambda: HTTP.get(f"{base}/api/v1/live/status").json()["sim_time_s"] >= 35)
        made = HTTP.post(f"{base}/api/v1/live/override", json={"intersection_id": "J2", "action": "hold",
                                                                "phase_number": 1, "duration_s": 300}).json()
        made_until = made["sim_time_s"] + 300
        status = _wait(lambda: (s := HTTP.get(f"{base}/api/v1/live/status").json())["sim_time_s"] >= 50 and s)
        assert status["overrides"]["J2"] == f"hold phase 1 until t={made_until:.0f} s"
        os.kill(status["sim_pid"], signal.SIGKILL)  # the simulator, killed: the run recovers from its last state
        status = _wait(lambda: (s := HTTP.get(f"{base}/api/v1/live/status").json())["restarts"] >= 1 and s)
        moved = re.fullmatch(r"hold phase 1 until t=(\d+) s", status["overrides"]["J2"])
        moved_until = float(moved.group(1))
        (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        rewound = json.loads((run_dir / "run.json").read_text())["recoveries"][0]["rewound_s"]  # written at recovery
        assert rewound > 0 and moved_until == pytest.approx(made_until - rewound, abs=0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # then the whole command, as a power cut or the OOM killer would
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    dead = run_dir
    said = f"J2: hold phase 1 until t={moved_until:.0f} s (by insecure)"

    after = subprocess.run([SIGNALWISE, "live", "-s", "corridor", "--speed", "max", "--duration", "5", "--port",
                            str(_free_port()), "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
    assert after.returncode == 0, after.stderr[-2000:]
    err = " ".join(after.stderr.split())
    assert f"{said} was in force and is not replayed" in err, err
    assert f"until t={made_until:.0f} s" not in err, err
    info = json.loads((dead / "run.json").read_text())
    assert info["status"] == "died" and info["overrides_in_force"] == [said], info
    (second,) = [p for p in tmp_path.iterdir() if p.is_dir() and p != dead]
    alerts = [json.loads(line) for line in (second / "alerts.jsonl").read_text().splitlines() if line]
    (died,) = {a["id"]: a for a in alerts if a.get("rule") == "previous_run_died"}.values()
    assert said in " ".join(died["message"].split()), died["message"]


#: a live run in a process of its own, killed with SIGKILL at a chosen simulated time after a simulator recovery
#: (`support.crashes.crash_at` kills its libsumo): made at t=0 for 60 s, crashed at t=55 and restored to its state of
#: t=30 (25 s rewound: the override now ends at t=35), the process killed at t=32
KILLED_AFTER_RECOVERY = textwrap.dedent("""
    import os, signal, sys
    from support.crashes import crash_at
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live import changes as ch
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=300, in_process=True, state_every_s=30), sys.argv[1])
    rt.open()
    rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=1, duration_s=60), who="ops")
    beat = rt._beat

    def beat_then_die():  # at the end of a tick, its evidence flushed: killed as the OOM killer would
        beat()
        if rt.restarts and rt.stepper.t >= 32:
            os.kill(os.getpid(), signal.SIGKILL)
    rt._beat = beat_then_die
    crash_at(rt, [55.0])
    rt.run()
""")


def test_an_override_the_rewind_left_in_force_is_named_though_older_rows_run_later(tmp_path):
    """The rows written before the crash reach t=55; the override's moved end (t=35) is after the last second the
    run reached on its rewound clock (t=32): it was in force. Compared with the largest time in the files, or
    with the end it was made with, it was dropped, or named with t=60."""
    run_dir = tmp_path / "run"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AFTER_RECOVERY)
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), str(run_dir)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "running" and run["restarts"] == 1, run
    (recovery,) = run["recoveries"]
    assert (recovery["crashed_at_s"], recovery["resumed_at_s"]) == (55.0, 30.0), recovery
    assert overrides_in_force(run_dir) == ["J2: hold phase 1 until t=35 s (by ops)"]
