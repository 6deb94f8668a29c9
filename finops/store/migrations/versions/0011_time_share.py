"""GPUs shared by time-slicing (docs/definitions.md 6.2): `time_share`, the share of a physical GPU's
hour a workload holds when several pods share it, measured from each pod's busy values.

`gpu_hours` gets the measure, `gpu_daily` the key (a workload's hours of one share are one rollup
row, as a MIG instance's are), `attr_gpu` the copy. NULL (a GPU not shared) on every row landed
before: nothing is rebuilt.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Table -> its index on the time column (DuckDB drops no column from an indexed table).
TABLES = {"gpu_hours": ("gpu_hours_hour", "hour_start"), "gpu_daily": ("gpu_daily_day", "day"),
          "attr_gpu": ("attr_gpu_day", "day")}


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN time_share DOUBLE")


def downgrade() -> None:
    for table, (index, column) in TABLES.items():
        op.execute(f"DROP INDEX {index}")
        op.execute(f"ALTER TABLE {table} DROP COLUMN time_share")
        op.execute(f"CREATE INDEX {index} ON {table} ({column})")
