"""The database schema (SQLAlchemy 2). Migrations in `migrations/` build it.

- `runs`: one simulation run (or live deployment), tagged with scenario,
  controller, seed and its configuration.
- `intersection_records`: one intersection over one interval (the ingestion
  record without its signals); key (run, intersection, timestamp).
- `signal_records`: one approach direction of such a record.
- `run_metrics`: network-wide metrics of a run as name/value rows, so a new
  metric needs no migration.
- `hires_events`: the Indiana hi-res controller event log, naive local time, with when each row was
  stored (UTC).
- `intersection_rollups`, `direction_rollups`: running totals per (run,
  intersection) and per (run, intersection, direction), kept by ingestion in
  the same transaction as the rows they sum, so questions over whole runs
  read thousands of rows instead of millions (`rollups.py`).
- `bucket_rollups_1h`, `bucket_rollups_15min`, `bucket_rollups_5min`: the
  totals per (run, intersection) per UTC hour, quarter hour and 5 minutes,
  each row with the per-approach totals too, so a time range reads whole
  buckets and only what is left (under 5 minutes at each end) from the
  interval rows (`rollups.py`).
- `model_versions`, `model_files`, `model_blobs`, `model_deployments`: the
  model registry (`model_registry.py`): versions, their files by content,
  and who deployed or rolled back what, where and when.
- `training_jobs`, `ml_metrics`: training started through the API
  (`jobs.py`) and performance figures measured elsewhere (`ml_metrics.py`).
- `detector_configs`: a stored run's ATSPM detector configuration (its
  `detectors.csv`), one row per detector (`detector_configs.py`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
    event,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..core.names import MAX_INTERSECTION_ID_CHARS
from . import rollups
from .schemas import DIRECTIONS
from .timefmt import UtcDateTime

SIGNAL_STATUSES = ("GREEN", "YELLOW", "RED")
DIRECTION_CHECK = " OR ".join(f"direction = '{d}'" for d in DIRECTIONS)
STATUS_CHECK = " OR ".join(f"signal_status = '{s}'" for s in SIGNAL_STATUSES)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _signal_id(declared_on_sqlite: int) -> String:
    """A signal's id column: MAX_INTERSECTION_ID_CHARS on PostgreSQL (migration 0013 widened it). SQLite keeps
    the length its tables were first declared with, which it never enforces, so its files need no rebuild."""
    return String(declared_on_sqlite).with_variant(String(MAX_INTERSECTION_ID_CHARS), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    simulation_id: Mapped[str] = mapped_column(String(128), unique=True)
    scenario: Mapped[str | None] = mapped_column(String(128))
    controller: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    config: Mapped[dict | None] = mapped_column(JSON)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), server_default=func.current_timestamp())
    #: what made it: `ingest` (its records created it: the API's ingest, `signalwise ingest`), `run` (a run
    #: registered it: publish, `run --db`, a live run); the API ingests only into `ingest` runs (migration 0022)
    source: Mapped[str | None] = mapped_column(String(16))
    #: the id of the API key whose ingest created it (`insecure` under --insecure-no-auth); NULL otherwise
    created_by_key_id: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_runs_scenario_seed_controller", "scenario", "seed", "controller"),)


#: 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (and the rowid)
BigId = BigInteger().with_variant(Integer(), "sqlite")


class IntersectionRecordRow(Base):
    """A stored intersection record (the ORM row; `schemas.IntersectionRecord` is the ingestion format)."""

    __tablename__ = "intersection_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    intersection_id: Mapped[str] = mapped_column(_signal_id(128))
    timestamp: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    total_vehicles_passed: Mapped[int] = mapped_column(Integer)
    # NULL: not measured (a detector-fed live run's waits, speeds, fuel and CO2; migration 0015)
    avg_wait_time_all_sides: Mapped[float | None] = mapped_column(Float)
    throughput: Mapped[float] = mapped_column(Float)
    avg_speed: Mapped[float | None] = mapped_column(Float)
    fuel_saved: Mapped[float | None] = mapped_column(Float)
    co2_saved: Mapped[float | None] = mapped_column(Float)
    emergency_overrides: Mapped[int] = mapped_column(Integer)
    # the record's approaches side by side (NULL: no signal row for it), copied from its signal rows so
    # that the edges of a time range read the records alone (`store.queries`; migration 0007)
    north_avg_wait_time: Mapped[float | None] = mapped_column(Float)
    north_vehicles_crossed: Mapped[int | None] = mapped_column(Integer)
    south_avg_wait_time: Mapped[float | None] = mapped_column(Float)
    south_vehicles_crossed: Mapped[int | None] = mapped_column(Integer)
    east_avg_wait_time: Mapped[float | None] = mapped_column(Float)
    east_vehicles_crossed: Mapped[int | None] = mapped_column(Integer)
    west_avg_wait_time: Mapped[float | None] = mapped_column(Float)
    west_vehicles_crossed: Mapped[int | None] = mapped_column(Integer)
    #: the id of the API key whose ingest wrote the row last (`insecure` under --insecure-no-auth); NULL when
    #: another writer stored it (a run, `signalwise ingest`; migration 0022)
    sent_by_key_id: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        UniqueConstraint("run_id", "intersection_id", "timestamp", name="uq_intersection_records_key"),
        Index("ix_intersection_records_timestamp", "timestamp"),
        Index("ix_intersection_records_intersection_timestamp", "intersection_id", "timestamp"),
    )


class SignalRecord(Base):
    """One direction of an intersection record; keyed by the record's integer id
    (a 4-column text key made inserts twice as slow on SQLite, measured).

    No foreign key on `record_id`: PostgreSQL checks one per inserted row,
    which cost ~15 µs per record (4 rows) of the 50 µs ingestion budget
    (measured). Ingestion writes a record and its signal rows in the same
    transaction with the id it just gave the record; deleting a record deletes
    its signal rows through a trigger (migration 0003).
    The checks are OR chains, not `IN (...)`: SQLite evaluated the IN lists
    three times slower per row (measured).
    """

    __tablename__ = "signal_records"

    record_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    # NULL: not measured (a detector sees no classes, waits or emergency vehicles; migration 0015)
    car: Mapped[int | None] = mapped_column(Integer)
    bus: Mapped[int | None] = mapped_column(Integer)
    truck: Mapped[int | None] = mapped_column(Integer)
    bike: Mapped[int | None] = mapped_column(Integer)
    rickshaw: Mapped[int | None] = mapped_column(Integer)
    emergency_vehicle_present: Mapped[bool | None] = mapped_column(Boolean)
    signal_status: Mapped[str] = mapped_column(String(8))
    signal_timer: Mapped[float] = mapped_column(Float)
    vehicles_crossed: Mapped[int | None] = mapped_column(Integer)
    avg_wait_time: Mapped[float | None] = mapped_column(Float)
    green_time_allocated: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint(DIRECTION_CHECK, name="direction"),
        CheckConstraint(STATUS_CHECK, name="signal_status"),
        {"sqlite_with_rowid": False},
    )


class RunMetric(Base):
    __tablename__ = "run_metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = ({"sqlite_with_rowid": False},)


class HiresEvent(Base):
    __tablename__ = "hires_events"

    device_id: Mapped[str] = mapped_column(_signal_id(64), primary_key=True)
    timestamp: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False), primary_key=True)
    event_code: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    parameter: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: '' for events that belong to no simulation run (imported controller logs)
    simulation_id: Mapped[str] = mapped_column(String(128), primary_key=True, server_default="")
    #: when the row was written (the database's clock): retention dates an imported log by it, as its own clock
    #: may be a simulated one (migration 0016)
    stored_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), server_default=func.current_timestamp())

    __table_args__ = (
        Index("ix_hires_events_timestamp", "timestamp"),
        Index("ix_hires_events_stored_at", "stored_at"),
        # one run's events (of a device, in a window): every simulated run is stamped on the same day, so neither
        # the key (device, timestamp, ...) nor the timestamp tells one run from another (0024)
        Index("ix_hires_events_run_device_time", "simulation_id", "device_id", "timestamp"),
        {"sqlite_with_rowid": False},
    )


class DetectorConfigRow(Base):
    """One detector of a stored run's ATSPM detector configuration (a row of the run's `detectors.csv`).

    Keyed to the run (not to its simulation id, as the hi-res events are) so that the configuration goes
    whenever its run goes: `forget_run`, `db purge`, all through the cascade. Only stored runs have one;
    imported controller logs read `SIGNALWISE_DETECTOR_CONFIG` (migration 0014, `detector_configs.py`).
    """

    __tablename__ = "detector_configs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(MAX_INTERSECTION_ID_CHARS), primary_key=True)
    phase: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the detector channel: the parameter of its events 81/82 (89/90 for a pedestrian push-button)
    parameter: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Presence, Advance, Yellow_Red or Pedestrian (as the file says it; read with the file's rules)
    function: Mapped[str] = mapped_column(String(32), primary_key=True)
    distance_to_stopbar_m: Mapped[float | None] = mapped_column(Float)
    approach_speed_mps: Mapped[float | None] = mapped_column(Float)

    __table_args__ = ({"sqlite_with_rowid": False},)


class IntersectionTotals:
    """The summed columns of an intersection roll-up (whole run or one hour).

    Sums, not means, so that chunks add up; a mean is `*_sum / records`, or for a figure a record may not
    have measured (NULL), `*_sum / *_samples`. Fuel and CO2 are NULL while no record measured them, the
    speed's minimum and maximum while none measured a speed.
    """

    records: Mapped[int] = mapped_column(Integer)
    first_timestamp: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_timestamp: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    total_vehicles_passed: Mapped[int] = mapped_column(BigInteger)
    avg_wait_time_sum: Mapped[float] = mapped_column(Float)
    throughput_sum: Mapped[float] = mapped_column(Float)
    avg_speed_sum: Mapped[float] = mapped_column(Float)
    avg_speed_min: Mapped[float | None] = mapped_column(Float)
    avg_speed_max: Mapped[float | None] = mapped_column(Float)
    fuel_saved: Mapped[float | None] = mapped_column(Float)
    co2_saved: Mapped[float | None] = mapped_column(Float)
    emergency_overrides: Mapped[int] = mapped_column(BigInteger)
    #: records with an emergency vehicle present on any approach
    intervals_with_emergency: Mapped[int] = mapped_column(Integer)
    #: records that measured `avg_wait_time_all_sides` / `avg_speed` (migration 0015)
    # last in every table, where 0015 added them (`sort_order`: a new store's columns in a migrated store's order)
    avg_wait_time_samples: Mapped[int] = mapped_column(Integer, server_default="0", sort_order=2)
    avg_speed_samples: Mapped[int] = mapped_column(Integer, server_default="0", sort_order=2)


class DirectionTotals:
    """The summed columns of a direction roll-up (whole run or one hour). `samples`: the approach's measured
    waits (signal rows whose `avg_wait_time` is not NULL), which its mean divides by."""

    samples: Mapped[int] = mapped_column(Integer)
    avg_wait_time_sum: Mapped[float] = mapped_column(Float)
    avg_wait_time_max: Mapped[float] = mapped_column(Float)
    vehicles_crossed: Mapped[int] = mapped_column(BigInteger)
    emergency_present: Mapped[int] = mapped_column(Integer)


class IntersectionRollup(IntersectionTotals, Base):
    """Totals of one intersection over one run: every un-time-filtered question reads these."""

    __tablename__ = "intersection_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    intersection_id: Mapped[str] = mapped_column(_signal_id(128), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class DirectionRollup(DirectionTotals, Base):
    """Totals of one approach of one intersection over one run."""

    __tablename__ = "direction_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    intersection_id: Mapped[str] = mapped_column(_signal_id(128), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)

    __table_args__ = (
        Index("ix_direction_rollups_intersection_direction", "intersection_id", "direction"),
        {"sqlite_with_rowid": False},
    )


#: the type of each per-approach total of a bucketed row (as `DirectionTotals`)
_APPROACH_TYPES = {"samples": Integer, "avg_wait_time_sum": Float, "avg_wait_time_max": Float,
                   "vehicles_crossed": BigInteger, "emergency_present": Integer}


def _bucketed(name: str, level: rollups.Level) -> type:
    """The table of a bucketed level (`rollups.LEVELS`): the totals of one intersection over one UTC
    bucket of one run, and five totals per approach (`rollups.APPROACH_COLUMNS`).

    Keyed (run, bucket, intersection): a time range of one run, or of every
    run with a seek per run, reads one range of the key, and there is no
    other index to keep up. No foreign key to `runs`: PostgreSQL checks one
    per new row; deleting a run deletes its buckets through a trigger (0006).
    """
    # after the totals, where 0006 put them
    approaches = {f"{d}_{c}": mapped_column(kind, nullable=False, sort_order=1)
                  for d in DIRECTIONS for c, kind in _APPROACH_TYPES.items()}
    return type(name, (IntersectionTotals, Base), {
        "__tablename__": level.table, "__doc__": f"Totals per {level.width // 60}-minute bucket.",
        "__table_args__": (PrimaryKeyConstraint("run_id", "bucket", "intersection_id"), {"sqlite_with_rowid": False}),
        "run_id": mapped_column(Integer), "intersection_id": mapped_column(_signal_id(128)),
        "bucket": mapped_column(UtcDateTime()), **approaches})


#: one table per bucketed level, coarsest first
BUCKET_TABLES = tuple(_bucketed(f"BucketRollup{level.width // 60}Min", level) for level in rollups.LEVELS)


# -- the live runtime (`runtime/live/`, written by `store/live.py`; migration 0008) --------------------------

ALERT_LEVELS = ("info", "warning", "error", "critical")
CHANGE_RESULTS = ("applied", "refused")


class Alert(Base):
    """An alert of a live run (`runtime/live/alerts.py`): raised once, cleared once, acknowledged by someone.

    Keyed by the alert's own id, so writing the alert again (when it clears, when it is acknowledged, a
    retry after a database outage) updates its one row. No foreign key to `runs`: a live run's alerts are
    written whether or not the run was registered. `*_at` are wall-clock instants, `*_at_s` the loop's clock.
    """

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    simulation_id: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(200))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    raised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    raised_at_s: Mapped[float | None] = mapped_column(Float)
    cleared_at_s: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(String())
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: what the figure counted at the raise (the signals whose data were stale, ...), a JSON list (migration 0015)
    subjects: Mapped[list | None] = mapped_column(JSON)
    #: why it cleared (`stale_sources = 0, no longer > 0`, `acknowledged by ops`, its rule removed)
    cleared_reason: Mapped[str | None] = mapped_column(String())

    __table_args__ = (
        CheckConstraint(" OR ".join(f"level = '{v}'" for v in ALERT_LEVELS), name="level"),
        Index("ix_alerts_simulation_id_raised_at", "simulation_id", "raised_at"),
    )


class RuntimeChange(Base):
    """A change made to a live run (`runtime/live/changes.py`): who, when, what, applied or refused and why.

    `change_key` is given when the change is handed to the writer, so a retried write stores it once.
    `payload` is the change as JSON text.
    """

    __tablename__ = "runtime_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    change_key: Mapped[str] = mapped_column(String(32), unique=True)
    simulation_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    sim_time_s: Mapped[float | None] = mapped_column(Float)
    who: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(String())
    result: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String())

    __table_args__ = (
        CheckConstraint(" OR ".join(f"result = '{v}'" for v in CHANGE_RESULTS), name="result"),
        Index("ix_runtime_changes_simulation_id_at", "simulation_id", "at"),
    )


class ApiKey(Base):
    """An API key (`store/keys.py`): its public id, name, scopes, and the SHA-256 of the whole key.

    The key itself is shown once, when it is created, and never stored. Who created and who revoked it (a key's
    name and id, or `cli:<user>` for the command line; migration 0017) are NULL for keys stored before 0017.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_by_key_id: Mapped[str | None] = mapped_column(String(16))
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoked_by_key_id: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_api_keys_name", "name"),)


# -- the model registry (`model_registry.py`; migration 0010) -----------------------------------------------

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class ModelBlob(Base):
    """One model file's bytes, keyed by their SHA-256: a file shared by versions is stored once."""

    __tablename__ = "model_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ModelVersionRow(Base):
    """A registered model version (`v3`): what it was trained for, and its metadata as registered.

    A registered model never changes: the row is updated only to record its
    removal (`removed_at`, `removed_by`), which deletes its files but keeps the
    row, so the history still names it and the name is never given again.
    `content_sha256` is the SHA-256 of its file list (names and their hashes):
    the files exactly, `meta.json` with its times and evaluations included.
    `model_id` is the model's identity (`provenance.model_id`: what decides its
    behaviour, its tables or policy and the options its controller reads), the
    same for the same weights however often they were trained, evaluated or
    registered; NULL for versions registered before it was kept (migration
    0021), whose id the registry works out when it reads them.
    """

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(16), unique=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    scenario: Mapped[str] = mapped_column(String(200))
    intersections: Mapped[list] = mapped_column(JSON)  # the intersection ids it has a table for
    layouts: Mapped[dict] = mapped_column(JSON)  # intersection id -> layout fingerprint
    episodes: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict] = mapped_column(JSON)  # the model's meta.json
    source: Mapped[str] = mapped_column(String(1000))  # the directory (or training job) it came from
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    registered_by: Mapped[str] = mapped_column(String(128))
    removed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    removed_by: Mapped[str | None] = mapped_column(String(128))
    model_id: Mapped[str | None] = mapped_column(String(64))  # added by 0021: the columns' order is the migrations'

    __table_args__ = (Index("ix_model_versions_content_sha256", "content_sha256"),
                      Index("ix_model_versions_model_id", "model_id"))


class ModelFile(Base):
    """A file of a version's artifact directory (`meta.json`, `q-C.npy`, ...) and the blob with its bytes."""

    __tablename__ = "model_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("model_blobs.sha256"))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class ModelDeployment(Base):
    """A version made active at one intersection, by whom and when; and its rollback, if it was rolled back.

    The active version of an intersection is its newest deployment not rolled
    back; rolling back marks that row, so the one before it is active again
    (a stack), and every row stays as the history.
    """

    __tablename__ = "model_deployments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    intersection_id: Mapped[str] = mapped_column(_signal_id(128))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    deployed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    deployed_by: Mapped[str] = mapped_column(String(128))
    rolled_back_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    rolled_back_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_model_deployments_intersection_id", "intersection_id", "id"),)


class TrainingJob(Base):
    """A training started through the API (`jobs.py`), run by a worker process; progress and outcome.

    `heartbeat_at` is renewed by the worker while it lives; a queued or
    running job whose worker is gone is marked failed when next read.
    """

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict] = mapped_column(JSON)  # what was asked (scenario, episodes, ...)
    episodes_total: Mapped[int] = mapped_column(Integer)
    episodes_done: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    out_dir: Mapped[str] = mapped_column(String(1000))
    model_version: Mapped[str | None] = mapped_column(String(16))
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String())

    __table_args__ = (
        CheckConstraint(" OR ".join(f"state = '{v}'" for v in JOB_STATES), name="state"),
        Index("ix_training_jobs_created_at", "created_at"),
    )


class SubmittedMetric(Base):
    """Performance of one intersection over one interval, measured elsewhere and sent to the API.

    Keyed (intersection, interval start, source): the same source sending the
    same interval again replaces its figures.
    """

    __tablename__ = "ml_metrics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    intersection_id: Mapped[str] = mapped_column(_signal_id(128))
    interval_start: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    interval_s: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(128))
    controller: Mapped[str] = mapped_column(String(500))
    model_version: Mapped[str | None] = mapped_column(String(16))
    delay_s_per_veh: Mapped[float | None] = mapped_column(Float)
    queue_veh: Mapped[float | None] = mapped_column(Float)
    throughput_veh_per_h: Mapped[float | None] = mapped_column(Float)
    submitted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    submitted_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("intersection_id", "interval_start", "source", name="uq_ml_metrics_key"),
        Index("ix_ml_metrics_intersection_id_interval_start", "intersection_id", "interval_start"),
    )


# -- camera violations (issue 17) ---------------------------------------------------------------------------
VIOLATION_KINDS = ("red_light", "speeding")
#: what makes a stored violation one: the same call from the same footage is never two rows
VIOLATION_IDENTITY = ("source", "camera_id", "kind", "track_id", "frame")
#: the roll-ups' key for "every camera" / "every approach", so a network-wide trend reads a few rows
ALL = "*"


class ViolationRow(Base):
    """A red-light or speeding violation seen by a camera (`store/violations.py`), with its track.

    `evidence_path` is the annotated JPEG on the server's disk (absolute), emptied when retention removes
    the image; reading it needs the `evidence` scope and every read is logged (`EvidenceAccess`);
    `evidence_sha256` is the image's digest when the row was stored, checked before it is served.

    Where it came from (revision 0018; NULL on rows stored before it): `source`, the footage's identity
    (`sha256:<hex>` of a video file, `stream:<id>@<start>` of a stream), `source_name` (the file's name or the
    stream), `frame` (the frame the call was made on, from 0), `video_s` (the violation's time in the video),
    `signal_log_s` (that time on the signal log's clock), `red_for_s` (how long the light had been red at the
    front's crossing), `time_assumed` (`occurred_at` was taken from the processing machine's clock, not the
    camera's). One violation is stored once: (`source`, `camera_id`, `kind`, `track_id`, `frame`) is unique.

    What it was judged with (revision 0019; NULL on rows stored before it): `judged_with`, {"camera_file": {"path",
    "sha256"}, "signals_file": {"path", "sha256"} or null, "signalwise_version", "calibration_suspect": [why the
    run's own checks said the calibration was wrong, when it was stored anyway; [] when they passed]}.
    """

    __tablename__ = "violations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    camera_id: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[str] = mapped_column(_signal_id(128))
    approach: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    track_id: Mapped[int] = mapped_column(BigInteger)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    limit_mps: Mapped[float | None] = mapped_column(Float)
    stop_line: Mapped[str | None] = mapped_column(String(128))
    signal_state: Mapped[str | None] = mapped_column(String(64))
    evidence_path: Mapped[str | None] = mapped_column(String(1024))
    track: Mapped[list | None] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(String(128))
    source_name: Mapped[str | None] = mapped_column(String(256))
    frame: Mapped[int | None] = mapped_column(BigInteger)
    video_s: Mapped[float | None] = mapped_column(Float)
    signal_log_s: Mapped[float | None] = mapped_column(Float)
    red_for_s: Mapped[float | None] = mapped_column(Float)
    time_assumed: Mapped[bool | None] = mapped_column(Boolean)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    judged_with: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # None: SQL NULL, not JSON null

    __table_args__ = (
        CheckConstraint(" OR ".join(f"kind = '{k}'" for k in VIOLATION_KINDS), name="kind"),
        Index("ix_violations_occurred_at", "occurred_at"),
        Index("ix_violations_camera_id_occurred_at", "camera_id", "occurred_at"),
        Index("uq_violations_identity", *VIOLATION_IDENTITY, unique=True),
        {"sqlite_autoincrement": True},  # an id is never given again (0018): the evidence access log names them
    )


class _ViolationCounts:
    """Violations per bucket, camera, approach and kind; `ALL` rows hold the totals over cameras/approaches."""

    camera_id: Mapped[str] = mapped_column(String(128))
    approach: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger)


class ViolationCountsHourly(_ViolationCounts, Base):
    __tablename__ = "violation_counts_hourly"
    bucket: Mapped[dt.datetime] = mapped_column(UtcDateTime(), sort_order=1)  # last, as 0011 made it
    __table_args__ = (PrimaryKeyConstraint("camera_id", "approach", "kind", "bucket"),
                      Index("ix_violation_counts_hourly_bucket", "bucket"))


class ViolationCountsDaily(_ViolationCounts, Base):
    __tablename__ = "violation_counts_daily"
    bucket: Mapped[dt.datetime] = mapped_column(UtcDateTime(), sort_order=1)  # last, as 0011 made it
    __table_args__ = (PrimaryKeyConstraint("camera_id", "approach", "kind", "bucket"),
                      Index("ix_violation_counts_daily_bucket", "bucket"))


class EvidenceAccess(Base):
    """One read of a violation's evidence image: who, when, which, and what they got."""

    __tablename__ = "evidence_access"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    who: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(16))
    violation_id: Mapped[int] = mapped_column(BigInteger)
    client: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))  # served | gone | unknown | refused (no `evidence` scope) | unverified | tampered

    __table_args__ = (Index("ix_evidence_access_at", "at"), Index("ix_evidence_access_violation_id", "violation_id"))


# -- triggers (0003, 0006, 0023): what a new store made from these tables gets besides them ----------------------------
# SQLite's signal rows and every database's buckets have no foreign key to what owns them (a key is checked per new
# row), so deleting a record or a run deletes them through a trigger. The migrations that made them keep their own
# text: they are history, these are the schema as it stands; the schema test holds the two alike.

_BUCKETS = tuple(level.table for level in rollups.LEVELS)
TRIGGERS = {
    "postgresql": (
        # the tables are named in the schema of the table the trigger fires on (0023), never through the search path
        # of whoever deletes: a store's delete must not reach another store's tables in the same database
        "CREATE OR REPLACE FUNCTION signal_records_follow_records() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN EXECUTE 'DELETE FROM ' || quote_ident(TG_TABLE_SCHEMA) || "
        "'.signal_records s USING gone g WHERE s.record_id = g.id'; RETURN NULL; END $$",
        "CREATE TRIGGER intersection_records_delete_signals AFTER DELETE ON intersection_records "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION signal_records_follow_records()",
        "CREATE OR REPLACE FUNCTION bucketed_rollups_follow_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        + " ".join(f"EXECUTE 'DELETE FROM ' || quote_ident(TG_TABLE_SCHEMA) || '.{t} x USING gone g "
                   "WHERE x.run_id = g.id';" for t in _BUCKETS)
        + " RETURN NULL; END $$",
        "CREATE TRIGGER runs_delete_bucketed_rollups AFTER DELETE ON runs "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION bucketed_rollups_follow_runs()",
    ),
    "sqlite": (
        "CREATE TRIGGER intersection_records_delete_signals AFTER DELETE ON intersection_records "
        "BEGIN DELETE FROM signal_records WHERE record_id = old.id; END",
        "CREATE TRIGGER runs_delete_bucketed_rollups AFTER DELETE ON runs BEGIN "
        + " ".join(f"DELETE FROM {t} WHERE run_id = old.id;" for t in _BUCKETS) + " END",
    ),
}
for _dialect, _statements in TRIGGERS.items():
    for _statement in _statements:
        event.listen(Base.metadata, "after_create", DDL(_statement).execute_if(dialect=_dialect))
