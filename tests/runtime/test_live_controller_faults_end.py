"""`signalwise live` with a faulty controller: `GET /api/v1/live/status` counts its errors and invalid proposals while
the run goes (a field its OpenAPI schema declares), and the command's last lines give the warning a batch
`signalwise run` gives when they took more than a small share of the decisions.

The real command on `single` (SUMO in its own process, the API on 127.0.0.1), and a `py:` controller written for
the test that fails while the test leaves it a cue file: first a clean start, then every decision a fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.faulty_controller import write_faulty_controller
from support.loopback import free_port
from support.waiting import value_within

from signalwise.runtime.controller_faults import ERROR_WARN_SHARE, INVALID_WARN_SHARE

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


@pytest.mark.slow
def test_live_status_counts_the_controllers_faults_and_the_end_of_the_run_warns_as_a_batch_run(tmp_path):
    cue = tmp_path / "fail"
    module = write_faulty_controller(tmp_path, cue)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # paced (no --duration: it runs until stopped) only so the status can be read while it goes
    proc = subprocess.Popen([SIGNALWISE, "live", "-s", "single", "-c", f"py:{module}:faulty", "--speed", "20",
                             "--port", str(port), "--out", str(tmp_path / "runs")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                                 "NO_COLOR": "1", "COLUMNS": "200"})
    client = httpx.Client(base_url=base, timeout=5, limits=httpx.Limits(max_keepalive_connections=0))

    def status() -> dict:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        try:
            return client.get("/api/v1/live/status").json()
        except httpx.HTTPError:
            return {}

    last: list[dict] = [{}]

    def counted(enough) -> dict | None:
        """The status once its `controller_faults` satisfy `enough` (the run goes meanwhile); `last`: the last read."""
        def read():
            last[0] = status()
            return last[0] if enough(last[0].get("controller_faults") or {}) else None
        return value_within(read, timeout_s=60, every_s=0.05)

    try:
        clean = counted(lambda f: f.get("decisions", 0) > 2)
        assert clean and clean["running"], last[0]
        assert clean["controller_faults"]["errors"] == clean["controller_faults"]["invalid_proposals"] == 0
        declared = client.get("/openapi.json").json()["components"]["schemas"]
        assert "controller_faults" in declared["LiveStatus"]["properties"]
        assert set(declared["ControllerFaultCounts"]["required"]) == {"decisions", "errors", "invalid_proposals"}

        cue.touch()
        # every decision from the cue on is a fault, so the shares only grow: wait until each is past its warning
        # share (a slow machine makes more clean decisions before the cue)
        seen = counted(lambda f: f.get("errors", 0) > max(1, ERROR_WARN_SHARE * f.get("decisions", 0))
                       and f.get("invalid_proposals", 0) > max(1, INVALID_WARN_SHARE * f.get("decisions", 0)))
        assert seen and seen["running"], last[0]
        faulty = seen["controller_faults"]
        assert faulty["decisions"] > faulty["errors"] + faulty["invalid_proposals"], faulty
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    (run_dir,) = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert out.splitlines() == [f"run directory: {run_dir}"]  # stdout holds the result alone, as before
    totals = json.loads((run_dir / "run.json").read_text())["controller_faults"]
    errors, invalid, decisions = totals["errors"], totals["invalid_proposals"], totals["decisions"]
    assert errors >= faulty["errors"] and invalid >= faulty["invalid_proposals"]
    lines = err.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("live run stopped at t="))
    # the controller's faults; `single` has emergency vehicles, so a run may also end during a preemption and say so
    warnings = [line for line in lines[end + 1:] if line.startswith("warning: ") and " preempt " not in line]
    assert len(warnings) == 2, err[-3000:]
    assert warnings[0].startswith(f"warning: the controller raised an error at {errors} of {decisions} decisions (")
    assert f"most often KeyError: 'E1_0' (at {module}:" in warnings[0]
    assert warnings[1].startswith(f"warning: {invalid} of the controller's {decisions} proposals (")
    assert "e.g. phase index 7 does not exist" in warnings[1]
    assert all(w.endswith("(controller_errors.csv lists each kind)") for w in warnings)
