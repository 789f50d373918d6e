"""Each interval record carries its approaches' wait and vehicles crossed

`intersection_records` gets `{direction}_avg_wait_time` and
`{direction}_vehicles_crossed` per approach (NULL where the record has no
signal row for it), copied from its signal rows: the edges of a time range
(under 5 minutes of records at each end) then read the records alone, not
four signal rows each (on 1,000,000 records of 50 runs, the two edges of a
range were half its query time). Filled from the stored signal rows.

Revision ID: 0007
Revises: 0006
Create Date: 2025-09-15
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# as signalwise.store.tables knows them at this revision
DIRECTIONS = ("north", "south", "east", "west")
COLUMNS = [(f"{d}_{c}", kind) for d in DIRECTIONS for c, kind in (("avg_wait_time", sa.Float),
                                                                    ("vehicles_crossed", sa.Integer))]


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("intersection_records", sa.Column(name, kind(), nullable=True))
    pivot = ", ".join(f"max(CASE WHEN s.direction = '{d}' THEN s.{c} END) AS {d}_{c}"
                      for d in DIRECTIONS for c in ("avg_wait_time", "vehicles_crossed"))
    op.execute(f"UPDATE intersection_records SET {', '.join(f'{n} = p.{n}' for n, _ in COLUMNS)} "
               f"FROM (SELECT s.record_id, {pivot} FROM signal_records s GROUP BY s.record_id) AS p "
               "WHERE p.record_id = intersection_records.id")


def downgrade() -> None:
    for name, _ in COLUMNS:
        op.drop_column("intersection_records", name)
