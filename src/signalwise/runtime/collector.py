"""Python's cyclic garbage collector held off while `signalwise run` reads, runs and records.

A run allocates hundreds of thousands of small objects that live to its end (signal events and states, queue
samples, observations, the audit's intervals) and frees the rest by reference counting. The collector still
walked them as they aged, and every module loaded before them, three times in a full pass: its passes took
0.16 s of a lean resco:grid4x4 run's CPU time, 0.05 s of it while the modules were imported
(`bench/run_breakdown.py --collector-on`; docs/benchmarks.md#against-the-plain-reference-script-whole-processes).

For a process that ends with its run (the `run` command) only: the cycles a run does make, a network read by
sumolib (some 100,000 objects on ingolstadt21), wait for the collector's first pass after it, and a process that
runs episode after episode (training, a comparison's workers) would pile them up.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No collector pass inside; afterwards the collector runs as it did before (nested: the outermost decides).

    At the end, everything made inside is aged into the oldest generation without a pass over it
    (`gc.freeze` then `gc.unfreeze`: two list moves): enabled again with all of it in the youngest, the next
    young pass would walk it all, the very pass the pause saved. Not when something outside had frozen
    objects already (the API's start does): unfreezing would hand its objects back to the collector too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
