"""GET /v1/exports/focus: the same FOCUS file as `finops export focus`, for finance keys only."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from finops.collect import ingest_focus
from finops.reports.focus_export import focus_export, to_csv
from finops.reports.params import build_params
from finops.tags import TagRules
from tests.api.conftest import Api, Keys
from tests.support import example_a

WINDOW = {"start": "2026-11-02", "end": "2026-11-03"}


def test_the_export_over_http_is_the_commands(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    p = build_params(**WINDOW)
    expected = focus_export(api.store, api.settings, p.start, p.end)
    got = api.get("/v1/exports/focus", keys.finance, params=WINDOW)
    assert got.status_code == 200, got.text
    assert got.headers["content-disposition"] == 'attachment; filename="focus_2026-11-02_2026-11-03.parquet"'
    table = pq.read_table(io.BytesIO(got.content))
    assert table.to_pylist() == expected.to_pylist()
    assert sum((r["BilledCost"] for r in table.to_pylist()), Decimal(0)) == sum(Decimal(c) for *_, c in example_a.BILL)
    csv = api.get("/v1/exports/focus", keys.finance, params={**WINDOW, "format": "csv"})
    assert (csv.status_code, csv.content) == (200, to_csv(expected))


def test_viewers_team_keys_and_bad_windows_are_refused(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    assert api.get("/v1/exports/focus", keys.viewer, params=WINDOW).status_code == 403
    assert api.get("/v1/exports/focus", keys.platform, params=WINDOW).status_code == 403  # finance, team-scoped
    backwards = api.get("/v1/exports/focus", keys.finance, params={"start": "2026-11-03", "end": "2026-11-02"})
    assert backwards.status_code == 422 and backwards.json()["error"]["param"] == "end"
    assert api.get("/v1/exports/focus", keys.finance, params={**WINDOW, "format": "xlsx"}).status_code == 422


def test_a_team_key_sees_its_own_corrections_and_bought_models(start_api: Callable[..., Api], keys: Keys,
                                                               tmp_path: Path) -> None:
    # Two teams' corrections of 2 November, delivered in December's bill, and a model each bought per token.
    rows = [("coreai", "i-gpu1", "-5.00", "Correction", "", ""), ("platform", "vm-3", "-7.00", "Correction", "", ""),
            ("coreai", "", "3.00", "", "Tokens", '{"ModelId": "hosted-a", "TokenDirection": "Output"}'),
            ("platform", "", "4.00", "", "Tokens", '{"ModelId": "hosted-b", "TokenDirection": "Output"}')]
    lines = ["BillingAccountId,ProviderName,BillingCurrency,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,"
             "ChargePeriodEnd,ChargeCategory,ChargeClass,ServiceName,ResourceId,BilledCost,EffectiveCost,"
             "ConsumedQuantity,ConsumedUnit,SkuPriceDetails,Tags"]
    for team, resource, cost, cls, unit, details in rows:
        quoted = '"' + details.replace('"', '""') + '"' if details else ""
        lines.append(f"acct-1,AWS,USD,2026-12-01T00:00:00Z,2027-01-01T00:00:00Z,2026-11-02T00:00:00Z,"
                     f"2026-11-03T00:00:00Z,Usage,{cls},EC2,{resource},{cost},{cost},{1000 if unit else ''},{unit},"
                     f'{quoted},"{{""team"": ""{team}""}}"')
    (tmp_path / "december.csv").write_text("\n".join(lines) + "\n")
    api = start_api()
    [r] = ingest_focus(api.store, TagRules.from_settings(api.settings), [tmp_path / "december.csv"])
    assert r.status == "succeeded", r.error
    check = api.get("/v1/reports/bill-check", keys.coreai, params=WINDOW).json(parse_float=Decimal)
    assert [(c["resource_id"], c["cost"]) for c in check["corrections"]] == [("i-gpu1", Decimal("-5.00"))]
    everyone = api.get("/v1/reports/bill-check", keys.finance, params=WINDOW).json(parse_float=Decimal)
    assert sorted(c["resource_id"] for c in everyone["corrections"]) == ["i-gpu1", "vm-3"]
    ue = api.get("/v1/reports/unit-economics", keys.coreai, params=WINDOW).json(parse_float=Decimal)
    assert [(b["api_model"], b["cost"]) for b in ue["bought_models"]] == [("hosted-a", Decimal("3.00"))]
