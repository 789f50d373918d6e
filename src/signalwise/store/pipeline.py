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

import itertools
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from pydantic import ValidationError

from . import rollups
from .rows import record_rows, sqlite_utc_text, utc
from .schemas import IntersectionRecord, first_error

#: workers per ingestion; 0 validates in this process

#: at most this many problems of a record are kept
MAX_ERRORS = 20


def default_workers() -> int:
    """The settings' `ingest_workers` (`SIGNALWISE_INGEST_WORKERS`), else 1 on a machine with two cores or more
    (the writer has the other)."""
    from .settings import Settings

    value = Settings().ingest_workers
    if value is not None:
        return value
    return 1 if (os.cpu_count() or 1) >= 2 else 0


@dataclass(frozen=True)
class Invalid:
    """The first invalid record of a chunk: its index in the chunk, field path, reason, pydantic errors."""

    index: int
    field: str
    reason: str
    errors: list[dict]


def pack(raw: list[bytes | str]) -> tuple[bytes, list[int]]:
    """A chunk as one bytes object and the records' end offsets: pickled to a worker as one copy, not
    thousands of small objects."""
    data = [t.encode() if isinstance(t, str) else t for t in raw]
    return b"".join(data), list(itertools.accumulate(map(len, data)))


def validate_packed(packed: tuple[bytes, list[int]], dialect: str) -> tuple[list, list, list, float] | Invalid:
    """`validate_rows` of a `pack`ed chunk (what a worker process runs)."""
    blob, ends = packed
    return validate_rows([blob[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)], dialect)


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
    totals = rollups.deltas(records, signals, dialect)
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
        _pools[workers] = ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_with,
                                              initargs=(os.getpid(),))
        return _pools[workers]


def _exit_with(owner_pid: int, every_s: float = 1.0) -> None:
    """In a worker: end when the process that owns the pool is gone (SIGKILL gives it no chance to say so).

    A worker's parent is the forkserver, not the owner, so `getppid` tells nothing; the owner's pid is
    polled instead (signal 0: a check, not a signal).
    """
    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(owner_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # the pid now belongs to another user: rare enough to leave the worker to its OS

    threading.Thread(target=watch, name="exit-with-owner", daemon=True).start()


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

    Vectorised over the bytes (~2.5 µs of CPU per record, `--parts`): quotes
    (less the escaped ones) toggle "inside a string", brackets outside
    strings give the depth, and the commas at depth 0 inside the array
    separate its elements. The caller validates
    each piece as one record, so a wrong cut can only fail, never pass.
    """
    import numpy as np  # here, not at the top: the worker processes import this module and need no numpy

    end = len(body.rstrip())
    start = len(body) - len(body.lstrip())
    if end - start < 3 or body[start] != 0x5B or body[end - 1] != 0x5D:
        return None
    first = start + 1
    a = np.frombuffer(body, np.uint8, count=end - 1 - first, offset=first)
    # only quotes, commas and brackets matter: work on those (~1/5 of the bytes)
    where = np.flatnonzero((a == 0x22) | (a == 0x2C) | (a == 0x7B) | (a == 0x7D) | (a == 0x5B) | (a == 0x5D))
    c = a[where]
    quote = c == 0x22
    if b"\\" in body:  # a quote after an odd run of backslashes is part of the string
        for k in np.flatnonzero(quote & (where > 0)):
            p, run = int(where[k]), 0
            while p - run - 1 >= 0 and a[p - run - 1] == 0x5C:
                run += 1
            if run % 2:
                quote[k] = False
    inside = (np.cumsum(quote, dtype=np.int32) & 1).astype(bool)  # odd quote count so far: in a string
    delta = (c == 0x7B).view(np.int8) + (c == 0x5B).view(np.int8) - (c == 0x7D).view(np.int8) \
        - (c == 0x5D).view(np.int8)
    delta[inside] = 0
    depth = np.cumsum(delta, dtype=np.int32)
    if len(c) and (inside[-1] or depth[-1]):
        return None
    commas = where[(c == 0x2C) & (depth == 0) & ~inside] + first
    bounds = np.concatenate(([first], commas + 1)), np.concatenate((commas, [end - 1]))
    return list(zip(bounds[0].tolist(), bounds[1].tolist(), strict=True))
