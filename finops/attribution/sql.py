"""The SQL of attribution (docs/definitions.md section 4), one temp table per stage, read top to bottom.

Every statement takes its inputs as bound parameters ($start, $end, ...) and the names of columns
from constants in this file only; nothing a user typed is formatted into SQL.
"""

from finops.store.load import GPU_KEYS
from finops.tags import DIMS

ALL_KEYED = " AND ".join(f"{{a}}.{d} IS NOT NULL" for d in DIMS)


def all_keyed(alias: str) -> str:
    return ALL_KEYED.format(a=alias)


# 1. Cost lines of the window in the report currency, one row per daily rollup row.
# An amount in the report currency, rounded to 12 places; at rate 1 (most lines) no multiplication.
_CONVERT = "CASE WHEN r.rate = 1 THEN {v} ELSE CAST({v} * r.rate AS DECIMAL(38,12)) END"
_COST = f"""
CREATE OR REPLACE TEMP TABLE att_cost AS
SELECT $line_id AS line_id,
       charge_date AS day, provider_name, billing_account_id, sub_account_id, service_name, region_id,
       resource_id, resource_key, resource_type, charge_category, pricing_category, billing_currency,
       project, team, environment, model_id,
       {_CONVERT.format(v="CASE WHEN $basis = 'billed' THEN billed_cost ELSE effective_cost END")} AS cost,
       {_CONVERT.format(v="effective_cost")} AS cost_effective,
       {_CONVERT.format(v="billed_cost")} AS cost_billed,
       {_CONVERT.format(v="coalesce(list_cost, effective_cost)")} AS list_cost,
       {_CONVERT.format(v="committed_cost")} AS committed_cost
FROM cost_daily JOIN att_rates r ON r.currency = cost_daily.billing_currency
WHERE charge_date >= $start AND charge_date < $end
"""  # noqa: S608 - built from this module's constants only
# A line's id is any number unique among the window's lines: no amount depends on it. The stored
# attribution numbers lines by the rollup's row id (a parallel scan; ids start at 1); elsewhere, where
# the rollup may be a view without row ids (a lake replica), by row_number(), a single-threaded pass.
COST = _COST.replace("$line_id", "row_number() OVER ()")
COST_BY_ROWID = _COST.replace("$line_id", "cost_daily.rowid + 1")

# Host names and dims known from the inventory, by resource.
INVENTORY = """
CREATE OR REPLACE TEMP TABLE att_inv AS
SELECT resource_key, max(project) AS project, max(team) AS team, max(environment) AS environment,
       max(model_id) AS model_id, max(instance_type) AS instance_type, max(gpu_count) AS gpu_count
FROM inventory GROUP BY resource_key;
CREATE OR REPLACE TEMP TABLE att_hosts AS
SELECT DISTINCT lower(h) AS host, resource_key FROM inventory, unnest(host_names) AS t(h) WHERE h IS NOT NULL;
"""

# Dims on the bill, per resource and day (the tags telemetry borrows for its missing dims).
BILL_TAGS = """
CREATE OR REPLACE TEMP TABLE att_bill AS
SELECT day, resource_key, max(project) AS project, max(team) AS team, max(environment) AS environment,
       max(model_id) AS model_id
FROM att_cost WHERE resource_key IS NOT NULL GROUP BY ALL
"""

# 2. Telemetry with its dims: labels first, then the billed resource's tags, then the inventory.
# Attribution works per day, so it reads the daily rollups (kept at ingest, finops/store/load.py).
TOKENS = """
CREATE OR REPLACE TEMP TABLE att_tok AS
SELECT t.day, coalesce(hm.resource_key, t.resource_key) AS rkey, t.namespace, t.pod, t.model_name,
       coalesce(t.project, b.project, i.project) AS project,
       coalesce(t.team, b.team, i.team) AS team,
       coalesce(t.environment, b.environment, i.environment) AS environment,
       coalesce(t.model_id, lower(t.model_name), b.model_id, i.model_id) AS model_id,
       t.prompt_tokens, t.generation_tokens, t.requests, t.cached_prompt_tokens, t.prefill_ms, t.decode_ms
FROM token_daily t
LEFT JOIN att_hosts hm ON hm.host = t.resource_key
LEFT JOIN att_bill b ON b.day = t.day AND b.resource_key = coalesce(hm.resource_key, t.resource_key)
LEFT JOIN att_inv i ON i.resource_key = coalesce(hm.resource_key, t.resource_key)
WHERE t.day >= $start AND t.day < $end
"""

# GPU rows with their dims: label, else the model of the same pod that day, else the single model
# of the resource that day, else the bill, else the inventory. `{src}` is the rows of the window
# (daily rollup rows, or hourly rows for reports that need hours), `{name}` the table it builds.
_GPU_DIMS = """
CREATE OR REPLACE TEMP TABLE {name} AS
SELECT g.day, g.rkey, g.host, g.gpu_uuid, g.mig_instance, g.gpu_model, g.mig_profile, g.namespace, g.pod,
       g.time_share, {measures},
       coalesce(g.project, pm.project, b.project, i.project) AS project,
       coalesce(g.team, pm.team, b.team, i.team) AS team,
       coalesce(g.environment, pm.environment, b.environment, i.environment) AS environment,
       coalesce(g.model_id, pm.model_id, rm.model_id, b.model_id, i.model_id) AS model_id
FROM ({src}) g
LEFT JOIN att_pod_model pm ON pm.day = g.day AND pm.namespace = g.namespace AND pm.pod = g.pod
LEFT JOIN att_res_model rm ON rm.day = g.day AND rm.rkey = g.rkey
LEFT JOIN att_bill b ON b.day = g.day AND b.resource_key = g.rkey
LEFT JOIN att_inv i ON i.resource_key = g.rkey;
"""

_GPU_COLUMNS = """coalesce(hm.resource_key, g.resource_key) AS rkey, g.host, g.gpu_uuid,
       coalesce(g.mig_instance, '') AS mig_instance, g.gpu_model, g.mig_profile, g.namespace, g.pod,
       g.project, g.team, g.environment, g.model_id, g.time_share"""

# A GPU-day's key (the daily rollup's key columns) hashed: how hourly rows find their GPU-day's
# dims and hour cost in the stored attribution (finops/attribution/stored.py). A GPU not shared by
# time-slicing hashes as before `time_share` existed (migration 0011), so stored keys stay valid.
_KEY_HASH = "hash(" + ", ".join(f"g.{k}" for k in GPU_KEYS if k != "time_share") + "{extra})"
GPU_KEY_HASH = (f"CASE WHEN g.time_share IS NULL THEN {_KEY_HASH.format(extra='')} "
                f"ELSE {_KEY_HASH.format(extra=', g.time_share')} END")

GPU_DAILY_ROWS = f"""
SELECT g.day, {_GPU_COLUMNS}, g.hours, g.busy_sum, g.busy_hourly, g.hour_of_day, g.samples, {GPU_KEY_HASH} AS gkey
FROM gpu_daily g LEFT JOIN att_hosts hm ON hm.host = g.resource_key
WHERE g.day >= $start AND g.day < $end
"""  # noqa: S608 - constants only

GPU = """
-- The model a pod served that day (the vLLM and DCGM series meet on namespace + pod).
CREATE OR REPLACE TEMP TABLE att_pod_model AS
SELECT day, namespace, pod, max(model_id) AS model_id, max(project) AS project, max(team) AS team,
       max(environment) AS environment
FROM att_tok WHERE pod IS NOT NULL GROUP BY ALL;
-- The model served on a resource that day, when there was exactly one.
CREATE OR REPLACE TEMP TABLE att_res_model AS
SELECT day, rkey, min(model_id) AS model_id FROM att_tok WHERE rkey IS NOT NULL
GROUP BY ALL HAVING count(DISTINCT model_id) = 1;
""" + _GPU_DIMS.format(name="att_gpu", src=GPU_DAILY_ROWS,
                        measures="g.hours, g.busy_sum, g.busy_hourly, g.hour_of_day, g.samples, g.gkey")

# The share of a physical GPU a GPU row holds: a MIG instance's compute slices (its profile's
# leading `<n>g`) over the GPU's (A30: 4; A100, H100 and later: 7), times a time-sliced workload's
# measured `time_share` of that GPU or instance; a whole GPU, 1. GPU-hours are weighted by it when a
# resource's cost is spread over them, so a 3g instance costs 3/7 of the GPU.
MIG_SLICES = (("%A30%", 4),)  # GPU model patterns with other than 7 compute slices
_SLICES = "CASE " + " ".join(f"WHEN g.gpu_model LIKE '{p}' THEN {n}" for p, n in MIG_SLICES) + " ELSE 7 END"
SHARE = ("(coalesce(TRY_CAST(nullif(regexp_extract(g.mig_profile, '^([0-9]+)g', 1), '') AS DOUBLE) / "
         f"({_SLICES}), 1.0) * coalesce(g.time_share, 1.0))")
# A GPU row's hours weighted by its share, and the weights pieces are split by, are exact decimals:
# their sums then do not depend on the order parallel threads add them, so neither do the amounts.
WEIGHT = "DECIMAL(38,18)"  # 18 places: finer than a DOUBLE ratio of them
WEIGHTED_HOURS = f"CAST(g.hours * {SHARE} AS {WEIGHT})"

# Groups seen in telemetry per resource and day, with their GPU-hours (weighted by SHARE) and generated tokens.
CANDIDATES = f"""
CREATE OR REPLACE TEMP TABLE att_cand AS
SELECT day, rkey, project, team, environment, model_id, sum(gh) AS gh, sum(gen) AS gen FROM (
    SELECT day, rkey, project, team, environment, model_id, {WEIGHTED_HOURS} AS gh, 0 AS gen FROM att_gpu g
    UNION ALL
    SELECT day, rkey, project, team, environment, model_id, 0, generation_tokens FROM att_tok
) WHERE rkey IS NOT NULL GROUP BY ALL
"""  # noqa: S608 - constants only

# Pieces: (line, group, weight, step) of the lines without all dims. Each line gets pieces from
# exactly one step; a line with all dims is one piece, itself (step own_tags), taken by ALLOC from att_cost.
PIECES = f"""
CREATE OR REPLACE TEMP TABLE att_pieces AS
WITH tele_raw AS (
    SELECT c.line_id, coalesce(c.project, k.project) AS project, coalesce(c.team, k.team) AS team,
           coalesce(c.environment, k.environment) AS environment, coalesce(c.model_id, k.model_id) AS model_id,
           k.gh, k.gen
    FROM att_cost c JOIN att_cand k ON k.day = c.day AND k.rkey = c.resource_key
    WHERE NOT ({all_keyed('c')})
),
tele_keyed AS (
    SELECT line_id, project, team, environment, model_id, sum(gh) AS gh, sum(gen) AS gen
    FROM tele_raw t WHERE {all_keyed('t')} GROUP BY ALL
),
tele AS (
    -- Split by GPU-hours; where the resource had none, by generated tokens; else evenly.
    SELECT line_id, project, team, environment, model_id,
           CAST(CASE WHEN sum(gh) OVER (PARTITION BY line_id) > 0 THEN gh
                     WHEN sum(gen) OVER (PARTITION BY line_id) > 0 THEN gen ELSE 1 END AS {WEIGHT}) AS w,
           'telemetry' AS step
    FROM tele_keyed
),
groups AS (
    -- Fully keyed groups per day, with their GPU-hours and generated tokens that day.
    SELECT day, project, team, environment, model_id, sum(gh) AS gh, sum(gen) AS gen FROM (
        SELECT day, project, team, environment, model_id, 0 AS gh, 0 AS gen FROM att_cost c WHERE {all_keyed('c')}
        UNION ALL SELECT c.day, t.project, t.team, t.environment, t.model_id, 0, 0
                  FROM tele_keyed t JOIN att_cost c USING (line_id)
        UNION ALL SELECT day, project, team, environment, model_id, {WEIGHTED_HOURS}, 0 FROM att_gpu g
                  WHERE {all_keyed('g')}
        UNION ALL SELECT day, project, team, environment, model_id, 0, generation_tokens FROM att_tok t WHERE {all_keyed('t')}
    ) GROUP BY ALL
),
unkeyed AS (
    -- Lines with some dims but not all, and no telemetry on their resource: shared across the groups
    -- that agree with every dim they have. `mask` says which dims they have (1 project, 2 team,
    -- 4 environment, 8 model).
    SELECT line_id, day, project, team, environment, model_id,
           CASE WHEN project IS NULL THEN 0 ELSE 1 END + CASE WHEN team IS NULL THEN 0 ELSE 2 END
           + CASE WHEN environment IS NULL THEN 0 ELSE 4 END + CASE WHEN model_id IS NULL THEN 0 ELSE 8 END AS mask
    FROM att_cost c
    WHERE NOT ({all_keyed('c')})
      AND coalesce(c.project, c.team, c.environment, c.model_id) IS NOT NULL
      AND c.line_id NOT IN (SELECT line_id FROM tele_keyed)
),
masked AS (
    -- Each group once per mask the lines use, with only that mask's dims kept: a line then finds
    -- its groups by equality (a hash join) instead of testing every group of its day.
    SELECT g.day, g.project, g.team, g.environment, g.model_id, g.gh, g.gen, m.mask,
           CASE WHEN m.mask & 1 = 1 THEN g.project END AS k_project,
           CASE WHEN m.mask & 2 = 2 THEN g.team END AS k_team,
           CASE WHEN m.mask & 4 = 4 THEN g.environment END AS k_environment,
           CASE WHEN m.mask & 8 = 8 THEN g.model_id END AS k_model_id
    FROM groups g CROSS JOIN (SELECT DISTINCT mask FROM unkeyed) m
),
shared_raw AS (
    -- The weights by key (PIECES_KEPT and SHARED_LANDED weigh pieces under another key the same way).
    SELECT c.line_id, g.project, g.team, g.environment, g.model_id,
           CAST(CASE $shared_key WHEN 'gpu_hours' THEN g.gh WHEN 'tokens' THEN g.gen ELSE 1 END AS {WEIGHT}) AS w
    FROM unkeyed c JOIN masked g ON g.day = c.day AND g.mask = c.mask
         AND g.k_project IS NOT DISTINCT FROM c.project AND g.k_team IS NOT DISTINCT FROM c.team
         AND g.k_environment IS NOT DISTINCT FROM c.environment AND g.k_model_id IS NOT DISTINCT FROM c.model_id
),
shared AS (
    -- When the policy's weights are all zero for a line (e.g. no GPU-hours), split it evenly.
    SELECT line_id, project, team, environment, model_id,
           CASE WHEN sum(w) OVER (PARTITION BY line_id) > 0 THEN w ELSE CAST(1 AS {WEIGHT}) END AS w, 'shared' AS step
    FROM shared_raw
),
rest AS (
    SELECT line_id, NULL AS project, NULL AS team, NULL AS environment, NULL AS model_id, CAST(1 AS {WEIGHT}) AS w,
           'unallocated' AS step
    FROM att_cost c WHERE NOT ({all_keyed('c')})
      AND line_id NOT IN (SELECT line_id FROM tele UNION ALL SELECT line_id FROM shared)
)
SELECT * FROM tele UNION ALL SELECT * FROM shared UNION ALL SELECT * FROM rest
"""  # noqa: S608 - built from this module's constants only

# The shared step's pieces under another key: which lines share with which groups does not depend on
# the key, only their weights do; so a report's window of kept shared pieces (attr_alloc),
# weighed by $shared_key from their group's GPU-hours and generated tokens that day, as PIECES weighs
# them (evenly where a line's are all zero).
_WEIGHTS = f"""weights AS (
    SELECT day, project, team, environment, model_id, sum(gh) AS gh, sum(gen) AS gen FROM (
        SELECT day, project, team, environment, model_id, {WEIGHTED_HOURS} AS gh, 0 AS gen FROM att_gpu g
        WHERE {all_keyed('g')}
        UNION ALL
        SELECT day, project, team, environment, model_id, 0, generation_tokens FROM att_tok t WHERE {all_keyed('t')}
    ) GROUP BY ALL
)"""  # noqa: S608 - constants only
_KEY_WEIGHT = ("CAST(CASE {key} WHEN 'gpu_hours' THEN coalesce(w.gh, 0) WHEN 'tokens' THEN coalesce(w.gen, 0) "
               f"ELSE 1 END AS {WEIGHT})")
_EVEN_IF_ZERO = f"CASE WHEN sum(w) OVER (PARTITION BY {{by}}) > 0 THEN w ELSE CAST(1 AS {WEIGHT}) END"
PIECES_KEPT = f"""
CREATE OR REPLACE TEMP TABLE att_pieces AS
WITH {_WEIGHTS},
weighed AS (
    SELECT a.line_id, a.project, a.team, a.environment, a.model_id, {_KEY_WEIGHT.format(key="$shared_key")} AS w
    FROM attr_alloc a LEFT JOIN weights w USING (day, project, team, environment, model_id)
    WHERE a.step = 'shared' AND a.day >= $start AND a.day < $end
)
SELECT line_id, project, team, environment, model_id, {_EVEN_IF_ZERO.format(by="line_id")} AS w, 'shared' AS step
FROM weighed
"""  # noqa: S608 - constants only

# 3. Money per piece, exact: each piece gets its rounded share; the rounding remainder goes to the
# largest piece of the line, so the pieces of a line always sum to the line's cost. Both cost bases
# are split (the stored tables keep both); `amount` is the one asked for.
_SHARE = "CASE WHEN share = 1 THEN {c} ELSE CAST({c} * share AS DECIMAL(38,12)) END"
_SPLIT = "{c}0 + CASE WHEN rank = 1 THEN {c} - sum({c}0) OVER (PARTITION BY {by}) ELSE 0 END"
_RANK = "row_number() OVER (PARTITION BY {by} ORDER BY p.w DESC, p.project, p.team, p.environment, p.model_id)"
_ALLOC = f"""
CREATE OR REPLACE TEMP TABLE {{name}} AS
WITH shares AS (
    SELECT p.*, c.day, c.cost_effective, c.cost_billed, c.list_cost, c.committed_cost,
           CAST(p.w AS DOUBLE) / CAST(sum(p.w) OVER (PARTITION BY p.line_id) AS DOUBLE) AS share,
           {_RANK.format(by="p.line_id")} AS rank
    FROM att_pieces p JOIN att_cost c USING (line_id) WHERE p.step IN ({{split}})
),
rounded AS (
    -- A whole line (one piece, most lines) keeps its amount as it is, without a round trip through DOUBLE.
    SELECT *, {_SHARE.format(c="cost_effective")} AS cost_effective0,
              {_SHARE.format(c="cost_billed")} AS cost_billed0,
              {_SHARE.format(c="list_cost")} AS list_cost0,
              {_SHARE.format(c="committed_cost")} AS committed_cost0
    FROM shares
),
split AS (
    SELECT line_id, day, project, team, environment, model_id, step,
           {_SPLIT.format(c="cost_effective", by="line_id")} AS amount_effective,
           {_SPLIT.format(c="cost_billed", by="line_id")} AS amount_billed,
           {_SPLIT.format(c="list_cost", by="line_id")} AS list_amount,
           {_SPLIT.format(c="committed_cost", by="line_id")} AS committed_amount
    FROM rounded
{{whole}})
SELECT *, CASE WHEN $basis = 'billed' THEN amount_billed ELSE amount_effective END AS amount FROM split
"""  # noqa: S608 - built from this module's constants only
# Own tags and unallocated give a line one piece, the whole line: no share to compute.
_WHOLE_LINES = f"""    UNION ALL
    SELECT line_id, day, project, team, environment, model_id, 'own_tags', cost_effective, cost_billed,
           list_cost, committed_cost
    FROM att_cost c WHERE {all_keyed('c')}
    UNION ALL
    SELECT line_id, day, NULL, NULL, NULL, NULL, 'unallocated', cost_effective, cost_billed, list_cost, committed_cost
    FROM att_cost WHERE line_id IN (SELECT line_id FROM att_pieces WHERE step = 'unallocated')
"""  # noqa: S608 - constants only
ALLOC = _ALLOC.format(name="att_alloc", split="'telemetry', 'shared'", whole=_WHOLE_LINES)
# The shared step's pieces alone (another shared-cost key over stored days: the other steps' are kept).
ALLOC_SHARED = _ALLOC.format(name="att_alloc_shared", split="'shared'", whole="")
# A landing's shared step under each key in $keys but its own, in one pass, for attr_shared (migration
# 0015): its pieces (att_alloc) weighed by each key as PIECES_KEPT weighs them, split as ALLOC splits
# them, summed per day and group (`n` pieces).
_BY_KEY = "p.shared_key, p.line_id"
SHARED_LANDED = f"""
INSERT INTO attr_shared
WITH {_WEIGHTS},
keyed AS (
    SELECT k.shared_key, a.line_id, a.day, a.project, a.team, a.environment, a.model_id,
           {_KEY_WEIGHT.format(key="k.shared_key")} AS w
    FROM att_alloc a LEFT JOIN weights w USING (day, project, team, environment, model_id)
    CROSS JOIN (SELECT unnest($keys::VARCHAR[]) AS shared_key) k
    WHERE a.step = 'shared'
),
pieces AS (
    SELECT shared_key, line_id, day, project, team, environment, model_id,
           {_EVEN_IF_ZERO.format(by="shared_key, line_id")} AS w
    FROM keyed
),
shares AS (
    SELECT p.*, c.cost_effective, c.cost_billed,
           CAST(p.w AS DOUBLE) / CAST(sum(p.w) OVER (PARTITION BY {_BY_KEY}) AS DOUBLE) AS share,
           {_RANK.format(by=_BY_KEY)} AS rank
    FROM pieces p JOIN att_cost c USING (line_id)
),
rounded AS (
    SELECT *, {_SHARE.format(c="cost_effective")} AS cost_effective0, {_SHARE.format(c="cost_billed")} AS cost_billed0
    FROM shares
),
split AS (
    SELECT day, shared_key, project, team, environment, model_id,
           {_SPLIT.format(c="cost_effective", by="shared_key, line_id")} AS amount_effective,
           {_SPLIT.format(c="cost_billed", by="shared_key, line_id")} AS amount_billed
    FROM rounded
)
SELECT day, shared_key, project, team, environment, model_id, sum(amount_effective), sum(amount_billed), count(*)
FROM split GROUP BY ALL
"""  # noqa: S608 - built from this module's constants only

# The cost lines with what telemetry and the shared split recover of each (untagged spend): a line
# they split is recovered whole (its pieces add up to it), any other line not at all.
LINES_SELECT = """
SELECT c.*, CASE WHEN r.line_id IS NULL THEN 0 ELSE c.cost_effective END AS recoverable_effective,
       CASE WHEN r.line_id IS NULL THEN 0 ELSE c.cost_billed END AS recoverable_billed,
       CASE WHEN r.line_id IS NULL THEN 0 WHEN $basis = 'billed' THEN c.cost_billed ELSE c.cost_effective END
           AS recoverable
FROM att_cost c
LEFT JOIN (SELECT DISTINCT line_id FROM att_pieces WHERE step IN ('telemetry', 'shared')) r ON r.line_id = c.line_id
"""
LINES = "CREATE OR REPLACE TEMP TABLE att_line AS" + LINES_SELECT

# Cost of each GPU-hour (docs/definitions.md 6.2): the resource's cost that day over its GPU-hours that day; for a
# GPU on no billed resource, its group's attributed cost that day over the group's GPU-hours.
# Rates and rows priced are the GPU-days (att_gpu): `hours` GPU-hours of a row, `idle_hours` of them
# below the idle threshold.
_HOUR_COST = """
CREATE OR REPLACE TEMP TABLE att_gpu_cost AS
WITH res_cost AS (
    SELECT day, resource_key AS rkey, sum(cost_effective) AS cost_effective, sum(cost_billed) AS cost_billed
    FROM att_cost WHERE resource_key IS NOT NULL GROUP BY ALL
),
res_hours AS (SELECT g.day, g.rkey, sum({hours}) AS hours FROM att_gpu g GROUP BY ALL),
grp_cost AS (
    SELECT day, project, team, environment, model_id, sum(amount_effective) AS cost_effective,
           sum(amount_billed) AS cost_billed
    FROM att_alloc GROUP BY ALL
),
grp_hours AS (
    -- GPU-hours on no resource billed that day (a day's attribution never looks at other days).
    SELECT g.day, g.project, g.team, g.environment, g.model_id, sum({hours}) AS hours FROM att_gpu g
    LEFT JOIN res_cost r ON r.day = g.day AND r.rkey = g.rkey WHERE r.rkey IS NULL GROUP BY ALL
)
SELECT g.*, {price_effective} AS hour_cost_effective, {price_billed} AS hour_cost_billed,
       CASE WHEN $basis = 'billed' THEN {price_billed} ELSE {price_effective} END AS hour_cost,
       {idle_hours} AS idle_hours
FROM att_gpu g
LEFT JOIN res_cost rc ON rc.day = g.day AND rc.rkey = g.rkey
LEFT JOIN res_hours rh ON rh.day = g.day AND rh.rkey = g.rkey
LEFT JOIN grp_cost gc ON rc.rkey IS NULL AND gc.day = g.day AND gc.project IS NOT DISTINCT FROM g.project
     AND gc.team IS NOT DISTINCT FROM g.team AND gc.environment IS NOT DISTINCT FROM g.environment
     AND gc.model_id IS NOT DISTINCT FROM g.model_id
LEFT JOIN grp_hours gh ON rc.rkey IS NULL AND gh.day = g.day AND gh.project IS NOT DISTINCT FROM g.project
     AND gh.team IS NOT DISTINCT FROM g.team AND gh.environment IS NOT DISTINCT FROM g.environment
     AND gh.model_id IS NOT DISTINCT FROM g.model_id
"""

# DuckDB divides DECIMAL as DOUBLE; spelled out so other engines (Spark) divide the same way.
_PRICE = ("CAST(CASE WHEN rc.{c} IS NOT NULL THEN CAST(rc.{c} AS DOUBLE) / CAST(rh.hours AS DOUBLE) * {share} "
          "ELSE coalesce(CAST(gc.{c} AS DOUBLE) / CAST(gh.hours AS DOUBLE) * {share}, 0) END AS DECIMAL(38,12))")
_HOUR_COST = _HOUR_COST.replace("{price_effective}", _PRICE.format(c="cost_effective", share=SHARE)).replace(
    "{price_billed}", _PRICE.format(c="cost_billed", share=SHARE)).replace("{share}", SHARE).replace(
    "{hours}", WEIGHTED_HOURS)

# GPU-days priced: idle hours counted from the day's hourly busy values, so any threshold is exact.
HOUR_COST_DAILY = _HOUR_COST.format(idle_hours="len(list_filter(g.busy_hourly, lambda x: x < $idle))")

# The same for the GPU-days on no resource billed that day only (att_gpu_unbilled): their hour cost is
# the one a shared-cost key changes, through their group's attributed cost.
HOUR_COST_UNBILLED = HOUR_COST_DAILY.replace("TEMP TABLE att_gpu_cost", "TEMP TABLE att_gpu_regrouped").replace(
    "FROM att_gpu g", "FROM att_gpu_unbilled g")

# A GPU-day's hours, one row each, from its daily row: the hours the day held (`hour_of_day`) with
# their busy values (`busy_hourly`, in the same order); `{columns}` of the GPU-day ride along. A day
# whose hours are unknown (hourly detail trimmed before migration 0012) has none.
HOURS_OF_DAYS = """SELECT {columns}, CAST(day AS TIMESTAMP) + to_hours(CAST(hour_index AS INTEGER)) AS hour_start, busy
FROM (SELECT *, unnest(hour_of_day) AS hour_index, unnest(busy_hourly) AS busy FROM {rows}
      WHERE hour_of_day IS NOT NULL)"""
_PRICED_COLUMNS = ("day, rkey, host, gpu_uuid, mig_instance, gpu_model, mig_profile, namespace, pod, time_share, "
                   "project, team, environment, model_id, hour_cost_effective, hour_cost_billed, hour_cost")
# GPU-hours priced (att_gpu_hours), for the reports that need hours (idle streaks, last busy hour,
# peaks): the priced GPU-days' hours, each at its day's hour cost. `{idle}` is the idle threshold.
GPU_HOURS_SELECT = ("SELECT *, 1 AS hours, busy AS busy_sum, CAST(busy < {idle} AS INTEGER) AS idle_hours, "  # noqa: S608
                    "busy < {idle} AS idle FROM ("
                    + HOURS_OF_DAYS.format(columns=_PRICED_COLUMNS, rows="att_gpu_cost") + ")")
GPU_HOURS = "CREATE OR REPLACE TEMP TABLE att_gpu_hours AS " + GPU_HOURS_SELECT.format(idle="$idle")

# Attribution per group and day (att_daily): the allocated cost, tokens and GPU-hours of each group
# of dims on each day, summed as exact decimals and integers so a sum of these rows equals the sum of
# the rows they come from. `step` is 'unallocated' for cost the last step left, else NULL. Unit
# economics is one aggregation of it. `{alloc}`, `{tok}`, `{gpu}` are the relations it sums; `n`
# counts their rows (a group and day exists while it has one).
_TIMED = "CASE WHEN prefill_ms IS NOT NULL AND decode_ms IS NOT NULL THEN {} ELSE 0 END"
DAILY_SELECT = f"""
SELECT day, project, team, environment, model_id, step, sum(cost) AS cost,
       sum(prompt_tokens) AS prompt_tokens, sum(generation_tokens) AS generation_tokens, sum(requests) AS requests,
       sum(cached) AS cached_prompt_tokens, sum(prefill_ms) AS prefill_ms, sum(decode_ms) AS decode_ms,
       sum(timed_prompt) AS timed_prompt, sum(timed_gen) AS timed_gen, sum(cache_known) AS cache_known,
       sum(gpu_hours) AS gpu_hours, sum(busy_sum) AS busy_sum, sum(usage_cost) AS usage_cost,
       sum(idle_cost) AS idle_cost, count(*) AS n
FROM (
    SELECT day, project, team, environment, model_id,
           CASE WHEN step = 'unallocated' THEN step END AS step, amount AS cost, 0 AS prompt_tokens,
           0 AS generation_tokens, 0 AS requests, CAST(NULL AS BIGINT) AS cached, 0 AS prefill_ms,
           0 AS decode_ms, 0 AS timed_prompt, 0 AS timed_gen, 0 AS cache_known, 0 AS gpu_hours,
           CAST(0 AS DECIMAL(38,12)) AS busy_sum, CAST(0 AS DECIMAL(38,24)) AS usage_cost,
           CAST(0 AS DECIMAL(38,12)) AS idle_cost
    FROM {{alloc}}
    UNION ALL
    SELECT day, project, team, environment, model_id, NULL, 0, prompt_tokens, generation_tokens, requests,
           cached_prompt_tokens, {_TIMED.format("prefill_ms")}, {_TIMED.format("decode_ms")},
           {_TIMED.format("prompt_tokens")}, {_TIMED.format("generation_tokens")},
           CASE WHEN cached_prompt_tokens IS NOT NULL THEN prompt_tokens ELSE 0 END, 0, 0, 0, 0
    FROM {{tok}}
    UNION ALL
    -- busy_sum is summed as exact decimals: a float sum's last bits depend on the order threads add them.
    SELECT day, project, team, environment, model_id, NULL, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0, hours,
           CAST(busy_sum AS DECIMAL(38,12)), hour_cost * CAST(busy_sum AS DECIMAL(38,12)), hour_cost * idle_hours
    FROM {{gpu}}
) GROUP BY ALL
"""  # noqa: S608 - built from this module's constants only
DAILY_MEASURES = ("cost", "prompt_tokens", "generation_tokens", "requests", "cached_prompt_tokens", "prefill_ms",
                  "decode_ms", "timed_prompt", "timed_gen", "cache_known", "gpu_hours", "busy_sum", "usage_cost",
                  "idle_cost")
DAILY = ("CREATE OR REPLACE TEMP VIEW att_daily AS "
         + DAILY_SELECT.format(alloc="att_alloc", tok="att_tok", gpu="att_gpu_cost"))

# Stages of every attribution; then GPU_HOURS for reports that need hours.
STAGES = (COST, INVENTORY, BILL_TAGS, TOKENS, GPU, CANDIDATES, PIECES, ALLOC, LINES, HOUR_COST_DAILY, DAILY)
