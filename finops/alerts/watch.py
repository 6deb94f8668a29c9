"""The budget and anomaly rule kinds: findings from the budgets and anomalies reports
(docs/definitions.md 6.6 and 6.8), as of complete days before `now`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from finops import reports
from finops.alerts.context import Context, money, pct
from finops.alerts.rules import Finding, alert_key
from finops.settings.alerts import AnomalyRule, BudgetRule
from finops.tags import DIMS, UNALLOCATED


def budget(ctx: Context, rule: BudgetRule) -> list[Finding]:
    """Each budget's thresholds as of today (complete days): actual, forecast (after
    `forecast_after_days` of the period) and the cost per 1k generated tokens ceiling."""
    end = ctx.now.date()
    report = reports.get("budgets")(ctx.store, ctx.settings, ctx.params(end - timedelta(days=1), end))
    out = []
    for r in report.rows:
        if r["status"] == "currency_mismatch":
            continue
        elapsed = (end - r["period_start"]).days
        amount, cur = f"{money(r['amount'])} {r['budget_currency']}", r["budget_currency"]
        period = f"{r['period']} from {r['period_start']}"
        found: list[tuple[str, str, Decimal, Decimal | None]] = []
        if r["actual_threshold_crossed"] is not None:
            found.append(("actual", f"spent {money(r['actual_cost'])} {cur}, {pct(r['actual_share'])}% of {amount} "
                                    f"(threshold {r['actual_threshold_crossed']}%)", r["actual_cost"],
                          r["actual_threshold_crossed"]))
        if r["forecast_threshold_crossed"] is not None and elapsed >= rule.forecast_after_days:
            found.append(("forecast", f"forecast to spend {money(r['forecast_cost'])} {cur} (80% interval "
                                      f"{money(r['forecast_cost_low'])} to {money(r['forecast_cost_high'])}), "
                                      f"{pct(r['forecast_share'])}% of {amount} (threshold {r['forecast_threshold_crossed']}%); "
                                      f"spent {money(r['actual_cost'])} so far", r["forecast_cost"],
                          r["forecast_threshold_crossed"]))
        if r["ceiling_exceeded"]:
            found.append(("ceiling", f"forecast cost per 1k generated tokens {r['forecast_cost_per_1k_generated_tokens']} "
                                     f"{cur} is above its ceiling {r['max_cost_per_1k_generated_tokens']}",
                          r["forecast_cost"], r["max_cost_per_1k_generated_tokens"]))
        for basis, text, value, threshold in found:
            # The threshold is part of the identity: crossing a higher one is news, sent at once.
            identity = {"budget": r["budget"], "period_start": str(r["period_start"]), "basis": basis,
                        "threshold": f"{threshold.normalize():f}" if threshold is not None else ""}
            dims = {**identity, **{d: r[d] for d in DIMS if r[d] is not None}}
            out.append(Finding(alert_key(rule.name, identity), rule.name, rule.severity,
                               f"Budget {r['budget']} ({period}): {text}; {r['days_to_period_end']} days left in the "
                               "period.", dims, ctx.link("budgets", {"end": end}), value, cur,
                               {k: r[k] for k in ("actual_cost", "actual_share", "forecast_cost", "forecast_cost_low",
                                                  "forecast_cost_high", "forecast_share", "burn_rate_per_day",
                                                  "days_left", "amount")}))
    return out


def anomaly(ctx: Context, rule: AnomalyRule) -> list[Finding]:
    """The anomalies report over the last `lookback_days` complete days, one alert per group, day and metric."""
    end = ctx.now.date()
    start = end - timedelta(days=rule.lookback_days)
    report = reports.get("anomalies")(ctx.store, ctx.settings, ctx.params(start, end, group_by=list(rule.group_by)))
    out = []
    for r in report.rows:
        group = {d: str(r[d]) for d in rule.group_by}
        if r["metric"] not in rule.metrics or UNALLOCATED in group.values():
            continue
        identity = {**group, "metric": r["metric"], "day": str(r["day"])}
        what = "Cost" if r["metric"] == "cost" else "Cost per 1k generated tokens"
        top = ", ".join(f"{c['resource'] or '(no resource)'} {'+' if c['change'] > 0 else ''}"
                        + (money(c["change"]) if c["measure"] == "cost" else f"{c['change']:,} generated tokens")
                        for c in r["contributors"])
        summary = (f"{what} of {', '.join(f'{k}={v}' for k, v in group.items())} on {r['day']} was "
                   f"{r['value'].normalize():f} {report.currency} against a usual {r['baseline'].normalize():f} "
                   f"(expected {r['expected_low'].normalize():f} to {r['expected_high'].normalize():f}; score "
                   f"{r['score']}); worth {money(r['deviation_cost'])} {report.currency}"
                   + (f"; largest changes: {top}." if top else "."))
        out.append(Finding(alert_key(rule.name, identity), rule.name, rule.severity, summary, identity,
                           ctx.link("anomalies", {"start": start, "end": end, "group_by": ",".join(rule.group_by)}),
                           r["deviation_cost"], report.currency,
                           {k: r[k] for k in ("value", "baseline", "expected_low", "expected_high", "score",
                                              "deviation")}))
    return out
