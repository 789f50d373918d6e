"""The store: schema, migrations, ingestion and the hi-res event log.

SQLite by default (`signalwise.db` in the working directory), PostgreSQL
through `SIGNALWISE_DATABASE_URL` or an explicit URL. Everything else in
signalwise reaches the database through these functions.
"""

from .engine import (
    create_store_engine,
    current_revision,
    database_kind,
    database_url,
    dispose_engines,
    get_engine,
    head_revision,
    revisions,
    upgrade,
)
from .events import EventRow, bulk_insert_events, count_events, query_events
from .ingest import RecordError, ingest_records, iter_jsonl, register_run, validate_record, write_run_metrics
from .schemas import IntersectionMetricsIn, IntersectionRecord, SignalRecordIn, VehicleCounts
from .settings import Settings

__all__ = [
    "EventRow",
    "IntersectionMetricsIn",
    "IntersectionRecord",
    "RecordError",
    "SignalRecordIn",
    "VehicleCounts",
    "Settings",
    "bulk_insert_events",
    "count_events",
    "create_store_engine",
    "current_revision",
    "database_kind",
    "database_url",
    "dispose_engines",
    "get_engine",
    "head_revision",
    "ingest_records",
    "iter_jsonl",
    "query_events",
    "register_run",
    "revisions",
    "upgrade",
    "validate_record",
    "write_run_metrics",
]
