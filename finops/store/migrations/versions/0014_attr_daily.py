"""Attribution per group and day (`attr_daily`), kept with the other attr_* tables, and the idle
threshold the stored attribution holds (`attr_state.idle_threshold`).

A row per day, cost basis and group of dims (and `step` 'unallocated' for cost the last step left):
the allocated cost, tokens and GPU-hours, with the GPU-hours' usage and idle cost at the stored
threshold, and `n`, the number of pieces, token rows and GPU-days summed. Unit economics and the weekly report read it instead of the allocation's pieces. Filled
here from the attr_* tables at the default threshold 0.05; nothing is rebuilt unless the service is
configured with another `idle_threshold` (`finops serve` then re-attributes at start, as after a
changed `shared_cost_key`; `finops db reattribute` does it from the command line). The SQL is the one
of finops/attribution/sql.py (DAILY_SELECT) at this revision, written out so the migration stays
as it ran.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

MONEY = "DECIMAL(38,12)"
DIMS = "project VARCHAR, team VARCHAR, environment VARCHAR, model_id VARCHAR"
COUNTS = ("prompt_tokens", "generation_tokens", "requests", "cached_prompt_tokens", "prefill_ms", "decode_ms",
          "timed_prompt", "timed_gen", "cache_known", "gpu_hours")
TIMED = "CASE WHEN prefill_ms IS NOT NULL AND decode_ms IS NOT NULL THEN {} ELSE 0 END"

FILL = """
INSERT INTO attr_daily
SELECT day, '{b}', project, team, environment, model_id, step, sum(cost), sum(prompt_tokens),
       sum(generation_tokens), sum(requests), sum(cached), sum(prefill_ms), sum(decode_ms), sum(timed_prompt),
       sum(timed_gen), sum(cache_known), sum(gpu_hours), sum(busy_sum), sum(usage_cost), sum(idle_cost), count(*)
FROM (
    SELECT day, project, team, environment, model_id, CASE WHEN step = 'unallocated' THEN step END AS step,
           amount_{b} AS cost, 0 AS prompt_tokens, 0 AS generation_tokens, 0 AS requests,
           CAST(NULL AS BIGINT) AS cached, 0 AS prefill_ms, 0 AS decode_ms, 0 AS timed_prompt, 0 AS timed_gen,
           0 AS cache_known, 0 AS gpu_hours, CAST(0 AS DECIMAL(38,12)) AS busy_sum,
           CAST(0 AS DECIMAL(38,24)) AS usage_cost, CAST(0 AS DECIMAL(38,12)) AS idle_cost
    FROM attr_alloc
    UNION ALL
    SELECT day, project, team, environment, model_id, NULL, 0, prompt_tokens, generation_tokens, requests,
           cached_prompt_tokens, {tp}, {td}, {tpt}, {tgt},
           CASE WHEN cached_prompt_tokens IS NOT NULL THEN prompt_tokens ELSE 0 END, 0, 0, 0, 0
    FROM attr_tok
    UNION ALL
    SELECT day, project, team, environment, model_id, NULL, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0, hours,
           CAST(busy_sum AS DECIMAL(38,12)), hour_cost_{b} * CAST(busy_sum AS DECIMAL(38,12)),
           hour_cost_{b} * len(list_filter(busy_hourly, lambda x: x < 0.05))
    FROM attr_gpu
) GROUP BY ALL
"""


def upgrade() -> None:
    counts = ", ".join(f"{c} HUGEINT" for c in COUNTS)
    op.execute(f"""CREATE TABLE attr_daily (
        day DATE NOT NULL, basis VARCHAR NOT NULL, {DIMS}, step VARCHAR, cost {MONEY} NOT NULL, {counts},
        busy_sum {MONEY}, usage_cost DECIMAL(38,24), idle_cost {MONEY}, n BIGINT NOT NULL
    )""")
    op.execute("CREATE INDEX attr_daily_day ON attr_daily (day)")
    op.execute("ALTER TABLE attr_state ADD COLUMN idle_threshold DOUBLE NOT NULL DEFAULT 0.05")
    for basis in ("effective", "billed"):
        op.execute(FILL.format(b=basis, tp=TIMED.format("prefill_ms"), td=TIMED.format("decode_ms"),
                               tpt=TIMED.format("prompt_tokens"), tgt=TIMED.format("generation_tokens")))


def downgrade() -> None:
    op.execute("DROP TABLE attr_daily")
    op.execute("ALTER TABLE attr_state DROP COLUMN idle_threshold")
