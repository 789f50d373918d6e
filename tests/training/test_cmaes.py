"""`load_cma`: the CMA-ES package without matplotlib and scipy.stats, and the same search as a plain `import cma`.

Fresh processes: which modules a process imports is the point, and a test worker has imported others already."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: a short noisy search with bounds and per-coordinate step sizes, as the phase-score searches ask
SEARCH = """
import json, sys
import numpy as np
if sys.argv[1] == "load_cma":
    from signalwise.training.cmaes import load_cma
    cma = load_cma()
    extras = [m for m in ("matplotlib", "matplotlib.pyplot", "scipy.stats") if m in sys.modules]
    import scipy.stats  # still importable by whatever asks after
    later = scipy.stats.ttest_ind([1.0, 2.0, 3.0], [2.0, 3.0, 4.5]).pvalue
else:
    import cma
    extras, later = None, None
es = cma.CMAEvolutionStrategy([0.3] * 5, 0.5, {"popsize": 8, "seed": 7, "verbose": -9,
                                               "CMA_stds": [1.0, 0.5, 2.0, 1.0, 0.1]})
rng = np.random.default_rng(3)
for _ in range(25):
    xs = es.ask()
    es.tell(xs, [float(np.sum(np.square(x)) + rng.normal(0, 0.1)) for x in xs])
print(json.dumps({"mean": es.mean.tolist(), "sigma": es.sigma, "extras": extras, "later": later}))
"""


def _search(how: str) -> dict:
    done = subprocess.run([sys.executable, "-c", SEARCH, how], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr  # cma's note about plots stays quiet
    return json.loads(done.stdout)


@pytest.mark.slow
def test_load_cma_leaves_the_extras_out_and_searches_as_import_cma_does():
    light, plain = _search("load_cma"), _search("import cma")
    assert light["extras"] == []
    assert light["later"] is not None and 0 < light["later"] < 1
    assert light["mean"] == plain["mean"] and light["sigma"] == plain["sigma"]
    assert abs(light["sigma"] - 0.5) > 1e-6  # the search moved: 25 generations, not a start compared with itself
