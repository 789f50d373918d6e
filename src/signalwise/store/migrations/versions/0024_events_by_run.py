"""an index of the hi-res events by run: (simulation_id, device_id, timestamp)

Every simulated run is stamped on the same day (`core.eventlog.DEFAULT_START`), so the key of `hires_events`
(device_id, timestamp, event_code, parameter, simulation_id) and `ix_hires_events_timestamp` find one device's
events in a window of every stored run, and each ATSPM call, `runs_with_events`, and `db forget`'s count read them
all. `ix_hires_events_run_device_time` finds one run's (of a device, in a window) alone. Built in the migration's
transaction (`CREATE INDEX`, not `CONCURRENTLY`): writes into `hires_events` wait while it builds, which on a large
store takes a while (docs/store.md, "Store size").

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_hires_events_run_device_time", "hires_events", ["simulation_id", "device_id", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_hires_events_run_device_time", table_name="hires_events")
