"""Daily rollups of GPU-hours and token-hours, kept at ingest beside cost_daily.

`gpu_daily` holds one row per GPU identity, labels and UTC day, with the hours observed, the sum of
busy and the hourly busy values themselves (so an idle threshold chosen per report still counts
idle hours exactly). `token_daily` holds one row per model server, labels and day. Reports attribute
cost from these; the hourly tables are only read for hour-level views (idle streaks, peaks), so
their retention can be shorter than the rollups'.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DIMS = "project VARCHAR, team VARCHAR, environment VARCHAR, model_id VARCHAR"

# Key columns of each rollup (the hourly table's columns it groups by), shared with finops/store/load.py.
GPU_KEYS = ("source", "scope", "host", "resource_id", "resource_key", "gpu_uuid", "gpu_index", "gpu_model",
            "mig_profile", "mig_instance", "namespace", "pod", "container", "project", "team", "environment",
            "model_id")
TOKEN_KEYS = ("source", "scope", "instance", "resource_id", "resource_key", "namespace", "pod", "model_name",
              "project", "team", "environment", "model_id")

STATEMENTS = [
    f"""CREATE TABLE gpu_daily (
        day DATE NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        host VARCHAR,
        resource_id VARCHAR,
        resource_key VARCHAR,
        gpu_uuid VARCHAR NOT NULL,
        gpu_index VARCHAR,
        gpu_model VARCHAR,
        mig_profile VARCHAR,
        mig_instance VARCHAR,
        namespace VARCHAR,
        pod VARCHAR,
        container VARCHAR,
        {DIMS},
        hours INTEGER NOT NULL,
        busy_sum DOUBLE NOT NULL,
        busy_hourly DOUBLE[] NOT NULL,
        samples BIGINT NOT NULL,
        memory_used_mib_max DOUBLE,
        energy_kwh DOUBLE
    )""",
    "CREATE INDEX gpu_daily_day ON gpu_daily (day)",
    f"""CREATE TABLE token_daily (
        day DATE NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        instance VARCHAR,
        resource_id VARCHAR,
        resource_key VARCHAR,
        namespace VARCHAR,
        pod VARCHAR,
        model_name VARCHAR,
        {DIMS},
        hours INTEGER NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        generation_tokens BIGINT NOT NULL,
        requests BIGINT NOT NULL
    )""",
    "CREATE INDEX token_daily_day ON token_daily (day)",
    # Existing hourly facts get their rollups now (same SQL as the loader's refresh).
    f"""INSERT INTO gpu_daily
        SELECT CAST(hour_start AS DATE), {', '.join(GPU_KEYS)}, count(*), sum(busy),
               list(busy ORDER BY hour_start), sum(samples), max(memory_used_mib), sum(energy_kwh)
        FROM gpu_hours GROUP BY ALL""",  # noqa: S608 - column names are constants
    f"""INSERT INTO token_daily
        SELECT CAST(hour_start AS DATE), {', '.join(TOKEN_KEYS)}, count(*), sum(prompt_tokens),
               sum(generation_tokens), sum(requests)
        FROM token_hours GROUP BY ALL""",  # noqa: S608 - column names are constants
]


def upgrade() -> None:
    for sql in STATEMENTS:
        op.execute(sql)


def downgrade() -> None:
    for table in ("token_daily", "gpu_daily"):
        op.execute(f"DROP TABLE {table}")
