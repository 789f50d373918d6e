"""The `cma` package (CMA-ES, the phase-score agent's search) without its plotting and surrogate-model extras.

Why: `import cma` (4.5) also imports `matplotlib.pyplot` (for `cma.plot`) and `scipy.stats` (for its
surrogate models), each inside a `try` that does without it: seconds of CPU per `signalwise train`
(docs/learning.md#the-code) for modules no search of ours calls. Marked
unimportable while `cma` loads (None in `sys.modules`, Python's documented way), they stay out, and stay
importable for whatever asks later. The search is the same: `tests/training/test_cmaes.py` runs one both ways.
"""

from __future__ import annotations

import sys
import warnings
from types import ModuleType

#: what `cma` imports only for features the searches do not use
_EXTRAS = ("matplotlib", "matplotlib.pyplot", "scipy.stats")


def load_cma() -> ModuleType:
    """The `cma` module, loaded without `_EXTRAS` when this process has not imported them already."""
    if "cma" in sys.modules:
        return sys.modules["cma"]
    blocked = [name for name in _EXTRAS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        with warnings.catch_warnings():  # "Could not import matplotlib.pyplot, therefore cma.plot() ..."
            warnings.simplefilter("ignore")
            import cma
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return cma
