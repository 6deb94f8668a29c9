"""The FOCUS specification's own example data lands the amounts the specification says.

The files are the FinOps Foundation's (tests/fixtures/focus/spec, CC BY 4.0, see its README). The
examples leave out columns every FOCUS row carries (currency, provider, account, service) and write
null as `(null)`; `complete` fills the first with constants and blanks the second, nothing else.
Expected amounts are read from the examples' own files: the ledger of a correction scenario is the
net change the specification says the correction makes.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

from finops.collect import ingest_focus
from finops.reports import get
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import UNUSED_COMMITMENT, TagRules
from tests.conftest import FIXTURES

SPEC = FIXTURES / "focus" / "spec"
CLOSED = SPEC / "correction-handling-examples" / "closed-billing-period"
OPEN = SPEC / "correction-handling-examples" / "open-billing-period-current"
FILL = {"BillingCurrency": "USD", "ProviderName": "Example Cloud", "BillingAccountId": "acct-1",
        "ServiceName": "Compute", "ChargeCategory": "Usage"}


def complete(src: Path, tmp: Path) -> Path:
    """The example with the columns it leaves out filled in and `(null)` as an empty value."""
    with src.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0]) + [c for c in FILL if c not in rows[0] and not (c == "ProviderName" and "ServiceProviderName" in rows[0])]
    out = tmp / src.name
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, header)
        w.writeheader()
        for row in rows:
            w.writerow({c: "" if row.get(c) == "(null)" else row.get(c, FILL.get(c)) for c in header})
    return out


def by_resource(*files: Path) -> dict[str, Decimal]:
    """EffectiveCost per ResourceId over the example files, as the specification adds them."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for f in files:
        with f.open(newline="") as fh:
            for row in csv.DictReader(fh):
                out[row["ResourceId"]] += Decimal(row["EffectiveCost"])
    return dict(out)


def stored(store: Store) -> dict[str, Decimal]:
    return {r: v for r, v in store.query("SELECT coalesce(resource_id, ''), sum(effective_cost) FROM cost_lines "
                                         "GROUP BY ALL")}


def land(store: Store, rules: TagRules, tmp: Path, *files: Path) -> None:
    for f in files:
        [r] = ingest_focus(store, rules, [complete(f, tmp)])
        assert (r.status, r.quarantined) == ("succeeded", 0), r.error


def test_closed_period_reallocation_adds_the_correction_to_the_period_it_corrects(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    original, delta, ledger = (CLOSED / f"scenario_1_partial_reallocation_{k}.csv" for k in ("original", "delta", "ledger"))
    land(store, rules, tmp_path, original, delta)
    expected = by_resource(original, ledger)
    assert stored(store) == expected == {"R-111": Decimal(1200), "R-222": Decimal(300)}
    # May's cost, with the corrections delivered in June visible as such.
    check = get("bill-check")(store, settings, build_params(start="2025-05-01", end="2025-06-01"))
    [may] = check.rows
    assert (may["cost"], may["corrections_cost"], may["correction_lines"]) == (Decimal(1500), Decimal(0), 2)
    assert sorted((c["resource_id"], str(c["delivered_in"]), c["cost"]) for c in check.tables["corrections"]) == [
        ("R-111", "2025-06-01", Decimal(-300)), ("R-222", "2025-06-01", Decimal(300))]


def test_closed_period_late_usage_lands_in_the_period_it_was_used(store: Store, rules: TagRules,
                                                                 tmp_path: Path) -> None:
    delta, ledger = (CLOSED / f"scenario_2_late_arriving_usage_{k}.csv" for k in ("delta", "ledger"))
    land(store, rules, tmp_path, delta)
    assert stored(store) == {"": sum(by_resource(ledger).values(), Decimal(0))} == {"": Decimal(1500)}
    assert store.query("SELECT DISTINCT charge_date, charge_class FROM cost_lines") == [
        (date(2025, 5, 1), "Correction")]


def test_open_period_replacement_is_the_period(store: Store, rules: TagRules, tmp_path: Path) -> None:
    original, replacement, ledger = (OPEN / f"scenario_1_partial_reallocation_{k}.csv"
                                     for k in ("original", "replacement", "ledger"))
    land(store, rules, tmp_path, original, replacement)
    # The replacement (another file, the same billing period) is the period, and it equals the
    # original plus the ledger's net changes.
    assert stored(store) == by_resource(replacement) == by_resource(original, ledger)


def test_unused_commitment_is_its_own_category(store: Store, settings: Settings, rules: TagRules,
                                               tmp_path: Path) -> None:
    example = SPEC / "commitment_discount_scenarios" / "aws_underutilized_50pct.csv"
    land(store, rules, tmp_path, example)
    with example.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    unused = sum((Decimal(r["EffectiveCost"]) for r in rows if r["CommitmentDiscountStatus"] == "Unused"), Decimal(0))
    total = sum((Decimal(r["EffectiveCost"]) for r in rows), Decimal(0))
    assert unused == Decimal("949.32")
    params = build_params(start="2026-01-01", end="2026-02-01")
    ue = get("unit-economics")(store, settings, params)
    waste = [r for r in ue.rows if r["team"] == UNUSED_COMMITMENT]
    assert [(r["project"], r["model_id"], r["cost"]) for r in waste] == [(UNUSED_COMMITMENT, UNUSED_COMMITMENT, unused)]
    untagged = get("untagged-spend")(store, settings, params)
    assert untagged.totals["total_cost"] == total
    assert untagged.totals["untagged_cost"] == total - unused  # the rest carries no tags; the waste is not "untagged"
    check = get("bill-check")(store, settings, params)
    assert check.totals["unused_commitment_cost"] == unused


def test_closed_period_cost_only_correction_adds_to_the_period(store: Store, rules: TagRules, tmp_path: Path) -> None:
    original, delta = (CLOSED / f"scenario_3_itemized_cost_only_{k}.csv" for k in ("original", "delta"))
    land(store, rules, tmp_path, original, delta)
    [(total, adjustments)] = store.query(
        "SELECT sum(effective_cost), sum(effective_cost) FILTER (WHERE charge_category = 'Adjustment') FROM cost_lines")
    assert (total, adjustments) == (Decimal("4.197398"), Decimal("0.002"))
    assert total == sum(by_resource(original, delta).values(), Decimal(0))


def expected_tokens(example: Path) -> dict[str, dict[str, Decimal]]:
    """What an example bills, per model (SkuPriceDetails' ModelId) and kind of token, read from the file."""
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    with example.open(newline="") as fh:
        for row in csv.DictReader(fh):
            details = json.loads(row["SkuPriceDetails"])
            kind = details["TokenDirection"] + ("-read" if details.get("TokenCacheAction") == "Read" else "")
            out[details["ModelId"]]["cost"] += Decimal(row["EffectiveCost"])
            out[details["ModelId"]][kind] += Decimal(row["ConsumedQuantity"])
    return out


def test_token_billed_models_join_unit_economics_beside_self_hosted(store: Store, settings: Settings,
                                                                   rules: TagRules, tmp_path: Path) -> None:
    # Each example is a bill of its own (two of them name the same account and month, so landing
    # the second replaces the first, as a re-delivery would): checked one after the other.
    examples = [(SPEC / "ai_model_billing" / "per_token_ai_model_api.csv", "2025-05-01"),
                (SPEC / "ai_model_billing" / "cached_tokens_via_csp_marketplace.csv", "2025-05-01"),
                (SPEC / "ai_prompt_caching" / "ai_prompt_caching_a.csv", "2025-01-01")]
    seen = set()
    for example, month in examples:
        land(store, rules, tmp_path, example)
        start = date.fromisoformat(month)
        window = build_params(start=start, end=start.replace(month=start.month + 1))
        bought = {r["api_model"]: r for r in get("unit-economics")(store, settings, window).tables["bought_models"]}
        expected = expected_tokens(example)
        assert set(bought) == set(expected)
        for model, e in expected.items():
            row = bought[model]
            assert row["cost"] == e["cost"]
            assert row["prompt_tokens"] == e["Input"] + e["Input-read"]
            assert row["cached_prompt_tokens"] == e["Input-read"]
            assert row["generation_tokens"] == e["Output"]
        seen |= set(bought)
        if "solora-saturn-4.8" in bought:  # 8.4M input at 5.00 and 2.1M output at 25.00 per 1M
            saturn = bought["solora-saturn-4.8"]
            assert (saturn["cost"], saturn["cost_per_1k_prompt_tokens"], saturn["cost_per_1k_generation_tokens"],
                    saturn["cost_per_1k_generated_tokens"]) == (Decimal("94.50"), Decimal("0.005"), Decimal("0.025"),
                                                                Decimal("0.045"))
        if "solora-neptune-5.0" in bought:
            assert bought["solora-neptune-5.0"]["cost_per_1k_generated_tokens"] is None  # input tokens only
    assert seen == {"solora-saturn-4.8", "solora-neptune-5.0", "solora-reasoning-pro"}
