"""How each rule kind is checked at a point in time: reports (docs/definitions.md 5-6) and the run ledger in, findings out.

Windows are whole UTC days. Untagged spend and token cost look at complete days before `now`
(today's bill is partial); the idle-GPU check includes today, since an idle streak is current.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finops import reports
from finops.alerts.context import CENT, Context, money
from finops.alerts.rules import Finding, alert_key
from finops.alerts.watch import anomaly, budget
from finops.attribution.stored import attribute_stored
from finops.reports import idle_gpus
from finops.reports.model import fetch_rows, snapshot
from finops.resources import resource_key
from finops.settings.alerts import (
    IdleGpuRule,
    StaleSourceRule,
    TokenCostRule,
    UntaggedSpendRule,
)
from finops.store.ledger import source_states, watermark
from finops.tags import DIMS, UNALLOCATED


def exempt_keys(ctx: Context, start: date, end: date) -> set[str]:
    """Resource keys exempt in [start, end): listed ids, and resources billed with an exempt tag."""
    keys = {k for k in map(resource_key, ctx.exemptions.resource_ids) if k}
    wanted = {k.strip().lower(): v.strip().lower() for k, v in ctx.exemptions.tags.items()}
    if not wanted:
        return keys
    pattern = "|".join(re.escape(k) for k in wanted)
    rows = ctx.store.query(
        "SELECT DISTINCT resource_key, tags FROM cost_lines WHERE charge_date >= ? AND charge_date < ? "
        "AND resource_key IS NOT NULL AND regexp_matches(lower(tags), ?)", [start, end, pattern])
    for rkey, tags in rows:
        try:
            parsed = json.loads(tags)
        except ValueError:
            continue
        if isinstance(parsed, dict) and any(
                wanted.get(str(k).strip().lower()) == str(v).strip().lower() for k, v in parsed.items()):
            keys.add(rkey)
    return keys


def untagged_spend(ctx: Context, rule: UntaggedSpendRule) -> list[Finding]:
    end = ctx.now.date()
    start = end - timedelta(days=rule.window_days)
    report = reports.get("untagged-spend")(ctx.store, ctx.settings, ctx.params(start, end, scope=rule.scope))
    exempt = exempt_keys(ctx, start, end)
    rows = [r for r in report.rows if resource_key(r["resource_id"]) not in exempt]
    total = sum((r["cost"] for r in rows), Decimal(0))
    untagged = sum((r["untagged_cost"] for r in rows), Decimal(0))
    if total <= 0:
        return []
    share = untagged / total
    if not ((rule.min_share is not None and share >= rule.min_share)
            or (rule.min_amount is not None and untagged >= rule.min_amount)):
        return []
    cur = report.currency
    top = ", ".join(f"{r['resource_id'] or '(no resource)'} {money(r['untagged_cost'])}"
                    for r in [r for r in rows if r["untagged_cost"] > 0][:3])  # rows come largest first
    pct = (share * 100).quantize(CENT)
    summary = (f"Untagged spend {money(untagged)} {cur} is {pct}% of {money(total)} {cur} "
               f"from {start} to {end - timedelta(days=1)} (scope {rule.scope}; required tags "
               f"{', '.join(report.params['required_tags'])}). Largest: {top}.")
    identity: dict[str, str] = {"scope": rule.scope}
    return [Finding(alert_key(rule.name, identity), rule.name, rule.severity, summary, identity,
                    ctx.link("untagged-spend", {"start": start, "end": end, "scope": rule.scope}),
                    untagged, cur, {"untagged_share": share.quantize(Decimal("1e-6")), "total_cost": total,
                                    "untagged_share_pct": pct, "start": start, "end": end})]


# The current idle streak of each GPU: its idle hours after its last busy hour (all, if never busy).
STREAK_SQL = """
WITH last AS (
    SELECT gpu_uuid, mig_instance, max(hour_start) AS last_seen, max(hour_start) FILTER (WHERE NOT idle) AS last_busy
    FROM att_gpu_hours GROUP BY ALL
)
SELECT g.gpu_uuid, nullif(g.mig_instance, '') AS mig_instance, any_value(g.rkey) AS rkey,
       any_value(l.last_seen) AS last_seen, min(g.hour_start) AS streak_start,
       count(DISTINCT g.hour_start)::BIGINT AS streak_hours,  -- a time-sliced GPU has a row per workload
       CAST(sum(g.hour_cost) AS DECIMAL(38,12)) AS streak_cost
FROM att_gpu_hours g JOIN last l ON l.gpu_uuid = g.gpu_uuid AND l.mig_instance IS NOT DISTINCT FROM g.mig_instance
WHERE g.idle AND (l.last_busy IS NULL OR g.hour_start > l.last_busy)
GROUP BY g.gpu_uuid, g.mig_instance
"""


GPU_SOURCE = "prometheus"  # the source that lands GPU-hours (dcgm-exporter through Prometheus)


def idle_gpu(ctx: Context, rule: IdleGpuRule) -> list[Finding]:
    start, end = ctx.now.date() - timedelta(days=rule.lookback_days), ctx.now.date() + timedelta(days=1)
    params = ctx.params(start, end)
    with snapshot(ctx.store) as cur:
        att = attribute_stored(cur, params, ctx.settings, reads=idle_gpus.READS)
        report = idle_gpus.build(cur, att, params)
        streaks = fetch_rows(cur, STREAK_SQL)
    by_gpu = {(r["gpu_uuid"], r["mig_instance"]): r for r in report.rows}
    exempt = exempt_keys(ctx, start, end)
    # Silence counts against how far GPU telemetry has been collected, not the wall clock: a GPU is
    # gone when later collections no longer see it, while a lagging collection (the stale-source
    # rule's business) or data that ends at midnight leaves its last streak current.
    reach = watermark(ctx.store, GPU_SOURCE)
    now = min(ctx.now, reach) if reach is not None else ctx.now
    silent_after = now - timedelta(hours=rule.max_silence_hours + 1)  # hour_start + 1 h = hour end
    out = []
    for s in streaks:
        row = by_gpu.get((s["gpu_uuid"], s["mig_instance"]))
        if (row is None or s["streak_hours"] < rule.min_hours or s["streak_cost"] < rule.min_idle_cost
                or s["last_seen"] < silent_after or (s["rkey"] and s["rkey"] in exempt)):
            continue
        identity = {"gpu_uuid": s["gpu_uuid"], **({"mig_instance": s["mig_instance"]} if s["mig_instance"] else {})}
        dims = {**identity, "host": row["host"] or "", "gpu_model": row["gpu_model"] or "",
                **{d: row[d] for d in DIMS}}
        labels = ", ".join(f"{d}={row[d]}" for d in DIMS)
        summary = (f"GPU {s['gpu_uuid']} on {row['host']} ({row['gpu_model']}) has been idle for "
                   f"{s['streak_hours']} consecutive hours since {s['streak_start']:%Y-%m-%d %H:%M} UTC; "
                   f"idle cost {money(s['streak_cost'])} {report.currency}; {labels}.")
        out.append(Finding(alert_key(rule.name, identity), rule.name, rule.severity, summary, dims,
                           ctx.link("idle-gpus", {"start": start, "end": end}), s["streak_cost"], report.currency,
                           {"idle_hours": s["streak_hours"], "idle_since": s["streak_start"],
                            "longest_idle_streak_hours": row["longest_idle_streak_hours"],
                            "window_idle_cost": row["idle_cost"]}))
    return out




def stale_source(ctx: Context, rule: StaleSourceRule) -> list[Finding]:
    ledger = {s.source: s for s in source_states(ctx.store)}
    names = rule.sources if rule.sources is not None else ctx.watched if ctx.watched is not None else sorted(ledger)
    out = []
    for source in (n for n in names if n not in rule.exclude):
        st = ledger.get(source) or source_states(ctx.store, [source])[0]
        last_ok, wm, last_error = st.last_success_at, st.watermark, st.last_error
        since = last_ok or min((t for t in (st.first_run_at, ctx.watching_since) if t is not None), default=None)
        age = (ctx.now - since).total_seconds() / 3600 if since else None
        if age is not None and age <= rule.max_age(source):
            continue
        failing = st.failing
        summary = (f"Source {source} is stale: " + (f"no successful collection for {age:.1f} h" if age is not None
                                                     else "never collected")
                   + f" (allowed {rule.max_age(source):g} h); last success "
                   + (f"{last_ok:%Y-%m-%d %H:%M} UTC" if last_ok else "never")
                   + (f", data up to {wm:%Y-%m-%d %H:%M} UTC" if wm else "")
                   + (f"; last error: {last_error}" if failing and last_error else "") + ".")
        identity = {"source": source}
        out.append(Finding(alert_key(rule.name, identity), rule.name, rule.severity, summary, identity,
                           f"{ctx.link_base.rstrip('/')}/v1/sources", None, None,
                           {"age_hours": None if age is None else round(age, 2), "last_success": last_ok,
                            "watermark": wm, "last_error": last_error if failing else None}))
    return out


def token_cost(ctx: Context, rule: TokenCostRule) -> list[Finding]:
    end = ctx.now.date()
    mid, start = end - timedelta(days=7), end - timedelta(days=14)
    build = reports.get("unit-economics")
    kw = {"group_by": list(rule.group_by), "granularity": "total"}
    this = build(ctx.store, ctx.settings, ctx.params(mid, end, **kw))
    prev = build(ctx.store, ctx.settings, ctx.params(start, mid, **kw))
    before = {tuple(r[d] for d in rule.group_by): r for r in prev.rows}
    out = []
    for r in this.rows:
        group = tuple(r[d] for d in rule.group_by)
        p = before.get(group)
        now_cpk, prev_cpk = r["cost_per_1k_generated_tokens"], p and p["cost_per_1k_generated_tokens"]
        if UNALLOCATED in group or now_cpk is None or not prev_cpk or r["cost"] < rule.min_cost:
            continue
        pct = (now_cpk - prev_cpk) / prev_cpk * 100
        if pct <= rule.min_increase_pct:
            continue
        excess = (now_cpk - prev_cpk) * r["generation_tokens"] / 1000
        identity = dict(zip(rule.group_by, map(str, group), strict=True))
        label = ", ".join(f"{k}={v}" for k, v in identity.items())
        summary = (f"Cost per 1k generated tokens for {label} rose {pct.quantize(CENT)}% week over week: "
                   f"{prev_cpk.quantize(Decimal('1e-6'))} -> {now_cpk.quantize(Decimal('1e-6'))} {this.currency} "
                   f"({mid} to {end - timedelta(days=1)}: cost {money(r['cost'])} {this.currency} for "
                   f"{r['generation_tokens']:,} generated tokens; {money(excess)} {this.currency} more than at "
                   f"the previous week's rate).")
        out.append(Finding(alert_key(rule.name, identity), rule.name, rule.severity, summary, identity,
                           ctx.link("unit-economics", {"start": mid, "end": end, "group_by": ",".join(rule.group_by)}),
                           excess, this.currency,
                           {"increase_pct": pct.quantize(CENT), "cost_per_1k_generated_tokens": now_cpk,
                            "previous_cost_per_1k_generated_tokens": prev_cpk, "week_cost": r["cost"]}))
    return out


# The budget and anomaly kinds live in finops.alerts.watch (they read the forecast-based reports).
CHECKS: dict[str, Callable[[Context, Any], list[Finding]]] = {
    "untagged_spend": untagged_spend, "idle_gpu": idle_gpu, "stale_source": stale_source, "token_cost": token_cost,
    "budget": budget, "anomaly": anomaly,
}
