"""The store: schema, migrations, ingestion and the hi-res event log.

SQLite by default (`signalwise.db` in the working directory), PostgreSQL
through `SIGNALWISE_DATABASE_URL` or an explicit URL. Everything else in
signalwise reaches the database through these functions.
"""

from signalwise._lazy import lazy_names

#: public name -> the module that defines it. Imported on first use (PEP 562), so that a validation
#: worker process importing `signalwise.store.pipeline` does not load SQLAlchemy and the rest of the
#: store (~45 MB per process, measured)
_HOMES = {
    **dict.fromkeys(("create_store_engine", "current_revision", "database_kind", "database_url",
                     "dispose_engines", "get_engine", "head_revision", "revisions", "upgrade"), ".engine"),
    **dict.fromkeys(("EventRow", "bulk_insert_events", "count_events", "query_events"), ".events"),
    **dict.fromkeys(("detector_config_rows", "store_detector_config"), ".detector_configs"),
    **dict.fromkeys(("RecordError", "SimulationIdTaken", "ingest_records", "iter_jsonl", "register_run", "forget_run",
                     "validate_record", "write_run_metrics"), ".ingest"),
    **dict.fromkeys(("IntersectionMetricsIn", "IntersectionRecord", "SignalRecordIn", "VehicleCounts"), ".schemas"),
    "Settings": ".settings",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)


__all__ = [
    "EventRow",
    "IntersectionMetricsIn",
    "IntersectionRecord",
    "RecordError",
    "SignalRecordIn",
    "SimulationIdTaken",
    "VehicleCounts",
    "Settings",
    "bulk_insert_events",
    "count_events",
    "create_store_engine",
    "current_revision",
    "database_kind",
    "database_url",
    "detector_config_rows",
    "dispose_engines",
    "get_engine",
    "head_revision",
    "ingest_records",
    "iter_jsonl",
    "query_events",
    "register_run",
    "forget_run",
    "revisions",
    "store_detector_config",
    "upgrade",
    "validate_record",
    "write_run_metrics",
]
