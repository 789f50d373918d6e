"""Locate the SUMO that came from PyPI; never ask users to set SUMO_HOME.

A SUMO_HOME the user set is kept (SUMO's own tools and its XML schema checks read it), but the simulations run
the wheel's binaries and libsumo whatever it says. One that holds none of SUMO's data (`data/xsd`, the schemas
SUMO checks its input files against; `data/emissions`, the emission models' tables) is a mistake somewhere, and
mixing it with the wheel's SUMO fails in ways that are hard to trace: it is warned about, once.
"""

from __future__ import annotations

import logging
import os
import shutil
from functools import cache
from pathlib import Path

log = logging.getLogger("signalwise.sim")

#: what a SUMO_HOME holds that SUMO reads at run time (relative to it)
SUMO_DATA = ("data/xsd", "data/emissions")


@cache
def sumo_home() -> Path:
    """SUMO_HOME of the installed `eclipse-sumo` wheel (exported for SUMO's own tools)."""
    try:
        import sumo  # the eclipse-sumo wheel
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError("SUMO is not installed: pip install eclipse-sumo libsumo sumolib") from exc
    home = Path(sumo.SUMO_HOME)
    given = os.environ.get("SUMO_HOME")
    if given:
        _check_given(given, home)
    os.environ.setdefault("SUMO_HOME", str(home))
    return home


def _check_given(given: str, wheel_home: Path) -> None:
    """Warn when the SUMO_HOME the user set lacks the data SUMO reads (`SUMO_DATA`): in the process the user
    started, not again in each worker process it starts (a comparison's runs, a training's episodes)."""
    import multiprocessing

    missing = [part for part in SUMO_DATA if not (Path(given) / part).is_dir()]
    if missing and multiprocessing.parent_process() is None:
        log.warning("SUMO_HOME=%s (set in the environment) holds no %s: it is kept for SUMO's own tools, but the "
                    "simulations run the eclipse-sumo wheel's SUMO from %s; unset SUMO_HOME, or set it to %s",
                    given, " or ".join(missing), wheel_home, wheel_home)


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
