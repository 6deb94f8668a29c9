"""Backtest the forecasts (docs/definitions.md 6.7) over rolling origins on the demo fleet.

    python benchmarks/backtest_forecast.py                # 77 days: 8 weeks of history, 3 origins
    python benchmarks/backtest_forecast.py --origins 6 --horizon 7

Builds a demo database (recorded Prometheus responses, seed 7) ending today, then for each origin
(one week apart, the last one `horizon` days before the end) forecasts each team's daily cost and
generated tokens for `horizon` days from the history before it, with the forecast report itself,
and compares them with what the store holds for those days. Prints, per metric: the daily mean
absolute percentage error (MAPE), the error of each horizon's total, and how often the 80 %
interval held the actual day. The demo fleet's injected anomalies (a runaway day, a price change,
a token drop) fall in the last origins on purpose: they are what a forecast cannot know.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finops.demo.run import DemoConfig, run_demo  # noqa: E402
from finops.reports import get  # noqa: E402
from finops.reports.params import build_params  # noqa: E402
from finops.settings import Settings  # noqa: E402
from finops.store import open_store  # noqa: E402
from finops.timeutil import utcnow  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--origins", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=7)
    ap.add_argument("--history", type=int, default=56)
    args = ap.parse_args()
    end = utcnow().date()
    days = args.history + 7 * (args.origins - 1) + args.horizon
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.duckdb"
        settings = Settings(db=db)
        run_demo(DemoConfig(db=db, days=days, end=end, use_prometheus=False), settings)
        store = open_store(db, settings.duckdb, read_only=True)
        errors: dict[str, list[Decimal]] = {"cost": [], "generation_tokens": []}
        totals: dict[str, list[Decimal]] = {"cost": [], "generation_tokens": []}
        covered: dict[str, list[bool]] = {"cost": [], "generation_tokens": []}
        methods: set[str] = set()
        try:
            for k in range(args.origins):
                start = end - timedelta(days=args.horizon + 7 * (args.origins - 1 - k))
                params = build_params(start=start, end=start + timedelta(days=args.horizon), group_by="team")
                report = get("forecast")(store, settings, params)
                methods.add(report.totals["methods"])
                for metric, actual_of in (("cost", "actual_cost"), ("generation_tokens", "actual_generation_tokens")):
                    per_team: dict[str, tuple[Decimal, Decimal]] = {}
                    for r in report.rows:
                        actual = Decimal(r[actual_of])
                        if actual <= 0 or r["team"].startswith("__"):
                            continue
                        f = Decimal(r[metric])
                        errors[metric].append(abs(f - actual) / actual)
                        covered[metric].append(Decimal(r[f"{metric}_low"]) <= actual <= Decimal(r[f"{metric}_high"]))
                        a, b = per_team.get(r["team"], (Decimal(0), Decimal(0)))
                        per_team[r["team"]] = (a + f, b + actual)
                    totals[metric] += [abs(f - a) / a for f, a in per_team.values()]
        finally:
            store.close()
    print(f"demo fleet, {days} days to {end}; {args.origins} origins x {args.horizon} days; methods: "
          f"{'; '.join(sorted(methods))}")
    print(f"{'metric':<20}{'daily MAPE':>12}{'total error (median, max)':>28}{'80% interval held':>20}")
    for metric in errors:
        print(f"{metric:<20}{statistics.fmean(errors[metric]):>12.1%}"
              f"{f'{statistics.median(totals[metric]):.1%}, {max(totals[metric]):.1%}':>28}"
              f"{sum(covered[metric]) / len(covered[metric]):>20.0%}")


if __name__ == "__main__":
    main()
