"""`run --remote-port` waits for a SUMO started elsewhere: it says so before it waits, rather than sitting silent
for the seconds TraCI tries, then says in one line that nothing answered."""

from support.cli import signalwise
from support.loopback import free_port

from signalwise.sim import backend


def test_run_says_it_waits_for_sumo_then_that_nothing_answered(monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "REMOTE_CONNECT_TRIES", 1)
    port = free_port()
    done = signalwise("run", "-s", "single", "--duration", "30", "--remote-port", str(port),
                      "--out", str(tmp_path / "runs"))
    lines = done.stderr.splitlines()
    waiting = next(i for i, line in enumerate(lines) if line.startswith(f"connecting to SUMO on port {port}"))
    assert "waits up to 1 s" in lines[waiting]
    failed = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert done.returncode != 0 and len(failed) == 1 and failed[0] > waiting
    assert f"nothing answered on port {port}" in lines[failed[0]]
