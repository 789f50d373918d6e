"""signal ids as long as SUMO makes them

SUMO names a joined signal after its junctions (RESCO's ingolstadt7 has one of
166 characters, an OSM import's clusters run longer), and the columns that hold
a signal's id took 64 (hi-res events) or 128 characters: PostgreSQL refused
such a signal's events and records. They take MAX_INTERSECTION_ID_CHARS on
PostgreSQL. SQLite never enforces a declared length, so its tables keep their
declaration and are not rebuilt (`tables._signal_id`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from signalwise.core.names import MAX_INTERSECTION_ID_CHARS

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: (table, column, the length it had)
SIGNAL_ID_COLUMNS = (
    ("intersection_records", "intersection_id", 128), ("hires_events", "device_id", 64),
    ("intersection_rollups", "intersection_id", 128), ("direction_rollups", "intersection_id", 128),
    ("bucket_rollups_1h", "intersection_id", 128), ("bucket_rollups_15min", "intersection_id", 128),
    ("bucket_rollups_5min", "intersection_id", 128), ("model_deployments", "intersection_id", 128),
    ("ml_metrics", "intersection_id", 128), ("violations", "device_id", 128),
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column, had in SIGNAL_ID_COLUMNS:
        op.alter_column(table, column, type_=sa.String(MAX_INTERSECTION_ID_CHARS), existing_type=sa.String(had),
                        existing_nullable=False)


def downgrade() -> None:
    """Back to the old lengths; refused by PostgreSQL while a longer id is stored (nothing is cut short)."""
    if op.get_context().dialect.name != "postgresql":
        return
    for table, column, had in SIGNAL_ID_COLUMNS:
        op.alter_column(table, column, type_=sa.String(had), existing_type=sa.String(MAX_INTERSECTION_ID_CHARS),
                        existing_nullable=False)
