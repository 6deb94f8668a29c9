"""Files shaped exactly like the providers' FOCUS exports ingest whole, keeping what each column means.

The column names and types come from the providers' own definitions (tests/fixtures/focus/schemas,
see its README): Azure Cost Management's FOCUS 1.0 and 1.2-preview exports (CSV) and AWS Data
Exports' FOCUS 1.2 table (Parquet: doubles, millisecond timestamps, maps for Tags and
SkuPriceDetails). Each file holds a GPU instance-hour, an hour of unused commitment and a correction
of an earlier period; every `x_` column is kept, queryable.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finops.collect import ingest_focus
from finops.store import Store
from finops.tags import UNUSED_COMMITMENT, TagRules
from tests.conftest import FIXTURES

SCHEMAS = FIXTURES / "focus" / "schemas"
NOV, DEC = datetime(2026, 11, 1), datetime(2026, 12, 1)
# The three rows' own values; every other column gets a value of its declared type.
ROWS: list[dict[str, Any]] = [
    {"BilledCost": "98.5", "EffectiveCost": "98.5", "ConsumedQuantity": "1", "ConsumedUnit": "Hours",
     "ResourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gpu-1",
     "ChargePeriodStart": datetime(2026, 11, 2, 5), "ChargePeriodEnd": datetime(2026, 11, 2, 6),
     "Tags": {"team": "CoreAI", "project": "chatbot", "environment": "prod", "modelid": "llama-70b"},
     "ChargeClass": None, "CommitmentDiscountStatus": None, "SkuMeter": "NC A100 v4", "InvoiceId": "INV-11"},
    {"BilledCost": "0", "EffectiveCost": "12.25", "ConsumedQuantity": "1", "ConsumedUnit": "Hours",
     "ResourceId": None, "ChargePeriodStart": datetime(2026, 11, 2, 5), "ChargePeriodEnd": datetime(2026, 11, 2, 6),
     "Tags": {}, "ChargeClass": None, "CommitmentDiscountStatus": "Unused", "SkuMeter": "Reservation",
     "InvoiceId": "INV-11"},
    {"BilledCost": "-4.75", "EffectiveCost": "-4.75", "ConsumedQuantity": "0", "ConsumedUnit": "Hours",
     "ResourceId": "gpu-2", "ChargePeriodStart": datetime(2026, 10, 30), "ChargePeriodEnd": datetime(2026, 10, 31),
     "Tags": {"team": "coreai"}, "ChargeClass": "Correction", "CommitmentDiscountStatus": None,
     "SkuMeter": "NC A100 v4", "InvoiceId": "INV-11"},
]


def columns(name: str) -> list[tuple[str, str]]:
    with (SCHEMAS / name).open(newline="") as fh:
        return [(r["name"], r["type"]) for r in csv.DictReader(fh)]


def nullable(name: str) -> set[str]:
    """The columns the provider documents as nullable (where its schema file says)."""
    with (SCHEMAS / name).open(newline="") as fh:
        return {r["name"] for r in csv.DictReader(fh) if r.get("nullable") == "yes"}


# FOCUS columns holding JSON objects, whatever type a provider's metadata declares for them.
JSON_COLUMNS = ("Tags", "SkuPriceDetails", "AllocatedTags")


def placeholder(column: str, kind: str) -> Any:
    """A value of `kind` (the providers' type names) for a column the test does not care about."""
    k = kind.lower()
    if column in JSON_COLUMNS:
        return {}
    if k in ("decimal", "double", "number"):
        return "2"
    if k.startswith("datetime") or k.startswith("timestamp"):
        return NOV
    if k == "boolean":
        return True
    if k == "json" or k.startswith("map"):
        return {}
    return f"{column}-value"


def common(column: str) -> Any:
    """Values every row shares: the same billing account, period, currency and provider."""
    return {"BillingAccountId": "acct-1", "BillingCurrency": "USD", "BillingPeriodStart": NOV, "BillingPeriodEnd": DEC,
            "ProviderName": "Microsoft", "ServiceName": "Virtual Machines", "ChargeCategory": "Usage",
            "ServiceProviderName": "Microsoft"}.get(column)


def records(schema: list[tuple[str, str]], nulls: Collection[str] = ()) -> list[dict[str, Any]]:
    """The three rows; in the second (unused commitment), every documented nullable column this
    test does not set is null, as the provider may write it."""
    out = []
    for i, own in enumerate(ROWS):
        row = {}
        for column, kind in schema:
            value = own[column] if column in own else common(column)
            if value is None and column not in own:
                value = None if i == 1 and column in nulls else placeholder(column, kind)
            row[column] = value
        out.append(row)
    return out


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(path: Path, schema: list[tuple[str, str]], nulls: Collection[str] = ()) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c for c, _ in schema])
        for row in records(schema, nulls):
            w.writerow([text(row[c]) for c, _ in schema])


ARROW = {"string": pa.string(), "double": pa.float64(), "timestamp_milliseconds": pa.timestamp("ms"),
         "map<string,string>": pa.map_(pa.string(), pa.string()), "map<string,double>": pa.map_(pa.string(), pa.float64())}


def arrow_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "double":
        return float(value)
    if kind.startswith("map"):
        return [(k, str(v) if kind.endswith("string>") else float(v)) for k, v in value.items()]
    if kind == "string":
        return text(value)
    return value


def write_parquet(path: Path, schema: list[tuple[str, str]], nulls: Collection[str] = ()) -> None:
    rows = records(schema, nulls)
    table = pa.table({c: pa.array([arrow_value(r[c], k) for r in rows], type=ARROW[k]) for c, k in schema})
    pq.write_table(table, path)


EXPORTS = [
    ("azure-focus-1.0.columns.csv", write_csv, "csv"),
    ("azure-focus-1.2-preview.columns.csv", write_csv, "csv"),
    ("aws-focus-1.2.columns.csv", write_parquet, "parquet"),
]


@pytest.mark.parametrize(("schema_file", "write", "ext"), EXPORTS, ids=[e[0].split(".columns")[0] for e in EXPORTS])
def test_a_provider_export_ingests_whole_with_its_meaning(store: Store, rules: TagRules, tmp_path: Path,
                                                          schema_file: str, write: Any, ext: str) -> None:
    schema = columns(schema_file)
    path = tmp_path / f"export.{ext}"
    nulls = nullable(schema_file)
    write(path, schema, nulls)
    [r] = ingest_focus(store, rules, [path])
    assert (r.status, r.quarantined, r.rows) == ("succeeded", 0, 3), r.error
    got = {row[0]: row[1:] for row in store.query(
        "SELECT resource_key, billed_cost, effective_cost, charge_class, commitment_discount_status, consumed_quantity, "
        "consumed_unit, sku_meter, invoice_id, team, model_id, charge_date FROM cost_lines")}
    names = {c for c, _ in schema}
    # SkuMeter and InvoiceId are FOCUS 1.2's (Azure's 1.0 export has x_InvoiceId instead).
    meter, invoice = ("NC A100 v4" if "SkuMeter" in names else None), ("INV-11" if "InvoiceId" in names else None)
    assert got["gpu-1"] == (Decimal("98.5"), Decimal("98.5"), None, None, Decimal(1), "Hours", meter, invoice,
                            "coreai", "llama-70b", NOV.date().replace(day=2))
    assert got[None][1:4] == (Decimal("12.25"), None, "Unused")
    assert got[None][8:10] == (UNUSED_COMMITMENT, UNUSED_COMMITMENT)  # its own category, never a team's
    correction = store.query("SELECT billed_cost, charge_class, charge_date FROM cost_lines WHERE charge_class IS NOT NULL")
    assert correction == [(Decimal("-4.75"), "Correction", datetime(2026, 10, 30).date())]
    # Every x_ column is kept, by name, and can be queried.
    extensions = [c for c, _ in schema if c.startswith("x_")]
    if schema_file.startswith("aws"):
        assert len(nulls) == 40  # AWS documents 40 of its 60 columns as nullable: the unused row leaves them null
    [(kept,)] = store.query("SELECT x_columns FROM cost_lines WHERE resource_key = 'gpu-1'")
    assert sorted(json.loads(kept)) == sorted(extensions)
    if extensions:
        first = extensions[0]
        [(value,)] = store.query(f"SELECT x_columns->>'{first}' FROM cost_lines WHERE resource_key = 'gpu-1'")
        assert value is not None
    # The file's scope is its billing period, so the same export under another name replaces it.
    again = tmp_path / f"export-again.{ext}"
    again.write_bytes(path.read_bytes())
    [r2] = ingest_focus(store, rules, [again])
    assert r2.status == "succeeded"
    assert store.query("SELECT count(*), sum(billed_cost) FROM cost_lines")[0] == (3, Decimal("93.75"))
