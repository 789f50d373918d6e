"""Checking an output directory before a command starts its work."""

from __future__ import annotations

import os
from pathlib import Path


def why_unwritable(out_dir: Path) -> str | None:
    """Why `out_dir` could not be made or written into, or None. Nothing is created: a command that
    then refuses its input leaves no empty directory behind."""
    existing = Path(out_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
