"""Fresh processes from the fork server (`sim/processes.py`): each task a clean process of its own, seeing the
caller's environment and working directory as they are when it is submitted, not as the server started."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

from signalwise.sim.processes import fresh_process_context, in_callers_env


def _where() -> tuple[int, str | None, str]:
    return os.getpid(), os.environ.get("SIGNALWISE_PROCESS_TEST"), os.getcwd()


def _ran_sumo_before() -> bool:
    """Whether libsumo in this process already holds a simulation (a fork of one that ran SUMO would)."""
    import libsumo

    try:
        libsumo.simulation.getTime()
    except Exception:  # libsumo.TraCIException / FatalTraCIError: nothing loaded
        return False
    return True


def _run_sumo_briefly(net_file: str) -> bool:
    import libsumo

    libsumo.start(["sumo", "-n", net_file, "--no-step-log", "--begin", "0", "--end", "5"])
    libsumo.simulationStep()
    return _ran_sumo_before()


def _submit(fn, *args):
    with ProcessPoolExecutor(1, mp_context=fresh_process_context(__name__), max_tasks_per_child=1) as pool:
        return pool.submit(in_callers_env(fn), *args).result(timeout=120)


def test_each_task_sees_the_callers_environment_and_directory_of_the_moment(tmp_path, monkeypatch):
    first_pid, _, _ = _submit(_where)  # the server now runs, with the environment of this moment
    monkeypatch.setenv("SIGNALWISE_PROCESS_TEST", "set after the server started")
    monkeypatch.chdir(tmp_path)
    pid, value, cwd = _submit(_where)
    assert value == "set after the server started" and cwd == str(tmp_path)
    assert pid not in (first_pid, os.getpid())  # a process of its own, every task
    monkeypatch.delenv("SIGNALWISE_PROCESS_TEST")
    assert _submit(_where)[1] is None  # and an unset variable is unset there too


def test_a_task_after_one_that_ran_sumo_starts_with_no_simulation():
    from signalwise.sim.scenario import load

    net = str(load("single").net_file)
    assert _submit(_run_sumo_briefly, net) is True
    assert _submit(_ran_sumo_before) is False


def test_spawn_on_request_and_a_misspelt_method_keeps_the_server(monkeypatch, caplog):
    monkeypatch.setenv("SIGNALWISE_START_METHOD", "spawn")
    assert fresh_process_context().get_start_method() == "spawn"
    assert _submit(_where)[1] is None  # and a task runs there as well
    monkeypatch.setenv("SIGNALWISE_START_METHOD", "fork-server")
    assert fresh_process_context().get_start_method() == "forkserver"
    assert "'fork-server' is neither forkserver nor spawn" in caplog.text
