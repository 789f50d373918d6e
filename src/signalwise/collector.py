"""Python's cyclic garbage collector held off while `signalwise run` reads, runs and records (and while a batch of
records is validated: `store.ingest`).

A run allocates hundreds of thousands of small objects that live to its end (signal events and states, queue
samples, observations, the audit's intervals) and frees the rest by reference counting. The collector still
walks them as they age, and every module loaded before them, three times in a full pass: its passes take
0.16 s of a lean resco:grid4x4 run's CPU time, 0.05 s of it while the modules are imported
(`bench/run_breakdown.py --scenario resco:grid4x4 --record lean --collector-on`, max-pressure under
`--timing reference`; docs/benchmarks.md#against-the-plain-reference-script-whole-processes).

For a process that ends with its run (the `run` command) only: the cycles a run does make, a network read by
sumolib (some 100,000 objects on ingolstadt21), wait for the collector's first pass after it, and a process that
runs episode after episode (training, a comparison's workers) would pile them up.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused(age_on_exit: bool = True) -> Iterator[None]:
    """No collector pass inside; afterwards the collector runs as it did before (nested: the outermost decides).
    Also for building many short-lived objects in no cycle (a batch of records validated: `store.ingest`), where
    the collector would run hundreds of times over the young ones; there nothing outlives the block, and
    `age_on_exit=False` leaves the generations alone.

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
            if age_on_exit and gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
