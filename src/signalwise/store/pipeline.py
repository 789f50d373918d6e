"""Validation in other processes: JSON text of records in, row tuples out.

Parsing and validating a record with pydantic costs ~15 µs of CPU and
building its rows ~3 µs, as much as writing it (`bench/ingest_bench.py
--parts`). In one process they add up; here a small pool of worker
processes validates chunk k+1 (and builds its row tuples, cheap to pickle)
while this process writes chunk k, so ingestion uses both cores.

Per record, one `model_validate_json` on its own JSON text: faster than
validating the chunk as one JSON array (measured, `--parts`), and each
error names its record without any position bookkeeping. A batch body is
cut into its records' texts by `split_array` (numpy over the bytes); any
doubt there costs speed, never correctness, as each piece must validate as
one whole record on its own.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from . import rollups
from .schemas import IntersectionRecord, first_error
from .writers import record_rows, sqlite_utc_text, utc

#: workers per ingestion; 0 validates in this process
WORKERS_ENV = "SIGNALWISE_INGEST_WORKERS"

#: at most this many problems of a record are kept
MAX_ERRORS = 20


def default_workers() -> int:
    """`SIGNALWISE_INGEST_WORKERS`, else 1 on a machine with two cores or more (the writer has the other)."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        return max(0, int(value))
    return 1 if (os.cpu_count() or 1) >= 2 else 0


@dataclass(frozen=True)
class Invalid:
    """The first invalid record of a chunk: its index in the chunk, field path, reason, pydantic errors."""

    index: int
    field: str
    reason: str
    errors: list[dict]


def validate_rows(raw: list[bytes | str], dialect: str) -> tuple[list, list, list, float] | Invalid:
    """(record rows, signal rows, roll-up totals, CPU seconds used) of a chunk of JSON records, or its
    first invalid record.

    Runs in a worker process (and in-process when there are no workers).
    """
    cpu = time.process_time()
    validate = IntersectionRecord.model_validate_json
    models = []
    for i, text in enumerate(raw):
        try:
            models.append(validate(text))
        except ValidationError as exc:
            field, reason = first_error(exc)
            errors = [{"loc": tuple(e["loc"]), "msg": e["msg"], "type": e["type"]}
                      for e in exc.errors(include_url=False)[:MAX_ERRORS]]
            return Invalid(i, field, reason, errors)
    sqlite = dialect == "sqlite"
    records, signals = record_rows(models, sqlite_utc_text if sqlite else utc)
    totals = rollups.deltas(records, signals, rollups.hour_text if sqlite else rollups.hour_start)
    return records, signals, totals, time.process_time() - cpu


_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of `workers`, started once and kept for later ingestions (starting costs ~0.5 s).

    Forkserver where available: forking this (threaded) process is unsafe,
    and the server has this module imported once for every worker.
    """
    with _pools_lock:
        existing = _pools.get(workers)
        if existing is not None and not getattr(existing, "_broken", False):
            return existing
        methods = multiprocessing.get_all_start_methods()
        if "forkserver" in methods:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
        else:
            context = multiprocessing.get_context("spawn")
        _pools[workers] = ProcessPoolExecutor(workers, mp_context=context)
        return _pools[workers]


def _ready() -> bool:
    return True


def warm(workers: int | None = None) -> None:
    """Start the workers now (a server at startup, a benchmark before timing), not on the first batch."""
    workers = default_workers() if workers is None else workers
    if workers:
        executor = pool(workers)
        for future in [executor.submit(_ready) for _ in range(workers)]:
            future.result()


def split_array(body: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each element of a JSON array in `body`, or None when unsure (not an array, empty).

    Vectorised over the bytes: quotes (less the escaped ones) toggle "inside
    a string", brackets outside strings give the depth, and the commas at
    depth 0 inside the array separate its elements. The caller validates
    each piece as one record, so a wrong cut can only fail, never pass.
    """
    end = len(body.rstrip())
    start = len(body) - len(body.lstrip())
    if end - start < 3 or body[start] != 0x5B or body[end - 1] != 0x5D:
        return None
    first = start + 1
    a = np.frombuffer(body, np.uint8, count=end - 1 - first, offset=first)
    quote = a == 0x22
    if b"\\" in body:  # a quote after an odd run of backslashes is part of the string
        for p in np.flatnonzero(quote[1:] & (a[:-1] == 0x5C)) + 1:
            run = 0
            while p - run - 1 >= 0 and a[p - run - 1] == 0x5C:
                run += 1
            if run % 2:
                quote[p] = False
    inside = np.bitwise_xor.accumulate(quote.view(np.uint8))
    delta = (a == 0x7B).view(np.int8) + (a == 0x5B).view(np.int8) - (a == 0x7D).view(np.int8) \
        - (a == 0x5D).view(np.int8)
    delta[inside.view(bool)] = 0
    depth = np.cumsum(delta, dtype=np.int32)
    if inside[-1] or depth[-1]:
        return None
    commas = np.flatnonzero((a == 0x2C) & (depth == 0) & ~inside.view(bool)) + first
    bounds = np.concatenate(([first], commas + 1)), np.concatenate((commas, [end - 1]))
    return list(zip(bounds[0].tolist(), bounds[1].tolist(), strict=True))
