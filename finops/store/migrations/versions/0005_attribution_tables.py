"""Attribution kept at landing: the outcome of docs/definitions.md section 4, per UTC day, in tables.

Every landing re-attributes the days it touched, in its own transaction (finops/attribution/
materialize.py), so a report is one aggregation over these tables instead of a run of attribution.
Amounts are in the line's billing currency, for both cost bases; the idle threshold is applied when
a report reads (`busy_hourly`, `busy`), so only the shared-cost key is a materialised policy.

- `attr_line`: one row per daily cost rollup row, with the amounts that telemetry and the shared
  split recover for it.
- `attr_alloc`: the pieces of each line (line x group x step), exact to 12 places.
- `attr_tok`, `attr_gpu`: telemetry with its dims; GPU-days with the cost of each of their
  GPU-hours. Hourly GPU rows find their GPU-day through `gkey`, the hash of the daily rollup's key
  (not stored per hour: a restated bill would rewrite every hour of its days).
- `attr_state`: the policy the tables hold, whether every day is attributed under it (false until
  `finops attribution rebuild` has run over a store that held data before this revision), where a
  rebuild resumes, and the next free line id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DIMS = "project VARCHAR, team VARCHAR, environment VARCHAR, model_id VARCHAR"
MONEY = "DECIMAL(38,12)"
GPU = f"""rkey VARCHAR, host VARCHAR, gpu_uuid VARCHAR NOT NULL, mig_instance VARCHAR, gpu_model VARCHAR,
        mig_profile VARCHAR, namespace VARCHAR, pod VARCHAR, {DIMS},
        hour_cost_effective {MONEY} NOT NULL, hour_cost_billed {MONEY} NOT NULL"""

STATEMENTS = [
    f"""CREATE TABLE attr_line (
        line_id BIGINT NOT NULL,
        day DATE NOT NULL,
        provider_name VARCHAR,
        billing_account_id VARCHAR,
        sub_account_id VARCHAR,
        service_name VARCHAR,
        region_id VARCHAR,
        resource_id VARCHAR,
        resource_key VARCHAR,
        resource_type VARCHAR,
        charge_category VARCHAR,
        pricing_category VARCHAR,
        billing_currency VARCHAR NOT NULL,
        {DIMS},
        cost_effective {MONEY} NOT NULL,
        cost_billed {MONEY} NOT NULL,
        list_cost {MONEY},
        committed_cost {MONEY},
        recoverable_effective {MONEY} NOT NULL,
        recoverable_billed {MONEY} NOT NULL
    )""",
    "CREATE INDEX attr_line_day ON attr_line (day)",
    f"""CREATE TABLE attr_alloc (
        line_id BIGINT NOT NULL,
        day DATE NOT NULL,
        {DIMS},
        step VARCHAR NOT NULL,
        amount_effective {MONEY} NOT NULL,
        amount_billed {MONEY} NOT NULL,
        list_amount {MONEY},
        committed_amount {MONEY}
    )""",
    "CREATE INDEX attr_alloc_day ON attr_alloc (day)",
    f"""CREATE TABLE attr_tok (
        day DATE NOT NULL,
        rkey VARCHAR,
        namespace VARCHAR,
        pod VARCHAR,
        model_name VARCHAR,
        {DIMS},
        prompt_tokens BIGINT NOT NULL,
        generation_tokens BIGINT NOT NULL,
        requests BIGINT NOT NULL
    )""",
    "CREATE INDEX attr_tok_day ON attr_tok (day)",
    f"""CREATE TABLE attr_gpu (
        day DATE NOT NULL,
        {GPU},
        hours INTEGER NOT NULL,
        busy_sum DOUBLE NOT NULL,
        busy_hourly DOUBLE[] NOT NULL,
        samples BIGINT NOT NULL,
        gkey UBIGINT NOT NULL
    )""",
    "CREATE INDEX attr_gpu_day ON attr_gpu (day)",
    """CREATE TABLE attr_state (
        id INTEGER PRIMARY KEY,
        shared_cost_key VARCHAR NOT NULL,
        complete BOOLEAN NOT NULL,
        resume_from DATE,
        next_line_id BIGINT NOT NULL
    )""",
    # A store without facts is complete as it stands; one with facts waits for a rebuild.
    """INSERT INTO attr_state
       SELECT 1, 'gpu_hours', NOT (EXISTS (SELECT 1 FROM cost_daily) OR EXISTS (SELECT 1 FROM gpu_daily)
                                  OR EXISTS (SELECT 1 FROM token_daily)), NULL, 1""",
]

TABLES = ["attr_state", "attr_gpu", "attr_tok", "attr_alloc", "attr_line"]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table}")
