"""A Ray address where nothing answers is refused in seconds, in one line naming it and why.

`ray.init(address=...)` retries such an address for about two minutes before it gives up, so a mistyped
`--ray` address cost two minutes; `check_ray_address` tries a TCP connection first. The port used is one
nothing listens on: bound, read and closed again.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import signalwise

from signalwise.training.executors import ExecutorError, make_executor

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed (pip install 'signalwise[ray]')")

ROOT = Path(__file__).resolve().parents[2]
#: far below Ray's own two minutes, far above a refused connection's milliseconds
QUICK_S = 20.0


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refusal(address: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(ExecutorError) as refused:
        make_executor(address, 1)
    return str(refused.value), time.monotonic() - started


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_nothing_answers_is_refused_in_seconds(dead_port, scheme):
    message, took_s = refusal(f"{scheme}127.0.0.1:{dead_port}")
    assert took_s < QUICK_S
    assert message.startswith(f"--ray {scheme}127.0.0.1:{dead_port}: nothing answers at 127.0.0.1:{dead_port} "
                              "(connection refused); start a cluster with `ray start --head`")


def test_auto_checks_the_address_ray_would_take_from_ray_address(dead_port, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{dead_port}")
    message, took_s = refusal("auto")
    assert took_s < QUICK_S
    assert message.startswith(f"--ray auto (found 127.0.0.1:{dead_port}): nothing answers")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:abc", "ray://127.0.0.1", "127.0.0.1:70000"])
def test_a_malformed_address_is_refused(address):
    message, took_s = refusal(address)
    assert took_s < QUICK_S
    assert message == f"--ray {address}: not a Ray address; give HOST:PORT, ray://HOST:PORT, auto or local"


def test_train_with_an_unreachable_address_is_one_error_line(dead_port, tmp_path):
    started = time.monotonic()
    r = signalwise("train", "--scenario", "single", "--episodes", "1", "--duration", "60",
                   "--out", str(tmp_path / "t"), "--ray", f"127.0.0.1:{dead_port}")
    assert time.monotonic() - started < QUICK_S
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: --ray 127.0.0.1:{dead_port}: nothing answers at 127.0.0.1:{dead_port} (connection refused); "
        "start a cluster with `ray start --head` or pass `--ray local`"]
    assert not (tmp_path / "t" / "model").exists()


def test_resco_bench_with_an_unreachable_address_is_one_error_line(dead_port, tmp_path):
    address = f"127.0.0.1:{dead_port}"
    # a process, the bench being a script; its timeout below Ray's two minutes fails the test instead of waiting
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "resco.py"), "--networks", "single",
                        "--controllers", "fixed", "--profiles", "benchmark", "--seeds", "1", "--workers", "1",
                        "--ray", "--ray-address", address, "--out", str(tmp_path / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=QUICK_S + 30)
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --ray-address {address}: nothing answers at {address} (connection refused); "
                      "start a cluster with `ray start --head` or pass `--ray-address local`"], r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "out").glob("cells/**/*.json"))
