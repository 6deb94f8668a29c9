"""Initial schema: the run ledger, cost/GPU/token/inventory facts, quarantine and the cost rollup.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Money is DECIMAL(38,12): exact, 26 integer digits, and sub-cent precision for unit prices.
MONEY = "DECIMAL(38,12)"
DIMS = "project VARCHAR, team VARCHAR, environment VARCHAR, model_id VARCHAR"

STATEMENTS = [
    "CREATE SEQUENCE source_runs_id_seq START 1",
    """CREATE TABLE source_runs (
        run_id BIGINT PRIMARY KEY DEFAULT nextval('source_runs_id_seq'),
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        window_start TIMESTAMP,
        window_end TIMESTAMP,
        status VARCHAR NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        rows BIGINT NOT NULL DEFAULT 0,
        quarantined BIGINT NOT NULL DEFAULT 0,
        requests INTEGER NOT NULL DEFAULT 0,
        error VARCHAR,
        details VARCHAR,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP
    )""",
    f"""CREATE TABLE cost_lines (
        run_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        charge_period_start TIMESTAMP NOT NULL,
        charge_period_end TIMESTAMP NOT NULL,
        charge_date DATE NOT NULL,
        provider_name VARCHAR NOT NULL,
        billing_account_id VARCHAR,
        sub_account_id VARCHAR,
        service_name VARCHAR,
        service_category VARCHAR,
        region_id VARCHAR,
        resource_id VARCHAR,
        resource_key VARCHAR,
        resource_type VARCHAR,
        sku_id VARCHAR,
        charge_category VARCHAR,
        pricing_category VARCHAR,
        commitment_discount_id VARCHAR,
        billed_cost {MONEY} NOT NULL,
        effective_cost {MONEY} NOT NULL,
        list_cost {MONEY},
        billing_currency VARCHAR NOT NULL,
        estimated BOOLEAN NOT NULL DEFAULT false,
        tags VARCHAR,
        {DIMS}
    )""",
    "CREATE INDEX cost_lines_scope ON cost_lines (source, scope)",
    f"""CREATE TABLE cost_daily (
        charge_date DATE NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        provider_name VARCHAR NOT NULL,
        billing_account_id VARCHAR,
        sub_account_id VARCHAR,
        service_name VARCHAR,
        service_category VARCHAR,
        region_id VARCHAR,
        resource_id VARCHAR,
        resource_key VARCHAR,
        resource_type VARCHAR,
        charge_category VARCHAR,
        pricing_category VARCHAR,
        billing_currency VARCHAR NOT NULL,
        {DIMS},
        billed_cost {MONEY} NOT NULL,
        effective_cost {MONEY} NOT NULL,
        list_cost {MONEY},
        committed_cost {MONEY} NOT NULL,
        estimated BOOLEAN NOT NULL,
        lines BIGINT NOT NULL
    )""",
    "CREATE INDEX cost_daily_date ON cost_daily (charge_date)",
    f"""CREATE TABLE gpu_hours (
        run_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        hour_start TIMESTAMP NOT NULL,
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
        busy DOUBLE NOT NULL,
        samples INTEGER NOT NULL,
        memory_used_mib DOUBLE,
        energy_kwh DOUBLE
    )""",
    "CREATE INDEX gpu_hours_hour ON gpu_hours (hour_start)",
    f"""CREATE TABLE token_hours (
        run_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        hour_start TIMESTAMP NOT NULL,
        instance VARCHAR,
        resource_id VARCHAR,
        resource_key VARCHAR,
        namespace VARCHAR,
        pod VARCHAR,
        model_name VARCHAR,
        {DIMS},
        prompt_tokens BIGINT NOT NULL,
        generation_tokens BIGINT NOT NULL,
        requests BIGINT NOT NULL
    )""",
    "CREATE INDEX token_hours_hour ON token_hours (hour_start)",
    f"""CREATE TABLE inventory (
        run_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        observed_at TIMESTAMP NOT NULL,
        provider_name VARCHAR NOT NULL,
        resource_id VARCHAR NOT NULL,
        resource_key VARCHAR NOT NULL,
        instance_type VARCHAR,
        gpu_count INTEGER,
        host_names VARCHAR[],
        region_id VARCHAR,
        tags VARCHAR,
        {DIMS},
        valid_from TIMESTAMP,
        valid_to TIMESTAMP
    )""",
    """CREATE TABLE quarantine (
        run_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        origin VARCHAR NOT NULL,
        line BIGINT,
        reason VARCHAR NOT NULL,
        raw VARCHAR
    )""",
]

TABLES = ["quarantine", "inventory", "token_hours", "gpu_hours", "cost_daily", "cost_lines", "source_runs"]


def upgrade() -> None:
    for sql in STATEMENTS:
        op.execute(sql)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP SEQUENCE source_runs_id_seq")
