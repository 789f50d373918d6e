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
from .settings import Settings

__all__ = [
    "EventRow",
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
    "query_events",
    "revisions",
    "upgrade",
]
