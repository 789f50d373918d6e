"""What every refusal of the `signalwise` command looks like from outside: exit 2, one `error:` line, no traceback."""

from __future__ import annotations

import subprocess


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    """`r` refused its input in one `error:` line holding each of `words`."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, r.stderr
    for w in words:
        assert w in line[0], line[0]
