"""What a live run writes into the store, written from a background thread that survives database outages.

`LiveStoreWriter` takes interval records, hi-res events, alerts and runtime changes from the live loop and
writes them through the store's own writers (`ingest.ingest_records`, `events.bulk_insert_events`) or into
`alerts` and `runtime_changes` (migration 0008). The loop never waits for it: `put_*` appends to an
in-memory queue and returns.

One FIFO, in order, split in three: the rows the writer holds (oldest), rows spilled to disk, rows in
memory (newest). When a write fails (the database is down, locked, not created yet) the rows stay where
they are, memory is spilled to `buffer_dir` as JSON lines (fsync'd, segment files of `segment_rows`), and
the writer retries with exponential backoff, writing everything in order once the database answers. At
most `max_buffered_rows` rows wait at a time; rows beyond that are dropped and counted
(`stats()["overflow_rows"]`, which the `store_buffer_overflow` alert reads). A second thread does the
spilling, so memory stays bounded even while the writer is stuck in a slow connection attempt.

Every write is idempotent (records replace by key, duplicate events are ignored, alerts upsert by their id,
changes carry a key given here), so rows written just before a crash or a lost acknowledgement and written
again are stored once. Segments left in `buffer_dir` by a previous process are written first. Every write
drops the cached analytics answers of an app served in the same process (`ingest.notify_written`), as every
ingest write does.

Rows the database refuses as invalid (not an outage: a record that fails validation, a constraint) are
dropped and counted (`rejected_rows`) so one bad row cannot stop the rest.

The run's own row (`put_run`: scenario, controller, seed, configuration, start) goes through the same FIFO, so
a live run is stored with the fields an offline `signalwise run --db` stores; so does its ATSPM detector
configuration (`put_detector_config`: what its `detectors.csv` holds), which the API's detector measures read.
A database that loses them while the run goes (dropped and made again, its tables dropped, a SQLite file removed
or replaced) gets them again on the writer's next connection, before the rows that waited (`_restore_lost`).
A database at the newest schema is only checked, never created into; one that cannot take writes
(`engine.why_read_only`: a read-only transaction or role, a standby, a read-only SQLite file) is not written into
at all: the rows wait, and the reason says so in one line. What still waits when the writer closes stays in `buffer_dir`
(`summary()`, `waiting_message()`), and `signalwise db drain RUN_DIR --db URL` (or `python -m signalwise.store.live
RUN_DIR --db URL`) stores it once the database takes writes, and writes what it stored and what still waits into
the run's `run.json` (`note_drained`).

A write the database does not answer (a connection that hangs: a host or a proxy that stops answering without
refusing) is late after `write_late_s`: from then on `stats()["db_ok"]` is False, memory is spilled to `buffer_dir`
as in an outage, and the rows the writer holds are copied there too (a "shadow" segment, removed once they are
written or moved to the buffer), so a process killed meanwhile loses only what arrived in the last `write_late_s`.
After `write_timeout_s` the writer's connections are cut (their sockets shut down: no driver call returns from a
socket nobody answers on), the write fails as an outage, and the writer retries as after any other. PostgreSQL
connections also carry a `statement_timeout` of `write_timeout_s`, so a write waiting on a lock ends on the server
too (the connection that migrates the schema lifts it: an index built on a large store takes longer).

A run is never stored into a simulation that records sent over the API created and fill (`ingest.register_run`
raises `SimulationIdTaken`: an ingest key can name a live run's id, its start time, before the run starts): the
writer then stores the run, and every row of it, under `alternate_id` (the id `publish` gives a directory whose name
is taken), says so (`stored_as_note`, `summary()["simulation_id"]`) and keeps the ids in `buffer_dir`'s `ids.json`
for whoever drains the buffer.

`stats()["last_error"]` is what keeps rows from being stored now; once writes succeed again it is kept as
`previous_error`, with when it was last seen and when writing worked again (`recovered_at`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, event, func, null, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError

from ..outdirs import HEARTBEAT, shown_status
from .detector_configs import optional_float
from .ingest import SimulationIdTaken
from .tables import ALERT_LEVELS, CHANGE_RESULTS, Alert, RuntimeChange

log = logging.getLogger("signalwise.store.live")

KINDS = ("runs", "records", "events", "alerts", "changes", "detectors")
#: how many times the writer opens a SQLite file that is replaced while it opens it before it calls that an outage
OPEN_ATTEMPTS = 3

#: seconds a write may wait for the database before it is late: memory and the rows in hand go to the disk buffer,
#: and `db_ok` turns False, until the database answers
WRITE_LATE_S = 1.0
#: seconds a write (or a connection attempt with the checks that follow it) may take before the writer cuts its
#: connections and retries; also the writer's PostgreSQL `statement_timeout`
WRITE_TIMEOUT_S = 30.0
#: seconds a migration of the schema by the writer may take before its connection is cut
MIGRATE_TIMEOUT_S = 1800.0

#: the file of a buffer directory that keeps the run's store id when it is not its name, or may not be
#: (`LiveStoreWriter._save_ids`): {"name", "simulation_id", "alternate_id"}
IDS_FILE = "ids.json"

#: an item of the FIFO: (kind, simulation id, rows); rows are JSON-ready except records (dicts as given)
Item = tuple[str, str, list]


@lru_cache(maxsize=1)
def _head_revision() -> str:
    from .engine import head_revision

    return head_revision()


#: seconds between two notices of the live writer's writes to a served app's analytics cache
CACHE_NOTICE_S = 1.0


@dataclasses.dataclass
class _Segment:
    path: Path
    rows: int = 0
    fh: object | None = None  # open for appending while it is the spooler's tail

    @property
    def sealed(self) -> bool:
        return self.fh is None


@dataclasses.dataclass
class _Chunk:
    """What the writer holds: items taken from memory (`segment` None) or a whole segment loaded from disk."""

    items: list[Item]
    segment: _Segment | None
    done: int = 0  # items[:done] are written


class _Outage(Exception):
    """The database could not take a write; everything stays buffered."""


class LiveStoreWriter:
    """Writes a live run's records, events, alerts and changes in a background thread; see the module doc."""

    def __init__(self, database_url: str | None, simulation_id: str, buffer_dir: Path | str,
                 max_buffered_rows: int = 100_000, *, memory_rows: int = 10_000, batch_rows: int = 5_000,
                 segment_rows: int = 10_000, retry_initial_s: float = 0.5, retry_max_s: float = 30.0,
                 busy_timeout_s: float = 5.0, connect_timeout_s: int = 5,
                 events_start: dt.datetime | None = None, write_late_s: float = WRITE_LATE_S,
                 write_timeout_s: float = WRITE_TIMEOUT_S, alternate_id: str | None = None):
        from ..core.eventlog import DEFAULT_START

        if not simulation_id or len(simulation_id) > 128:
            raise ValueError(f"simulation_id {simulation_id!r} must be 1..128 characters")
        if max_buffered_rows < 1:
            raise ValueError(f"max_buffered_rows must be at least 1, not {max_buffered_rows}")
        if alternate_id is not None and not 0 < len(alternate_id) <= 128:
            raise ValueError(f"alternate_id {alternate_id!r} must be 1..128 characters")
        self.database_url = database_url
        #: the run's name: what the loop's rows carry (a record its `simulation_id`)
        self.name = simulation_id
        #: the id the run is stored under when the store holds its name for records sent over the API
        #: (`ingest.SimulationIdTaken`); a random one when None (`_other_id`)
        self.alternate_id = alternate_id
        #: the id the run is stored under (`simulation_id`): its name, or another once the name was found taken
        self._stored_as = simulation_id
        self.buffer_dir = Path(buffer_dir)
        self.max_buffered_rows = max_buffered_rows
        self.memory_rows = max(1, min(memory_rows, max_buffered_rows))
        self.batch_rows = max(1, batch_rows)
        self.segment_rows = max(1, segment_rows)
        self.retry_initial_s, self.retry_max_s = retry_initial_s, max(retry_initial_s, retry_max_s)
        self.busy_timeout_s, self.connect_timeout_s = busy_timeout_s, connect_timeout_s
        self.write_late_s, self.write_timeout_s = write_late_s, max(write_late_s, write_timeout_s)
        #: hi-res events are stamped `events_start + time_s`, naive local time, as the run's events.csv
        self.events_start = events_start if events_start is not None else DEFAULT_START

        self._lock = threading.Lock()  # memory queue and counters; held briefly, also by put_*
        self._fifo_lock = threading.Lock()  # segments and what moves between memory, disk and the writer
        self._memory: deque[Item] = deque()
        self._mem_rows = self._hand_rows = self._disk_rows = 0
        self._segments: deque[_Segment] = deque()
        self._next_seq = self._first_seq = 10**15
        self._written = self._failures = self._overflow = self._rejected = 0
        #: what keeps rows from being stored now, by where it happens ("database": a write failed, "disk": a spill
        #: failed): (text, wall time last seen (ISO), monotonic time last seen); gone once that works again
        self._errors: dict[str, tuple[str, str, float]] = {}
        #: the error of the latest outage that is over, when it was last seen, and when writing worked again
        self._previous_error: str | None = None
        self._previous_error_at: str | None = None
        self._recovered_at: str | None = None
        #: why rows were last dropped as invalid (`rejected_rows`): a loss, not a state that ends
        self._last_rejection: str | None = None
        #: per simulation id, the run row and detector configuration this writer stored (`_restore_lost`)
        self._kept: dict[str, dict] = {}
        self._db_ok = self._disk_ok = True
        #: monotonic time of the first failed write since the last one that succeeded (None: writes succeed)
        self._failing_since: float | None = None
        #: monotonic time the served app's cache was last told of a write; whether a write is untold since
        self._notified_s = -math.inf
        self._untold = False
        self._engine: Engine | None = None
        #: a SQLite engine's file: (path, (device, inode)) as opened; None for PostgreSQL or memory
        self._file: tuple[str, tuple[int, int]] | None = None
        self._closed = False
        #: the write under way (the spooler watches it, `_watch_flight`): the chunk, when it began (monotonic), how
        #: long it may take, the copy of its rows on disk once it is late, whether its connections were cut
        self._flight_lock = threading.Lock()
        self._flight: _Chunk | None = None
        self._flight_since = 0.0
        self._flight_limit_s = self.write_timeout_s
        self._shadow: Path | None = None
        self._cut = False
        #: the DB-API connections the writer's engines opened, while they exist (the ones a cut shuts)
        self._conns: weakref.WeakSet = weakref.WeakSet()
        #: held while a connection is added to `_conns` and while the spooler copies it (`_connections`)
        self._conns_lock = threading.Lock()

        self._work = threading.Event()  # something was put
        self._kick = threading.Event()  # flush or close: retry now
        self._spool_wake = threading.Event()
        self._stop_writer = threading.Event()
        self._stop_spooler = threading.Event()
        self._recover_segments()
        self._writer = threading.Thread(target=self._run_writer, name="signalwise-store-writer", daemon=True)
        self._spooler = threading.Thread(target=self._run_spooler, name="signalwise-store-spooler", daemon=True)
        self._writer.start()
        self._spooler.start()

    # -- the loop's side: never blocks -----------------------------------------------------------------------
    def put_records(self, records: Iterable[Mapping]) -> int:
        """Interval records (`schemas.IntersectionRecord` as dicts or models); returns how many were accepted."""
        rows = [r.model_dump(mode="json") if hasattr(r, "model_dump") else r for r in records]
        return self._put("records", rows)

    def put_events(self, events: Iterable) -> int:
        """Hi-res events: `core.types.SignalEvent`s (stamped `events_start + time_s`) or
        (naive timestamp, device id, event code, parameter) tuples."""
        rows = []
        start = self.events_start
        bad = 0
        for e in events:
            try:
                if hasattr(e, "time_s"):
                    moment = start + dt.timedelta(milliseconds=100 * int(round(e.time_s * 10)))
                    rows.append([moment.isoformat(), str(e.device_id), int(e.event_code), int(e.parameter)])
                else:
                    t, device, code, parameter = e
                    rows.append([t.isoformat() if isinstance(t, dt.datetime) else str(t), str(device), code,
                                 parameter])
            except (TypeError, ValueError, OverflowError) as exc:
                bad += 1
                error = exc
        if bad:
            self._reject(bad, f"event refused: {error}")
        return self._put("events", rows)

    def put_alert(self, alert) -> int:  # noqa: ANN001 - an AlertEvent or its dict
        """An alert as raised, cleared or acknowledged (`runtime.live.alerts.AlertEvent` or its dict)."""
        try:
            row = alert_row(alert)
        except (KeyError, TypeError, ValueError) as exc:
            return self._reject(1, f"alert refused: {exc}")
        return self._put("alerts", [row])

    def put_change(self, change: Mapping) -> int:
        """A runtime change as `runtime.live.changes.record` gives it (at, who, kind, payload, result, reason)."""
        try:
            row = change_row(change)
        except (KeyError, TypeError, ValueError) as exc:
            return self._reject(1, f"a change record was not stored (its row is invalid): {exc}")
        return self._put("changes", [row])

    def put_run(self, scenario: str | None, controller: str | None, seed: int | None, config: Mapping,
                started_at: dt.datetime | None = None) -> int:
        """The run's own row (`ingest.register_run`): what an offline `signalwise run --db` stores about its run."""
        try:
            row = {"scenario": _text(scenario, "scenario", 128, required=False),
                   "controller": _text(controller, "controller", 64, required=False),
                   "seed": None if seed is None else int(seed),
                   "config": json.loads(json.dumps(dict(config or {}), default=str)),
                   "started_at": _iso(started_at, "started_at")}
        except (TypeError, ValueError) as exc:
            return self._reject(1, f"run refused: {exc}")
        return self._put("runs", [row])

    def put_detector_config(self, rows: Iterable) -> int:
        """The run's ATSPM detector configuration, as its `detectors.csv` holds it (`runtime.detector_config.
        detector_rows`: DeviceId, Phase, Parameter, Function, distance, speed; a trailing Lane is not stored), so
        the API's detector measures for this run read it (`detector_configs.py`). Put it after `put_run`: the
        FIFO writes in order, and a configuration without its stored run is refused (`rejected_rows`)."""
        try:
            taken = [[str(r[0]), int(r[1]), int(r[2]), str(r[3]), optional_float(r[4]), optional_float(r[5])]
                     for r in rows]
        except (IndexError, TypeError, ValueError) as exc:
            return self._reject(1, f"detector configuration refused: {exc}")
        return self._put("detectors", taken)

    def _put(self, kind: str, rows: list) -> int:
        if not rows:
            return 0
        with self._lock:
            if self._closed:
                room = 0
            else:
                room = self.max_buffered_rows - (self._mem_rows + self._hand_rows + self._disk_rows)
            taken = rows if len(rows) <= room else rows[: max(0, room)]
            if taken:
                self._memory.append((kind, self.name, taken))
                self._mem_rows += len(taken)
            lost = len(rows) - len(taken)
            first_loss = lost and not self._overflow
            if lost:
                self._overflow += lost
            spill = self._mem_rows > self.memory_rows
        if first_loss:  # once: the count is in stats() and the store_buffer_overflow alert
            log.error("store buffer full (%d rows waiting): dropping what the loop hands over until the database "
                      "takes rows again", self.max_buffered_rows)
        if spill:
            self._spool_wake.set()
        self._work.set()
        return len(taken)

    def _reject(self, rows: int, reason: str) -> int:
        with self._lock:
            self._rejected += rows
            self._last_rejection = reason
        log.warning("%s", reason)
        return 0

    # -- control ---------------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """queued (rows in memory), buffered_on_disk, written, failures (failed write attempts), overflow_rows
        (dropped: the buffer was full), rejected_rows (invalid) and last_rejection (why the latest were), db_ok
        (the last write succeeded and none is late: `write_late_s`), unavailable_s (seconds since the first of the failed writes in a row; 0 while
        writes succeed: what the `store_unavailable` alert reads).

        `last_error` is what keeps rows from being stored now (the database refuses writes, the disk buffer cannot
        be written), with `last_error_at` (when last seen); both None while the writer stores. Once writing works
        again the error moves to `previous_error` (`previous_error_at`: when last seen) and `recovered_at` says
        when it worked again: an outage that is over is history, not a fault."""
        with self._lock:
            since = self._failing_since
            now = max(self._errors.values(), key=lambda e: e[2], default=(None, None, 0.0))
            return {"queued": self._mem_rows + self._hand_rows, "buffered_on_disk": self._disk_rows,
                    "written": self._written, "failures": self._failures, "overflow_rows": self._overflow,
                    "rejected_rows": self._rejected, "last_rejection": self._last_rejection,
                    "last_error": now[0], "last_error_at": now[1], "previous_error": self._previous_error,
                    "previous_error_at": self._previous_error_at, "recovered_at": self._recovered_at,
                    "db_ok": self._db_ok,
                    "unavailable_s": 0.0 if since is None else round(time.monotonic() - since, 1)}

    def _failed(self, where: str, text: str) -> None:
        """An error keeps rows from being stored (`where`: "database" or "disk"); under the lock."""
        self._errors[where] = (text, _now_iso(), time.monotonic())

    def _works(self, where: str) -> None:
        """Writing (or spilling) works again: the error there becomes the previous one; under the lock."""
        gone = self._errors.pop(where, None)
        if gone is not None:
            self._previous_error, self._previous_error_at, _ = gone
            self._recovered_at = _now_iso()

    @property
    def simulation_id(self) -> str:
        """The id the run is stored under: its name, unless the store holds that for records sent over the API
        (`ingest.SimulationIdTaken`), then `alternate_id` (`stored_as_note` says so)."""
        return self._stored_as

    def stored_as_note(self) -> str | None:
        """One line when the run is stored under another id than its name, None otherwise."""
        if self._stored_as == self.name:
            return None
        return (f"run {self.name} is stored as {self._stored_as}: the store holds {self.name} for records sent over "
                "the API (an ingest key named it first)")

    def _store_id(self, sim: str) -> str:
        return self._stored_as if sim == self.name else sim

    def _other_id(self) -> str:
        """The id the run takes when its name is taken: `alternate_id`, or (none given, or it is taken too) the name
        with 8 random hex digits."""
        if self.alternate_id is not None and self._stored_as != self.alternate_id:
            return self.alternate_id
        return f"{self.name[:128 - 9]}~{uuid.uuid4().hex[:8]}"

    def _take_other_id(self, taken: Exception) -> None:
        """The store holds the run's name (or the id it moved to) for records sent over the API: the run moves to
        another id, which the buffer directory keeps (`IDS_FILE`) for a writer or a drain that picks up its rows."""
        self._stored_as = self._other_id()
        note = self.stored_as_note()
        log.warning("%s (%s)", note, taken)
        self._save_ids()

    def _save_ids(self) -> None:
        """Write the run's ids to `buffer_dir` when it exists (a new segment writes them too: `_append`)."""
        if not self.buffer_dir.is_dir() or (self._stored_as == self.name and self.alternate_id is None):
            return
        try:
            tmp = self.buffer_dir / f"{IDS_FILE}.partial"
            tmp.write_text(json.dumps({"name": self.name, "simulation_id": self._stored_as,
                                       "alternate_id": self.alternate_id}))
            tmp.replace(self.buffer_dir / IDS_FILE)
        except OSError as exc:
            log.warning("could not keep the run's store id in %s: %s", self.buffer_dir, exc)

    def _load_ids(self) -> None:
        """The ids a previous writer of this buffer kept (`_save_ids`), when they are this run's."""
        try:
            ids = json.loads((self.buffer_dir / IDS_FILE).read_text())
        except (OSError, ValueError):
            return
        if not isinstance(ids, dict) or ids.get("name") != self.name:
            return
        if isinstance(ids.get("simulation_id"), str) and 0 < len(ids["simulation_id"]) <= 128:
            self._stored_as = ids["simulation_id"]
        if self.alternate_id is None and isinstance(ids.get("alternate_id"), str):
            self.alternate_id = ids["alternate_id"][:128] or None

    @property
    def shown_url(self) -> str:
        """The database URL without its secrets (`core.redaction.shown_url`), as messages show it."""
        from ..core.redaction import shown_url

        try:
            from .engine import database_url

            url = self.database_url or database_url(None)  # as the user gave it (postgresql://...)
        except Exception:  # noqa: BLE001 - a URL that does not parse is shown as given, its secrets masked
            url = str(self.database_url)
        return shown_url(url)

    def summary(self) -> dict:
        """What the writer stored and what still waits: `waiting_rows` (in memory and in `buffer_dir`), where,
        why (`last_error`, `last_error_at`; None when nothing keeps rows from being stored) and how the buffer is
        stored later (`drain`, None when nothing waits); an outage that ended (`previous_error`,
        `previous_error_at`, `recovered_at`) and why rows were dropped as invalid (`last_rejection`)."""
        stats = self.stats()
        waiting = self.pending_rows()
        return {"database": self.shown_url, "simulation_id": self._stored_as,
                **({"stored_as_note": self.stored_as_note()} if self._stored_as != self.name else {}),
                "written": stats["written"], "waiting_rows": waiting,
                "buffer_dir": str(self.buffer_dir), "overflow_rows": stats["overflow_rows"],
                "rejected_rows": stats["rejected_rows"], "last_rejection": stats["last_rejection"],
                "last_error": stats["last_error"], "last_error_at": stats["last_error_at"],
                "previous_error": stats["previous_error"], "previous_error_at": stats["previous_error_at"],
                "recovered_at": stats["recovered_at"],
                "drain": drain_command(self.buffer_dir, self.shown_url) if waiting else None}

    def waiting_message(self) -> str | None:
        """One line on the rows still waiting (None when none wait): how many, where, why, and how they get stored."""
        s = self.summary()
        if not s["waiting_rows"]:
            return None
        error = re.sub(r"^\([\w.]+\) ", "", s["last_error"] or "")  # the driver's words, not its class
        why = f" ({error})" if error else ""
        return (f"{s['waiting_rows']} row(s) were not stored in {s['database']}{why}: they wait in "
                f"{s['buffer_dir']}; store them once the database takes writes with `{s['drain']}` "
                "(docs/live.md, \"The store buffer\")")

    def drain_buffer(self, path: Path | str, timeout_s: float = 30.0) -> dict:
        """Store the rows another writer left in `path` (a run killed with them waiting) into this writer's
        database, each under the run it came from; `drain`'s summary. Stops at the first refused attempt."""
        return drain(path, self.database_url, timeout_s)

    def pending_rows(self) -> int:
        with self._lock:
            return self._mem_rows + self._hand_rows + self._disk_rows

    def flush(self, timeout_s: float = 10.0, *, until_refused: bool = False) -> bool:
        """Wait until everything put so far is written (retrying now if the writer is backing off);
        False when `timeout_s` passed first (the rows stay buffered), or with `until_refused` as soon as an
        attempt made during the wait fails: the database refuses now, and waiting out the timeout would only
        delay the end of a run whose rows are safe in the buffer."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            failures_before = self._failures
        self._kick.set()
        self._work.set()
        while self.pending_rows():
            left = deadline - time.monotonic()
            if left <= 0 or not self._writer.is_alive():
                return False
            if until_refused:
                with self._lock:
                    # a SQLite file another writer holds (its busy timeout ran out) is busy, not refusing: the
                    # next attempt takes it, so the wait goes on to the timeout
                    busy = "database is locked" in self._errors.get("database", ("",))[0]
                    if self._failures > failures_before and not self._db_ok and not busy:
                        return False
            time.sleep(min(0.01, left))
        if self._untold:  # whoever waits for the rows to be written reads them next: the cache is told now
            self._tell_cache(now=True)
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Flush (up to `timeout_s`, or until the database refuses an attempt made meanwhile), then stop. What
        could not be written stays in `buffer_dir`, where a new writer over the same directory (or `drain`)
        picks it up. True when everything was written."""
        if self._closed:
            return self.pending_rows() == 0
        done = self.flush(timeout_s, until_refused=True)
        with self._lock:
            self._closed = True
        self._stop_writer.set()
        self._kick.set()
        self._work.set()
        self._writer.join(max(5.0, timeout_s))
        self._stop_spooler.set()
        self._spool_wake.set()
        self._spooler.join(max(5.0, timeout_s))
        if self._untold:
            self._tell_cache(now=True)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        return done

    def __enter__(self) -> LiveStoreWriter:
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.close()

    # -- the writer thread -----------------------------------------------------------------------------------
    def _run_writer(self) -> None:
        delay = self.retry_initial_s
        chunk: _Chunk | None = None
        while True:
            if chunk is None:
                if self._stop_writer.is_set():
                    return
                chunk = self._take()
                if chunk is None:
                    self._work.wait(0.2)
                    self._work.clear()
                    continue
            self._begin_flight(chunk)
            try:
                self._write_chunk(chunk)
            except _Outage as exc:
                self._note_failure(exc.__cause__ or exc)
                if chunk.segment is None:
                    self._persist_head(chunk)
                self._end_flight()
                if self._stop_writer.is_set():
                    if chunk.segment is None:
                        self._give_back(chunk)
                    return
                self._kick.wait(delay)
                self._kick.clear()
                delay = min(delay * 2, self.retry_max_s)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug here must not lose the rows or kill the thread
                self._end_flight()
                log.exception("store writer failed")
                self._note_failure(exc)
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self._end_flight()
            self._finish(chunk)
            chunk = None
            delay = self.retry_initial_s

    # -- the watch on a write the database does not answer ---------------------------------------------------
    def _begin_flight(self, chunk: _Chunk) -> None:
        with self._flight_lock:
            self._flight, self._flight_since, self._cut = chunk, time.monotonic(), False
            self._flight_limit_s = self.write_timeout_s

    def _end_flight(self) -> None:
        """The write is over (written, or its rows moved to the buffer): its shadow copy goes."""
        with self._flight_lock:
            self._flight, shadow, self._shadow = None, self._shadow, None
        if shadow is not None:
            try:
                shadow.unlink()
            except FileNotFoundError:
                pass

    def _watch_flight(self) -> bool:
        """Spooler thread: whether the write under way is late (see the module doc); a late one gets its rows
        copied to disk, `db_ok` False, and once over its limit its connections cut."""
        with self._flight_lock:
            chunk = self._flight
            if chunk is None:
                return False
            waited = time.monotonic() - self._flight_since
            if waited < self.write_late_s:
                return False
            if chunk.segment is None and self._shadow is None:
                self._shadow = self._write_shadow(chunk)
            cut = waited >= self._flight_limit_s and not self._cut
            self._cut = self._cut or cut
            since = self._flight_since
            with self._lock:  # still under the flight lock: the write cannot succeed meanwhile (`_write_chunk`)
                first = self._db_ok
                if first:
                    self._db_ok = False
                    if self._failing_since is None:
                        self._failing_since = since
                    self._failed("database", f"the database has not answered a write for {self.write_late_s:g} s "
                                             f"or more ({self.shown_url})")
        if first:
            log.warning("store write late (the database has not answered for %.1f s): buffering in %s", waited,
                        self.buffer_dir)
        if cut:
            log.warning("store write took %.0f s: cutting the database connection and retrying", waited)
            self._cut_connections()
        return True

    def _write_shadow(self, chunk: _Chunk) -> Path | None:
        """A copy of the rows the writer holds, as the buffer's first segment (a new process, or `drain`, writes it
        first: rows written twice are stored once). Under the flight lock."""
        items = list(chunk.items[chunk.done:])
        if not items:
            return None
        with self._fifo_lock:
            self._first_seq -= 1
            seg = _Segment(self.buffer_dir / f"{self._first_seq:016d}.jsonl")
        try:
            self._append(seg, items, mode="w")
        except OSError as exc:
            self._disk_failed(exc)
            return None
        finally:
            self._seal(seg)
        return seg.path

    def _track_connections(self, engine: Engine) -> None:
        """Keep the engine's connections, those a cut shuts: every one opened and not yet gone (a write may hang
        in the pool's ping of a connection, before the pool hands it out). PostgreSQL's only: a SQLite write is
        bounded by its busy timeout."""
        if engine.dialect.name != "postgresql":
            return

        @event.listens_for(engine, "connect")
        def _opened(dbapi_conn, _record):  # noqa: ANN001
            with self._conns_lock:
                self._conns.add(dbapi_conn)

    def _connections(self) -> list:
        """A copy of `_conns`, taken under its lock; a copy that fails as the set changes (a connection the
        garbage collector takes away meanwhile) is taken again: the spooler's cut must not end its thread."""
        for _ in range(100):
            with self._conns_lock:
                try:
                    return list(self._conns)
                except RuntimeError:  # "changed size during iteration"
                    pass
            time.sleep(0.001)
        return []

    def _cut_connections(self) -> None:
        """Shut the sockets of the writer's connections in use: the driver waiting on one returns an error."""
        import socket

        for conn in self._connections():
            try:
                fd = conn.pgconn.socket  # psycopg 3: libpq's socket
            except Exception:  # noqa: BLE001 - closed already
                continue
            try:
                with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:  # a dup: closing it leaves fd
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                log.warning("could not cut a database connection: %s", exc)

    def _take(self) -> _Chunk | None:
        """The oldest rows: the head segment on disk if there is one, else a batch from memory."""
        with self._fifo_lock:
            if self._segments:
                seg = self._segments[0]
                if not seg.sealed:
                    self._seal(seg)
                return _Chunk(self._load(seg), seg)
            with self._lock:
                items, rows = [], 0
                while self._memory and (not items or rows + len(self._memory[0][2]) <= self.batch_rows):
                    item = self._memory.popleft()
                    items.append(item)
                    rows += len(item[2])
                self._mem_rows -= rows
                self._hand_rows += rows
            return _Chunk(items, None) if items else None

    def _write_chunk(self, chunk: _Chunk) -> None:
        """Write the chunk's items in order, consecutive items of one kind together; raises `_Outage`."""
        items = chunk.items
        while chunk.done < len(items):
            kind, sim, _ = items[chunk.done]
            end, rows = chunk.done, 0
            while (end < len(items) and items[end][0] == kind and items[end][1] == sim
                   and (end == chunk.done or rows + len(items[end][2]) <= self.batch_rows)):
                rows += len(items[end][2])
                end += 1
            group = items[chunk.done:end]
            written, rejected = self._write_group(group)
            # under the flight lock: the spooler's watch (`_watch_flight`) cannot find this write late once it is
            # done (its lateness marked after the success would stay until the next write)
            with self._flight_lock, self._lock:
                self._flight_since = time.monotonic()  # what follows in the chunk is another write
                self._written += written
                self._rejected += rejected
                if chunk.segment is None:
                    self._hand_rows -= rows
                else:
                    self._disk_rows -= rows
                    chunk.segment.rows -= rows
                if not self._db_ok:
                    # the rows of this first write are already taken off the buffer's counts: say both
                    log.warning("database back: wrote %d rows, %d buffered rows still to write", rows,
                                self._mem_rows + self._hand_rows + self._disk_rows)
                self._db_ok = True
                self._failing_since = None
                self._works("database")
            chunk.done = end

    def _write_group(self, group: list[Item]) -> tuple[int, int]:
        """(rows written, rows dropped as invalid) for items of one kind and run; raises `_Outage`."""
        engine = self._connect()
        self._check_file()
        kind, name = group[0][0], group[0][1]
        rows = [r for item in group for r in item[2]]
        while True:
            sim = self._store_id(name)
            if kind == "records" and sim != name:  # the loop's records carry the run's name
                rows = [{**r, "simulation_id": sim} if isinstance(r, dict) and r.get("simulation_id") == name
                        else r for r in rows]
            try:
                written = self._write_isolating(engine, kind, sim, rows)
            except SimulationIdTaken as taken:
                if name != self.name:  # another run's rows (a drain's): kept out, as any row the store refuses
                    self._note_rejected(len(rows), taken)
                    return 0, len(rows)
                self._take_other_id(taken)
                continue
            break
        if written:
            self._tell_cache()
        if kind in ("runs", "detectors") and written == len(rows):
            self._keep(kind, sim, rows)
        return written, len(rows) - written

    def _keep(self, kind: str, sim: str, rows: list) -> None:
        """Remember the run row and detector configuration stored (writer thread only): a database that loses
        them during the run (dropped and made again, its tables dropped) gets them again (`_restore_lost`)."""
        kept = self._kept.setdefault(sim, {"runs": None, "detectors": {}})
        if kind == "runs":
            kept["runs"] = rows[-1]
        else:
            for row in rows:
                kept["detectors"].setdefault(tuple(row[:4]), row)

    def _restore_lost(self, engine: Engine) -> None:
        """On a new connection (the first after an outage): the runs this writer stored whose row the database no
        longer has, or has only as the stub a record or event written without it makes (no scenario, controller,
        seed, start), get their row again, and their detector configuration when it is gone. Records and events
        written after a database was replaced are then found under the run as it was stored, not under a nameless
        one. Nothing is written when nothing was lost. Raises what the database raises."""
        for sim, kept in self._kept.items():
            run, detectors = kept["runs"], list(kept["detectors"].values())
            if run is None:
                continue
            lost = _lost_of_run(engine, sim, run, bool(detectors))
            if not lost:
                continue
            what = " and ".join({"run": "row", "detectors": "detector configuration"}[k] for k in lost)
            try:
                if "run" in lost:
                    _write_runs(engine, sim, [run])
                if detectors:
                    _write_detectors(engine, sim, detectors)
            except Exception as exc:  # noqa: BLE001 - sorted into outage and invalid data
                if not (_invalid_data(exc) or isinstance(exc, SimulationIdTaken)):
                    raise
                log.warning("run %s: its %s could not be stored again: %s", sim, what, _one_line(exc))
                continue
            log.warning("%s had lost run %s's %s (replaced, or its tables dropped): stored again", self.shown_url,
                        sim, what)

    def _tell_cache(self, now: bool = False) -> None:
        """As every ingest write: a served app in this process drops its cached analytics answers, instead of
        answering without these rows for its cache's lifetime (alerts, changes and events are not written through
        `ingest`, which notifies for records and runs). At most once every `CACHE_NOTICE_S`: a live run writes
        every tick, and dropping the cache at each would leave none; `flush` and `close` tell of the last writes."""
        from .ingest import notify_written

        self._untold = True
        t = time.monotonic()
        if now or t - self._notified_s >= CACHE_NOTICE_S:
            notify_written()
            self._notified_s, self._untold = t, False

    def _write_isolating(self, engine: Engine, kind: str, sim: str, rows: list) -> int:
        """Write rows; when the database calls some invalid, write the others (records: those that validate,
        else one at a time) and drop those. Returns the rows written. Raises `SimulationIdTaken` for a run row
        whose id the store holds for ingested records (`_write_group` moves the run to another id)."""
        try:
            _WRITERS[kind](engine, sim, rows)
            return len(rows)
        except SimulationIdTaken:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted into outage and invalid data
            if not _invalid_data(exc):
                self._drop_engine()
                raise _Outage(_one_line(exc)) from exc
            error = exc
        if len(rows) == 1:
            self._note_rejected(1, error)
            return 0
        if kind == "records":
            valid = _valid_records(rows)
            if len(valid) < len(rows):
                self._note_rejected(len(rows) - len(valid), error)
                return self._write_isolating(engine, kind, sim, valid) if valid else 0
        return sum(self._write_isolating(engine, kind, sim, [row]) for row in rows)

    def _note_rejected(self, rows: int, exc: BaseException) -> None:
        reason = _one_line(exc)
        log.warning("store refused %d row(s) as invalid: %s", rows, reason)
        with self._lock:
            self._last_rejection = f"invalid rows dropped: {reason}"

    def _note_failure(self, exc: BaseException) -> None:
        reason = _one_line(exc)
        with self._lock:
            first = self._db_ok
            self._failures += 1
            self._db_ok = False
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            self._failed("database", reason)
        if first:
            log.warning("store write failed, buffering (%s): %s", self.buffer_dir, reason)
        self._spool_wake.set()

    def _connect(self) -> Engine:
        """The writer's own engine (short busy and connect timeouts), migrated to head; raises `_Outage`.

        A SQLite file's identity (device, inode) is taken before the engine opens it and again once the engine is
        ready: a file replaced in between (the engine's connections may hold either) is opened again, up to
        `OPEN_ATTEMPTS` times, and `_check_file` then compares the file at the path with it before each write."""
        if self._engine is not None:
            return self._engine
        from .engine import database_url

        try:
            url = database_url(self.database_url)
            parsed = make_url(url)
            if parsed.get_backend_name() == "postgresql":
                # a write waiting on the server (a lock) ends there too, after the time the watch allows it
                options = " ".join(filter(None, (parsed.query.get("options"),
                                                 f"-c statement_timeout={round(self.write_timeout_s * 1000)}")))
                extra = {"options": options}
                if "connect_timeout" not in parsed.query:
                    extra["connect_timeout"] = str(self.connect_timeout_s)
                url = parsed.update_query_dict(extra).render_as_string(hide_password=False)
            path = _sqlite_path(url)
            if path is not None:  # the file in the working directory now, whatever it is when a connection opens
                url = parsed.set(database=path).render_as_string(hide_password=False)
        except Exception as exc:  # noqa: BLE001 - a URL that cannot work now may work later (a driver, a file)
            raise _Outage(str(exc)) from exc
        for _ in range(OPEN_ATTEMPTS):
            before = _identity(path)
            engine, first = self._open(url, path)
            opened, now = before or first, _identity(path)
            if path is None or (opened is not None and now == opened):
                self._engine, self._file = engine, (None if path is None else (path, now))
                return engine
            engine.dispose()  # its connections may be on the file that was there before
            self._forget_served(self.database_url)
            log.warning("the database file %s was replaced while it was being opened: opening it again", path)
        raise _Outage(f"the database file {path} was replaced each of the {OPEN_ATTEMPTS} times it was opened")

    def _open(self, url: str, path: str | None) -> tuple[Engine, tuple[int, int] | None]:
        """A new engine of `url`, migrated to head with what the database lost restored, and the identity of the
        SQLite file at `path` just after its first connection opened (None for another database)."""
        from .engine import create_store_engine, current_revision, upgrade, why_read_only

        try:
            engine = create_store_engine(url)
            self._track_connections(engine)
            if engine.dialect.name == "sqlite":
                busy_ms = int(self.busy_timeout_s * 1000)

                @event.listens_for(engine, "connect")
                def _busy(dbapi_conn, _record):  # noqa: ANN001 - after the store's pragmas, so it wins
                    dbapi_conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        except Exception as exc:  # noqa: BLE001 - a URL that cannot work now may work later (a driver, a file)
            raise _Outage(str(exc)) from exc
        try:
            with engine.connect():
                first = _identity(path)  # a file the engine created: there was none to stat before
            revision, head = current_revision(engine), _head_revision()
            # checked before anything is written or created (a temporary table of a COPY included): a
            # read-only database is never written into, and says so in one line
            why = why_read_only(engine)
            if why is not None:
                old = "" if revision == head else f"; its schema ({revision or 'empty'}) cannot be migrated to {head}"
                raise _Outage(f"database {self.shown_url} is read-only: {why}{old}; nothing is written there")
            if revision != head:
                with self._flight_lock:
                    self._flight_limit_s = max(self._flight_limit_s, MIGRATE_TIMEOUT_S)
                try:
                    upgrade(engine)
                finally:
                    with self._flight_lock:  # what follows has the time of a write again
                        self._flight_limit_s, self._flight_since = self.write_timeout_s, time.monotonic()
            self._restore_lost(engine)
        except _Outage:
            engine.dispose()
            raise
        except Exception as exc:  # noqa: BLE001
            engine.dispose()
            raise _Outage(str(exc)) from exc
        return engine, first

    def _check_file(self) -> None:
        """A SQLite file removed or replaced (another file renamed over it) since the engine opened it: its open
        connections would go on writing into the old file, gone with every row written there. Raises `_Outage`;
        the next attempt opens (creates, migrates) the file now at the path, and stores the run again in it. The
        engine this process caches for the URL (`engine.get_engine`: the API served beside the run) is closed
        too, so the API's next request opens (and migrates) the file now at the path instead of reading the old
        one."""
        if self._file is None:
            return
        path, opened = self._file
        now = _identity(path)
        if now != opened:
            self._drop_engine()
            self._forget_served(self.database_url)
            raise _Outage(f"the database file {path} was {'removed' if now is None else 'replaced'} since it was "
                          "opened")

    @staticmethod
    def _forget_served(url: str | None) -> None:
        """Close the engine `engine.get_engine` caches for `url` in this process, if any."""
        from .engine import database_url, dispose_engines

        try:
            dispose_engines(database_url(url))  # never None: None would close every cached engine
        except Exception as exc:  # noqa: BLE001 - the writer goes on; the API then reads the old file
            log.warning("the engine cached for %s could not be closed: %s", url, exc)

    def _drop_engine(self) -> None:
        """Forget the engine after a failure: the next attempt connects (and migrates) afresh."""
        engine, self._engine, self._file = self._engine, None, None
        if engine is not None:
            try:
                engine.dispose()
            except Exception:  # noqa: BLE001
                pass

    def _finish(self, chunk: _Chunk) -> None:
        seg = chunk.segment
        if seg is None:
            return
        with self._fifo_lock:
            if self._segments and self._segments[0] is seg:
                self._segments.popleft()
            with self._lock:
                self._disk_rows -= seg.rows  # rows of lines that could not be read back
                seg.rows = 0
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass

    def _persist_head(self, chunk: _Chunk) -> None:
        """Items the writer took from memory and could not write go to disk before everything else."""
        items = chunk.items[chunk.done:]
        rows = sum(len(i[2]) for i in items)
        with self._fifo_lock:
            self._first_seq -= 1
            seg = _Segment(self.buffer_dir / f"{self._first_seq:016d}.jsonl")
            try:
                self._append(seg, items, mode="w")
            except OSError as exc:
                self._disk_failed(exc)
                return
            seg.fh.close()
            seg.fh = None
            self._segments.appendleft(seg)
            with self._lock:
                self._hand_rows -= rows
                self._disk_rows += rows
                self._works("disk")
        chunk.items, chunk.done, chunk.segment = items, 0, seg

    def _give_back(self, chunk: _Chunk) -> None:
        """Stopping with rows that reached neither the database nor the disk: back to the head of memory."""
        items = chunk.items[chunk.done:]
        with self._fifo_lock, self._lock:
            for item in reversed(items):
                self._memory.appendleft(item)
            rows = sum(len(i[2]) for i in items)
            self._hand_rows -= rows
            self._mem_rows += rows

    # -- the spooler thread: memory -> disk ------------------------------------------------------------------
    def _run_spooler(self) -> None:
        while True:
            stopping = self._stop_spooler.is_set()
            try:
                self._spool_once(stopping)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the spilling for the rest of the run
                log.exception("store spooler failed; it carries on")
                with self._lock:
                    self._failed("spooler", f"the store's spooler failed: {_one_line(exc)}")
            else:
                with self._lock:
                    self._works("spooler")
            if stopping:
                with self._fifo_lock:
                    for seg in self._segments:
                        if not seg.sealed:
                            self._seal(seg)
                return
            self._spool_wake.wait(0.1)
            self._spool_wake.clear()

    def _spool_once(self, stopping: bool) -> None:
        """One round of the spooler: watch the write under way, spill memory to disk when it should."""
        with self._lock:
            rows, db_ok = self._mem_rows, self._db_ok
        late = self._watch_flight()
        if rows > self.memory_rows or (rows and (not db_ok or stopping or late)):
            self._spill(everything=stopping or not db_ok or late)

    def _spill(self, everything: bool) -> None:
        """Move the oldest items in memory to the tail of the disk buffer (all, or down to half the limit).

        The items count as in memory until they are on disk: `stats()` read during a spill that fails must not
        show rows buffered on a disk that took none."""
        with self._fifo_lock:
            with self._lock:
                items, rows = [], 0
                keep = 0 if everything else self.memory_rows // 2
                while self._memory and self._mem_rows - rows > keep:
                    item = self._memory.popleft()
                    items.append(item)
                    rows += len(item[2])
            if not items:
                return
            try:
                self._append_to_tail(items)
            except OSError as exc:
                with self._lock:
                    for item in reversed(items):
                        self._memory.appendleft(item)
                self._disk_failed(exc)
                return
            with self._lock:
                self._mem_rows -= rows
                self._disk_rows += rows
                self._works("disk")
            self._disk_ok = True

    def _append_to_tail(self, items: list[Item]) -> None:
        tail = self._segments[-1] if self._segments else None
        if tail is None or tail.sealed or tail.rows >= self.segment_rows:
            if tail is not None and not tail.sealed:
                self._seal(tail)
            tail = _Segment(self.buffer_dir / f"{self._next_seq:016d}.jsonl")
            self._next_seq += 1
            self._append(tail, items, mode="a")
            self._segments.append(tail)
        else:
            self._append(tail, items, mode="a")

    def _append(self, seg: _Segment, items: list[Item], mode: str) -> None:
        """Write items as JSON lines and fsync (the file, and the directory when the file is new)."""
        new = seg.fh is None
        if new:
            self.buffer_dir.mkdir(parents=True, exist_ok=True)
            seg.fh = open(seg.path, mode, encoding="utf-8")  # noqa: SIM115 - kept open while it is the tail
        fh = seg.fh
        fh.write("".join(json.dumps({"kind": k, "sim": s, "rows": r}, default=_json_default,
                                    separators=(",", ":")) + "\n" for k, s, r in items))
        fh.flush()
        os.fsync(fh.fileno())
        if new:
            if not (self.buffer_dir / IDS_FILE).exists():
                self._save_ids()
            _fsync_dir(self.buffer_dir)
        seg.rows += sum(len(i[2]) for i in items)

    def _seal(self, seg: _Segment) -> None:
        if seg.fh is not None:
            seg.fh.close()
            seg.fh = None

    def _disk_failed(self, exc: OSError) -> None:
        with self._lock:
            self._failed("disk", f"cannot spill to {self.buffer_dir}: {exc}")
            first, self._disk_ok = self._disk_ok, False
        if first:  # once per streak: the spooler tries again ten times a second
            log.error("cannot spill the store buffer to %s: %s (rows stay in memory)", self.buffer_dir, exc)

    def _load(self, seg: _Segment) -> list[Item]:
        """The head segment's items; rows of lines that cannot be read back are counted as dropped."""
        items = _read_segment(seg.path)
        rows = sum(len(i[2]) for i in items)
        lost = seg.rows - rows
        if lost > 0:
            with self._lock:
                self._disk_rows -= lost
                self._rejected += lost
                self._last_rejection = f"{seg.path}: {lost} buffered row(s) could not be read back"
            seg.rows = rows
        return items

    def _recover_segments(self) -> None:
        """Segments a previous writer left in `buffer_dir` go first, in their order (under the id it stored the
        run under, `_load_ids`)."""
        if not self.buffer_dir.is_dir():
            return
        self._load_ids()
        found = sorted(p for p in self.buffer_dir.glob("*.jsonl") if p.stem.isdigit())
        for path in found:
            seg = _Segment(path, rows=sum(len(i[2]) for i in _read_segment(path)))
            self._segments.append(seg)
            self._disk_rows += seg.rows
        if found:
            self._first_seq = int(found[0].stem)
            self._next_seq = int(found[-1].stem) + 1
            log.warning("resuming %d buffered rows from %s", self._disk_rows, self.buffer_dir)


def _read_segment(path: Path) -> list[Item]:
    items: list[Item] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    item = (data["kind"], data["sim"], data["rows"])
                    if item[0] not in KINDS or not isinstance(item[2], list):
                        raise ValueError(f"unknown kind {item[0]!r}")
                except (ValueError, KeyError, TypeError) as exc:
                    # only the last line can be cut short (a crash while spilling); it was never acknowledged
                    log.error("%s:%d: unreadable buffered line dropped: %s", path, n, exc)
                    continue
                items.append(item)
    except FileNotFoundError:
        pass
    return items


# -- rows -------------------------------------------------------------------------------------------------------


def _iso(value, name: str, required: bool = False) -> str | None:  # noqa: ANN001
    """An instant as ISO 8601 with its offset (naive ones are local time)."""
    if value is None or value == "":
        if required:
            raise ValueError(f"{name} is missing")
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat()


def _text(value, name: str, limit: int | None = None, required: bool = True) -> str | None:  # noqa: ANN001
    if value is None or value == "":
        if required:
            raise ValueError(f"{name} is missing")
        return None if value is None else ""
    text = str(value)
    if limit is not None and len(text) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return text


def _now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat()


def alert_row(alert) -> dict:  # noqa: ANN001
    """The `alerts` row of an `AlertEvent` (or its dict): wall times from `wall_time` / `cleared_wall_time`."""
    if dataclasses.is_dataclass(alert) and not isinstance(alert, type):
        a = dataclasses.asdict(alert)
    else:
        a = dict(alert)
    level = _text(a.get("level"), "level", 16)
    if level not in ALERT_LEVELS:
        raise ValueError(f"level {level!r} is not one of {', '.join(ALERT_LEVELS)}")
    cleared_s = a.get("cleared_at_s")
    cleared_at = a.get("cleared_at") or a.get("cleared_wall_time")
    if cleared_at is None and cleared_s is not None:
        cleared_at = _now_iso()
    return {
        "id": _text(a.get("id"), "id", 64), "rule": _text(a.get("rule"), "rule", 128), "level": level,
        "metric": _text(a.get("metric"), "metric", 200), "value": float(a["value"]),
        "threshold": float(a["threshold"]),
        "raised_at": _iso(a.get("raised_at") or a.get("wall_time") or _now_iso(), "raised_at", True),
        "cleared_at": _iso(cleared_at, "cleared_at"),
        "raised_at_s": None if a.get("raised_at_s") is None else float(a["raised_at_s"]),
        "cleared_at_s": None if cleared_s is None else float(cleared_s),
        "message": str(a.get("message") or ""),
        "acknowledged_by": _text(a.get("acknowledged_by"), "acknowledged_by", 128, required=False),
        "acknowledged_at": _iso(a.get("acknowledged_at"), "acknowledged_at"),
        "subjects": [str(s) for s in a.get("subjects") or ()],
        "cleared_reason": _text(a.get("cleared_reason"), "cleared_reason", required=False),
    }


def change_row(change: Mapping) -> dict:
    """The `runtime_changes` row of a change record; the key is given here, once, so retries store it once."""
    result = change.get("result") or "applied"
    if result not in CHANGE_RESULTS:
        raise ValueError(f"result {result!r} is not one of {', '.join(CHANGE_RESULTS)}")
    sim_time = change.get("sim_time_s")
    return {
        "change_key": uuid.uuid4().hex, "at": _iso(change.get("at") or _now_iso(), "at", True),
        "sim_time_s": None if sim_time is None else float(sim_time),
        "who": _text(change.get("who") or "unknown", "who", 128), "kind": _text(change.get("kind"), "kind", 32),
        "payload": json.dumps(change.get("payload", {}), sort_keys=True, default=str),
        "result": result, "reason": str(change.get("reason") or ""),
    }


def _json_default(value):  # noqa: ANN001, ANN202
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _invalid_data(exc: BaseException) -> bool:
    """True for rows the database will never take (retrying cannot help), False for an outage."""
    return isinstance(exc, ValueError | TypeError | IntegrityError | DataError)


def _valid_records(rows: list) -> list:
    from .ingest import RecordError, validate_record

    valid = []
    for i, row in enumerate(rows):
        try:
            validate_record(row, f"record {i}")
            valid.append(row)
        except RecordError:
            pass
    return valid


# -- writing ----------------------------------------------------------------------------------------------------


def _insert(engine: Engine, table):  # noqa: ANN001, ANN202
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(table)


def _write_records(engine: Engine, _sim: str, rows: list) -> None:
    from .ingest import ingest_records

    ingest_records(engine, rows)


def _write_events(engine: Engine, sim: str, rows: list) -> None:
    from .events import bulk_insert_events

    bulk_insert_events(engine, [(dt.datetime.fromisoformat(t), d, c, p) for t, d, c, p in rows], simulation_id=sim)


def _moment(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _write_alerts(engine: Engine, sim: str, rows: list) -> None:
    """Upsert by id, one statement per alert (the same alert may come twice in a batch: raised, cleared);
    a clearing or acknowledgement already stored is never undone by an older copy written again."""
    t = Alert.__table__
    with engine.begin() as conn:
        for row in rows:
            # a row buffered by a writer before migration 0015 has no subjects (NULL: not known) nor cleared_reason
            values = {"subjects": null(), "cleared_reason": None, **row, "simulation_id": sim,
                      "raised_at": _moment(row["raised_at"]),
                      "cleared_at": _moment(row["cleared_at"]), "acknowledged_at": _moment(row["acknowledged_at"])}
            stmt = _insert(engine, t).values(**values)
            ex = stmt.excluded
            conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
                "cleared_at": func.coalesce(ex.cleared_at, t.c.cleared_at),
                "cleared_at_s": func.coalesce(ex.cleared_at_s, t.c.cleared_at_s),
                "acknowledged_by": func.coalesce(ex.acknowledged_by, t.c.acknowledged_by),
                "acknowledged_at": func.coalesce(ex.acknowledged_at, t.c.acknowledged_at),
                "cleared_reason": func.coalesce(ex.cleared_reason, t.c.cleared_reason),
                "message": ex.message}))


def _write_changes(engine: Engine, sim: str, rows: list) -> None:
    t = RuntimeChange.__table__
    values = [{**row, "simulation_id": sim, "at": _moment(row["at"])} for row in rows]
    with engine.begin() as conn:
        conn.execute(_insert(engine, t).on_conflict_do_nothing(index_elements=["change_key"]), values)


def _write_runs(engine: Engine, sim: str, rows: list) -> None:
    from .ingest import register_run

    for row in rows:
        register_run(engine, sim, row.get("scenario"), row.get("controller"), row.get("seed"), row.get("config") or {},
                     _moment(row.get("started_at")))


def _sqlite_path(url: str) -> str | None:
    """The absolute path of a SQLite URL's database file (relative to the working directory now, as SQLite opens
    it); None for another database, memory, or a `file:` URI."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        return None
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return os.path.abspath(path)


def _identity(path: str | None) -> tuple[int, int] | None:
    """(device, inode) of the file at `path` now; None when there is none (or no path)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _lost_of_run(engine: Engine, sim: str, run: dict, has_detectors: bool) -> list[str]:
    """What the database lost of a run stored before: "run" (its row is gone, or is a stub without a field its
    row was stored with: scenario, controller, seed, start), with "detectors" when it had a detector configuration
    (gone with the row); "detectors" alone (the row is there, its configuration is not); or nothing."""
    from .tables import DetectorConfigRow, Run

    runs, det = Run.__table__, DetectorConfigRow.__table__
    with engine.connect() as conn:
        row = conn.execute(select(runs.c.id, runs.c.scenario, runs.c.controller, runs.c.seed, runs.c.started_at)
                           .where(runs.c.simulation_id == sim)).first()
        if row is None or any(run.get(k) is not None and getattr(row, k) is None
                              for k in ("scenario", "controller", "seed", "started_at")):
            return ["run", "detectors"] if has_detectors else ["run"]
        if has_detectors and conn.execute(select(det.c.run_id).where(det.c.run_id == row.id).limit(1)).first() is None:
            return ["detectors"]
    return []


def _write_detectors(engine: Engine, sim: str, rows: list) -> None:
    """Added, never replacing (idempotent, and rows written one at a time must not undo each other)."""
    from .detector_configs import store_detector_config

    store_detector_config(engine, sim, rows, replace=False)


_WRITERS = {"runs": _write_runs, "records": _write_records, "events": _write_events, "alerts": _write_alerts,
            "changes": _write_changes, "detectors": _write_detectors}


# -- reading back (the API) -------------------------------------------------------------------------------------


def list_alerts(engine: Engine, simulation_id: str | None = None, active: bool | None = None,
                limit: int = 100) -> list[dict]:
    """Stored alerts, newest raised first; `active` True: not cleared, False: cleared, None: both."""
    t = Alert.__table__
    q = select(t)
    if simulation_id is not None:
        q = q.where(t.c.simulation_id == simulation_id)
    if active is True:
        q = q.where(t.c.cleared_at.is_(None))
    elif active is False:
        q = q.where(t.c.cleared_at.is_not(None))
    q = q.order_by(t.c.raised_at.desc(), t.c.id.desc()).limit(max(0, int(limit)))
    with engine.connect() as conn:
        return [{**row._asdict(), "active": row.cleared_at is None} for row in conn.execute(q)]


def list_changes(engine: Engine, simulation_id: str | None = None, limit: int = 100) -> list[dict]:
    """Stored runtime changes, newest first, `payload` parsed back into a dict."""
    t = RuntimeChange.__table__
    q = select(t)
    if simulation_id is not None:
        q = q.where(t.c.simulation_id == simulation_id)
    q = q.order_by(t.c.at.desc(), t.c.id.desc()).limit(max(0, int(limit)))
    with engine.connect() as conn:
        return [{**row._asdict(), "payload": json.loads(row.payload)} for row in conn.execute(q)]


# -- storing a buffer left behind ---------------------------------------------------------------------------------


def drain_command(buffer_dir: Path | str, shown_url: str) -> str:
    """The command that stores the rows waiting in `buffer_dir` (the run directory when it is `store-buffer`)."""
    where = Path(buffer_dir)
    if where.name == "store-buffer":
        where = where.parent
    return f"signalwise db drain {where} --db {shown_url}"


def drain(path: Path | str, database_url: str | None, timeout_s: float = 60.0, force: bool = False) -> dict:
    """Store the rows waiting in a buffer directory (or a run directory's `store-buffer`); returns the writer's
    `summary()` at the end, with `drained_at` (when it ended): `waiting_rows` 0 when everything was stored,
    else how many still wait. A run directory's `run.json` gets it as its `store` (`note_drained`), so the run
    says what still waits after the drain, not what waited when the run ended. A run directory whose run may
    still be running (`still_running`, its process alive or on another host) is refused (`ValueError`): its own
    writer takes rows from that buffer and rewrites its `run.json`. `force`: drain it anyway (the operator knows
    the run is gone: a container recreated under another host name whose heartbeat check cannot tell)."""
    buffer_dir = Path(path)
    if (buffer_dir / "store-buffer").is_dir():
        buffer_dir = buffer_dir / "store-buffer"
    if not buffer_dir.is_dir():
        raise FileNotFoundError(f"{path}: no store buffer there")
    if buffer_dir.name != "store-buffer" and not any(p.stem.isdigit() for p in buffer_dir.glob("*.jsonl")):
        # a compare folder or a typo'd path drained as "empty" looked like a drain that worked
        raise FileNotFoundError(f"{path}: not a live run's directory (no store-buffer in it) nor a store buffer "
                                "(no buffered rows in it)")
    if buffer_dir.name == "store-buffer" and not force:
        why = still_running(_read_run(buffer_dir.parent / "run.json"), buffer_dir.parent)
        if why is not None and why != NAMES_NO_PROCESS:
            raise ValueError(f"{buffer_dir.parent}: the run is still running ({why}); its own writer stores its "
                             "store buffer: drain it after the run ends or dies (--force: it is gone)")
    writer = LiveStoreWriter(database_url, (buffer_dir.parent.name or "drain")[:128], buffer_dir,
                             retry_initial_s=0.2, retry_max_s=2.0)
    writer.close(timeout_s)
    summary = {**writer.summary(), "drained_at": _now_iso()}
    if buffer_dir.name == "store-buffer":
        summary = note_drained(buffer_dir.parent / "run.json", summary, force=force)
    return summary


#: a run on another host whose heartbeat file (touched every tick) is older than this is taken for gone
OTHER_HOST_STALE_S = 120.0


#: `still_running`'s answer for a run.json that says `running` and names no process: drained, but left as it is
NAMES_NO_PROCESS = "its run.json says `running` and names no process"


def _read_run(run_json: Path) -> dict | None:
    try:
        run = json.loads(run_json.read_text())
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def still_running(run: dict | None, run_dir: Path) -> str | None:
    """Why the run of a `run.json` (its content; `run_dir` holds its heartbeat) may still be running, or None: it
    says `running` and its process is not certainly gone (`outdirs.shown_status`: alive on this host; on another
    host with a heartbeat touched within `OTHER_HOST_STALE_S`; or named nowhere, `NAMES_NO_PROCESS`). A drain then
    would take rows from the buffer the run's writer still takes them from, and race the run's own rewrites of its
    `run.json`."""
    import socket

    if not isinstance(run, dict) or run.get("status") != "running" or shown_status(run).get("status") != "running":
        return None
    process = run.get("process")
    if not isinstance(process, dict) or not isinstance(process.get("pid"), int):
        return NAMES_NO_PROCESS
    pid, host = process["pid"], process.get("host")
    if host != socket.gethostname():
        # the process cannot be asked from here; its heartbeat can: a run touches it every tick
        try:
            quiet_s = time.time() - (run_dir / HEARTBEAT).stat().st_mtime
        except OSError:
            quiet_s = None
        if quiet_s is not None and quiet_s > OTHER_HOST_STALE_S:
            return None
        seen = "" if quiet_s is None else f", its heartbeat touched {quiet_s:.0f} s ago"
        return f"process {pid} on {host}, another host{seen}"
    return f"process {pid} is alive"


def note_drained(run_json: Path, summary: dict, force: bool = False) -> dict:
    """Put a drain's `summary` into a run's `run.json` as its `store`: the store the run wrote at its end is kept
    under `before_drain`, an earlier drain's summary under `earlier_drains` (oldest first). Replaced whole (a
    temporary file, then a rename), so a reader never sees half a file. Returns the `store` written (the summary
    as given when there is no readable `run.json`, or one whose run may still be running: `still_running`)."""
    try:
        run = json.loads(run_json.read_text())
    except FileNotFoundError:
        return summary
    except (OSError, ValueError) as exc:
        log.warning("%s not updated with the drain's outcome: %s", run_json, exc)
        return summary
    if not isinstance(run, dict):
        log.warning("%s not updated with the drain's outcome: it holds no JSON object", run_json)
        return summary
    why = None if force else still_running(run, run_json.parent)
    if why is not None:  # the run rewrites its run.json whole: a write here could undo its end, or be undone
        log.warning("%s not updated with the drain's outcome: the run may still be running (%s)", run_json, why)
        return summary
    store, old = dict(summary), run.get("store")
    if isinstance(old, dict) and "drained_at" in old:  # drained before (a partial drain, the next run's)
        earlier = {k: v for k, v in old.items() if k not in ("before_drain", "earlier_drains")}
        store["earlier_drains"] = [*(old.get("earlier_drains") or []), earlier]
        if "before_drain" in old:
            store["before_drain"] = old["before_drain"]
    elif isinstance(old, dict):
        store["before_drain"] = old
    run["store"] = store
    partial = run_json.with_name(f".{run_json.name}.drain-{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(run, indent=2, default=str) + "\n")
        partial.replace(run_json)
    except OSError as exc:
        log.warning("%s not updated with the drain's outcome: %s", run_json, exc)
        partial.unlink(missing_ok=True)
        return summary
    return store


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from ..exitcodes import BAD_INPUT, DONE, FAILED

    parser = argparse.ArgumentParser(prog="python -m signalwise.store.live",
                                     description="Store the rows a live run left in its store-buffer directory.")
    parser.add_argument("run_dir", type=Path, help="the live run's directory (or its store-buffer directory)")
    parser.add_argument("--db", default=None, help="database URL (default: SIGNALWISE_DATABASE_URL, else signalwise.db)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to keep trying (default 60)")
    args = parser.parse_args(argv)
    try:
        s = drain(args.run_dir, args.db, args.timeout)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    line, stored = drained_line(s)
    print(line, file=sys.stdout if stored else sys.stderr)
    return DONE if stored else FAILED


def drained_line(summary: dict) -> tuple[str, bool]:
    """What a drain says at its end, and whether everything was stored."""
    s = summary
    if s["waiting_rows"]:
        why = f" ({s['last_error']})" if s["last_error"] else ""
        return (f"error: {s['waiting_rows']} row(s) still wait in {s['buffer_dir']}{why}; {s['written']} stored in "
                f"{s['database']}", False)
    return f"{s['written']} row(s) stored in {s['database']}; {s['buffer_dir']} is empty", True


if __name__ == "__main__":
    raise SystemExit(_main())
