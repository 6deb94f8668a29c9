"""The hour of each hourly busy value a GPU-day keeps: `hour_of_day` (0-23) beside `busy_hourly`.

With it, a GPU-day's row holds its hours, not only their values, so reports that need GPU-hours
(idle streaks, peaks) read them from the daily rows and their stored attribution instead of joining
the hourly table (docs/performance.md), and they keep working after retention trims hourly detail.

`gpu_daily` takes it from the hourly rows still held; `attr_gpu` from its GPU-day in `gpu_daily`
(by the key hash it stores). A day whose hourly detail retention already trimmed stays NULL: reports
read no hours for it, as before. Nothing is rebuilt.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Table -> its index on the time column (DuckDB drops no column from an indexed table).
TABLES = {"gpu_daily": ("gpu_daily_day", "day"), "attr_gpu": ("attr_gpu_day", "day")}

# gpu_daily's key columns (migrations 0003 and 0011), and the key hash attr_gpu stores (`gkey`):
# without `time_share` for a GPU not shared by time-slicing, so keys from before 0011 stay valid.
KEYS = ("source", "scope", "host", "resource_id", "resource_key", "gpu_uuid", "gpu_index", "gpu_model",
        "mig_profile", "mig_instance", "namespace", "pod", "container", "project", "team", "environment",
        "model_id")
_HASH = "hash(" + ", ".join(f"g.{k}" for k in KEYS) + "{extra})"
GKEY = f"CASE WHEN g.time_share IS NULL THEN {_HASH.format(extra='')} ELSE {_HASH.format(extra=', g.time_share')} END"
SAME = " AND ".join(f"h.{k} IS NOT DISTINCT FROM g.{k}" for k in (*KEYS, "time_share"))

STATEMENTS = [
    "ALTER TABLE gpu_daily ADD COLUMN hour_of_day TINYINT[]",
    f"""UPDATE gpu_daily g SET hour_of_day = h.hour_of_day
        FROM (SELECT CAST(hour_start AS DATE) AS day, {', '.join(KEYS)}, time_share,
                     list(CAST(hour(hour_start) AS TINYINT) ORDER BY hour_start) AS hour_of_day
              FROM gpu_hours GROUP BY ALL) h
        WHERE h.day = g.day AND {SAME}""",  # noqa: S608 - column names are constants
    "ALTER TABLE attr_gpu ADD COLUMN hour_of_day TINYINT[]",
    f"""UPDATE attr_gpu a SET hour_of_day = d.hour_of_day
        FROM (SELECT g.day, {GKEY} AS gkey, g.hour_of_day FROM gpu_daily g WHERE g.hour_of_day IS NOT NULL) d
        WHERE d.day = a.day AND d.gkey = a.gkey""",  # noqa: S608 - column names are constants
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table, (index, column) in TABLES.items():
        op.execute(f"DROP INDEX {index}")
        op.execute(f"ALTER TABLE {table} DROP COLUMN hour_of_day")
        op.execute(f"CREATE INDEX {index} ON {table} ({column})")
