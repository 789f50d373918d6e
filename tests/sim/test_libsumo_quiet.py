"""libsumo warns on every start when pyarrow's ABI differs from its own; the pinned pyarrow must match it."""

from __future__ import annotations

import subprocess
import sys


def test_a_run_prints_no_libsumo_warning(tmp_path):
    code = ("from pathlib import Path; from signalwise.runtime.config import RunConfig; "
            "from signalwise.runtime.run import execute_run; "
            "execute_run(RunConfig(scenario='single', controller='fixed', duration_s=30, emissions=False), "
            f"Path({str(tmp_path / 'r')!r}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stdout + p.stderr and "pyarrow" not in p.stdout + p.stderr
