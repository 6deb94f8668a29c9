"""vLLM V1's signals beside the token counts: cached prompt tokens, prefill and decode time, sleep.

Each column is NULL where the server does not expose the series (older vLLM, the metering gateway),
so "none cached" (0) and "not known" (NULL) stay apart. Times are whole milliseconds, so their sums
are exact; `asleep_hours` is the share of the hour's scrapes that found the engine asleep.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (("cached_prompt_tokens", "BIGINT"), ("prefill_ms", "BIGINT"), ("decode_ms", "BIGINT"),
           ("asleep_hours", "DOUBLE"))
# Table -> its index on the time column (DuckDB drops no column from an indexed table).
TABLES = {"token_hours": ("token_hours_hour", "hour_start"), "token_daily": ("token_daily_day", "day")}


def upgrade() -> None:
    for table in TABLES:
        for name, kind in COLUMNS:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def downgrade() -> None:
    for table, (index, column) in TABLES.items():
        op.execute(f"DROP INDEX {index}")
        for name, _ in COLUMNS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
        op.execute(f"CREATE INDEX {index} ON {table} ({column})")
