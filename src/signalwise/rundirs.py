"""Run directories on disk: which directory is a finished run, and which runs a `compare` directory holds.

Shared by the commands that take run directories (`publish`, `audit`, `atspm`), so that each one reads a
comparison's directory the same way: its `summary.json` beside one finished run per controller and seed.
"""

from __future__ import annotations

from pathlib import Path


def is_complete_run(d: Path) -> bool:
    """A run directory whose run finished: its metrics and its configuration are written last."""
    return (d / "metrics.json").is_file() and (d / "config.yaml").is_file()


def comparison_runs(d: Path) -> list[Path]:
    """The finished runs of a `compare` (or `demo`) directory, in name order; [] when `d` is none."""
    if not (d / "summary.json").is_file():
        return []
    return sorted(r for r in d.iterdir() if r.is_dir() and is_complete_run(r))
