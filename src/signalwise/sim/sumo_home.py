"""Locate the SUMO that came from PyPI; never ask users to set SUMO_HOME."""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path


@cache
def sumo_home() -> Path:
    """SUMO_HOME of the installed `eclipse-sumo` wheel (exported for SUMO's own tools)."""
    try:
        import sumo  # the eclipse-sumo wheel
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError("SUMO is not installed: pip install eclipse-sumo libsumo sumolib") from exc
    home = Path(sumo.SUMO_HOME)
    os.environ.setdefault("SUMO_HOME", str(home))
    return home


def sumo_binary(name: str = "sumo") -> str:
    """Path of a SUMO executable (sumo, sumo-gui, netconvert, ...)."""
    candidate = sumo_home() / "bin" / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"SUMO executable {name!r} not found under {sumo_home() / 'bin'}")


def import_libsumo():
    """Import libsumo (pyproject pins the pyarrow whose ABI it was built against, so it has nothing to warn about)."""
    sumo_home()
    import libsumo

    return libsumo
