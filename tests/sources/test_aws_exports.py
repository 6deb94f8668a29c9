"""AWS Data Exports in moto's S3: manifests per billing period, newest wins, CUR 2.0 and FOCUS files
read through the FOCUS reader, a corrupt object failing its period with nothing half-written."""

from __future__ import annotations

import gzip
import io
import json
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finops.collect import collect
from finops.settings import AwsSettings, Settings
from finops.sources.aws import exports as aws_exports
from finops.sources.aws.client import tag_rules
from finops.store import Store
from finops.timeutil import Window
from tests.conftest import FIXTURES
from tests.support import moto as doubles

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures
BUCKET, PREFIX = "billing", "exports"
DATA = f"{PREFIX}/cur2/data"
META = f"{PREFIX}/cur2/metadata"
SP_ARN = "arn:aws:savingsplans::123456789012:savingsplan/sp-1"
MONEY = ("line_item_unblended_cost", "pricing_public_on_demand_cost", "savings_plan_savings_plan_effective_cost",
         "savings_plan_total_commitment_to_date", "savings_plan_used_commitment", "reservation_effective_cost")
TEXT = ("bill_payer_account_id", "line_item_usage_account_id", "line_item_line_item_type", "line_item_product_code",
        "product_servicecode", "product_region_code", "line_item_resource_id", "pricing_term",
        "line_item_currency_code", "savings_plan_savings_plan_a_r_n", "reservation_reservation_a_r_n")
CUR_SCHEMA = pa.schema(
    [(c, pa.string()) for c in TEXT] + [(c, pa.float64()) for c in MONEY]
    + [("line_item_usage_start_date", pa.timestamp("ms")), ("line_item_usage_end_date", pa.timestamp("ms")),
       ("resource_tags", pa.map_(pa.string(), pa.string()))])


def line(day: int, kind: str, cost: float, tags: dict[str, str] | None = None, resource: str | None = None,
         **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CUR_SCHEMA.names)
    row.update(bill_payer_account_id="123456789012", line_item_usage_account_id="111111111111",
               line_item_line_item_type=kind, line_item_product_code="AmazonEC2", product_servicecode="AmazonEC2",
               product_region_code="us-east-1", line_item_resource_id=resource, pricing_term="OnDemand",
               line_item_currency_code="USD", line_item_unblended_cost=cost,
               line_item_usage_start_date=datetime(2026, 10, day), line_item_usage_end_date=datetime(2026, 10, day, 1),
               resource_tags=list((tags or {}).items()), **extra)
    return row


LLAMA_TAGS = {"user_project": "chatbot", "user_team": "coreai", "user_environment": "prod", "user_model_i_d": "llama-70b"}
NEW_ROWS = [
    line(2, "Usage", 240.5, LLAMA_TAGS, "i-0aaa1111"),
    line(2, "SavingsPlanCoveredUsage", 100.0, {"user:Project": "search"}, "i-0bbb2222",
         savings_plan_savings_plan_effective_cost=62.25, savings_plan_savings_plan_a_r_n=SP_ARN),
    line(2, "SavingsPlanNegation", -100.0, {"user:Project": "search"}, "i-0bbb2222",
         savings_plan_savings_plan_a_r_n=SP_ARN),
    line(1, "SavingsPlanRecurringFee", 70.0, None, SP_ARN, savings_plan_total_commitment_to_date=70.0,
         savings_plan_used_commitment=62.25, savings_plan_savings_plan_a_r_n=SP_ARN),
    line(3, "Usage", 5.125, {"Project": " Web "}, "arn:aws:s3:::bucket-logs"),
    line(1, "Tax", 12.0),
]
# The amortised cost of each line, by AWS's rules for its line type.
NEW_EFFECTIVE = [Decimal("240.5"), Decimal("62.25"), Decimal(0), Decimal("7.75"), Decimal("5.125"), Decimal(12)]


def parquet(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CUR_SCHEMA), buf)
    return buf.getvalue()


def manifest(files: list[str]) -> bytes:
    return json.dumps({"exportName": "cur2", "dataFiles": [f"s3://{BUCKET}/{f}" for f in files]}).encode()


@pytest.fixture
def s3(moto: str, aws_env: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def exp_settings(settings: Settings, moto: str) -> Settings:
    aws = AwsSettings(endpoint_url=moto, export_bucket=BUCKET, export_prefix=PREFIX, max_attempts=2)
    return settings.model_copy(update={"aws": aws})


def put(s3: Any, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def snapshot(store: Store) -> list[tuple[Any, ...]]:
    return store.query("SELECT * EXCLUDE (run_id) FROM cost_lines ORDER BY ALL")


def test_newest_manifest_of_a_period_wins(s3: Any, exp_settings: Settings, store: Store) -> None:
    put(s3, f"{DATA}/BILLING_PERIOD=2026-10/old/cur2-00001.snappy.parquet", parquet([line(2, "Usage", 999.0)]))
    # The older manifest sorts last by key: only its time makes it lose.
    put(s3, f"{META}/BILLING_PERIOD=2026-10/zz-old/cur2-Manifest.json",
        manifest([f"{DATA}/BILLING_PERIOD=2026-10/old/cur2-00001.snappy.parquet"]))
    put(s3, f"{DATA}/BILLING_PERIOD=2026-09/cur2-00001.snappy.parquet", parquet([line(2, "Usage", 1.0)]))
    put(s3, f"{META}/BILLING_PERIOD=2026-09/cur2-Manifest.json",
        manifest([f"{DATA}/BILLING_PERIOD=2026-09/cur2-00001.snappy.parquet"]))
    time.sleep(1.05)  # S3's LastModified has one-second resolution
    new_files = [f"{DATA}/BILLING_PERIOD=2026-10/new/cur2-0000{n}.snappy.parquet" for n in (1, 2)]
    put(s3, new_files[0], parquet(NEW_ROWS[:3]))
    put(s3, new_files[1], parquet(NEW_ROWS[3:]))
    put(s3, f"{META}/BILLING_PERIOD=2026-10/aa-new/cur2-Manifest.json", manifest(new_files))

    results = collect(store, exp_settings, "aws_exports", Window.from_dates(date(2026, 10, 5), date(2026, 10, 20)))
    assert [(r.status, r.rows) for r in results] == [("succeeded", len(NEW_ROWS))], results
    assert results[0].details["manifest"].endswith("aa-new/cur2-Manifest.json")
    rows = store.query("SELECT scope, resource_id, billed_cost, effective_cost, project, team, environment, model_id, "
                       "charge_category, commitment_discount_id, provider_name FROM cost_lines ORDER BY billed_cost")
    assert {r[0] for r in rows} == {f"s3://{BUCKET}/{PREFIX}#2026-10"}
    want = sorted(zip(NEW_ROWS, NEW_EFFECTIVE, strict=True), key=lambda x: x[0]["line_item_unblended_cost"])
    assert [(r[2], r[3]) for r in rows] == [(Decimal(str(w["line_item_unblended_cost"])), e) for w, e in want]
    by_resource = {r[1]: r for r in rows if r[8] == "Usage" and r[2] > 0}
    assert by_resource["i-0aaa1111"][4:8] == ("chatbot", "coreai", "prod", "llama-70b")   # user_* keys
    assert by_resource["i-0bbb2222"][4:6] == ("search", None)                             # user:Project
    assert by_resource["arn:aws:s3:::bucket-logs"][4] == "web"                             # plain Project
    assert by_resource["i-0bbb2222"][9] == SP_ARN and {r[10] for r in rows} == {"AWS"}
    assert sorted(r[8] for r in rows) == ["Purchase", "Tax", "Usage", "Usage", "Usage", "Usage"]


def test_corrupt_object_fails_its_period_and_keeps_what_was_there(s3: Any, exp_settings: Settings,
                                                                   store: Store) -> None:
    good = f"{DATA}/BILLING_PERIOD=2026-11/cur2-00001.snappy.parquet"
    bad = f"{DATA}/BILLING_PERIOD=2026-11/cur2-00002.snappy.parquet"
    key = f"{META}/BILLING_PERIOD=2026-11/cur2-Manifest.json"
    put(s3, good, parquet([{**r, "line_item_usage_start_date": datetime(2026, 11, 2),
                             "line_item_usage_end_date": datetime(2026, 11, 3)} for r in NEW_ROWS]))
    put(s3, key, manifest([good]))
    window = Window.from_dates(date(2026, 11, 1), date(2026, 11, 3))
    assert collect(store, exp_settings, "aws_exports", window)[0].status == "succeeded"
    before = snapshot(store)
    assert len(before) == len(NEW_ROWS)

    # The export is rewritten in place (overwrite mode): a second file, truncated in transit.
    put(s3, bad, parquet(NEW_ROWS)[:300])
    put(s3, key, manifest([good, bad]))
    (result,) = collect(store, exp_settings, "aws_exports", window)
    assert result.status == "failed"
    assert result.error.startswith(f"s3://{BUCKET}/{bad}: ") and "Parquet" in result.error
    assert "/tmp" not in result.error
    assert snapshot(store) == before


def test_cur_csv_gz_quarantines_a_bad_row_with_its_object_and_line(s3: Any, exp_settings: Settings,
                                                                      store: Store) -> None:
    text = (FIXTURES / "aws" / "cur2_sample.csv").read_bytes()
    data = f"{DATA}/BILLING_PERIOD=2026-09/cur2-00001.csv.gz"
    put(s3, data, gzip.compress(text))
    put(s3, f"{META}/BILLING_PERIOD=2026-09/cur2-Manifest.json", manifest([data]))
    (result,) = collect(store, exp_settings, "aws_exports", Window.from_dates(date(2026, 9, 1), date(2026, 10, 1)))
    assert (result.status, result.rows, result.quarantined) == ("succeeded", 3, 1)
    ((origin, line_no, reason),) = store.query("SELECT origin, line, reason FROM quarantine")
    assert (origin, line_no) == (f"s3://{BUCKET}/{data}", 3)
    assert reason.startswith("line_item_unblended_cost: not a finite number within DECIMAL(38,12): 12,5")
    got = store.query("SELECT sum(billed_cost), sum(effective_cost) FROM cost_lines")[0]
    assert got == (Decimal("1.006") + Decimal("0.0230000001") + Decimal("0.50"),) * 2
    assert store.query("SELECT model_id FROM cost_lines WHERE resource_id = 'i-0aaa1111'") == [("llama-70b",)]


def test_a_focus_export_is_read_with_the_focus_columns(s3: Any, exp_settings: Settings, store: Store) -> None:
    focus = pa.table({
        "BilledCost": pa.array([Decimal("10.50"), Decimal("2.25")], pa.decimal128(20, 10)),
        "EffectiveCost": pa.array([Decimal("8.00"), Decimal("2.25")], pa.decimal128(20, 10)),
        "BillingCurrency": ["USD", "USD"], "ChargeCategory": ["Usage", "Usage"],
        "ChargePeriodStart": [datetime(2026, 8, 3), datetime(2026, 8, 3, 1)],
        "ChargePeriodEnd": [datetime(2026, 8, 3, 1), datetime(2026, 8, 3, 2)],
        "ServiceName": ["Amazon Elastic Compute Cloud", "Amazon Elastic Compute Cloud"],
        "BillingAccountId": ["123456789012"] * 2, "ProviderName": ["AWS"] * 2, "ResourceId": ["i-0f", "i-0f"],
        "Tags": pa.array([[("Project", "chatbot"), ("aws:createdBy", "x")], []], pa.map_(pa.string(), pa.string())),
        "x_Discounts": ["", ""],
    })
    buf = io.BytesIO()
    pq.write_table(focus, buf)
    data = f"{PREFIX}/focus/data/BILLING_PERIOD=2026-08/focus-00001.snappy.parquet"
    put(s3, data, buf.getvalue())
    put(s3, f"{PREFIX}/focus/metadata/BILLING_PERIOD=2026-08/focus-Manifest.json", manifest([data]))
    (result,) = collect(store, exp_settings, "aws_exports", Window.from_dates(date(2026, 8, 1), date(2026, 8, 31)))
    assert result.status == "succeeded", result.error
    assert store.query("SELECT billed_cost, effective_cost, project, resource_key FROM cost_lines ORDER BY 1") == [
        (Decimal("2.25"), Decimal("2.25"), None, "i-0f"), (Decimal("10.50"), Decimal("8.00"), "chatbot", "i-0f")]


def test_a_period_without_manifest_is_left_alone(s3: Any, exp_settings: Settings, store: Store) -> None:
    (result,) = collect(store, exp_settings, "aws_exports", Window.from_dates(date(2026, 7, 1), date(2026, 7, 2)))
    assert (result.status, result.rows, result.details.get("skipped")) == ("succeeded", 0, "no manifest")


# --- pure parts ---------------------------------------------------------------------------------

def test_manifest_and_period_parsing() -> None:
    body = (FIXTURES / "aws" / "cur2-Manifest.json").read_bytes()
    obj = aws_exports.S3Object(BUCKET, f"{META}/BILLING_PERIOD=2026-10/cur2-Manifest.json", datetime(2026, 10, 2))
    assert aws_exports.parse_manifest(obj, body) == [
        (BUCKET, f"{DATA}/BILLING_PERIOD=2026-10/cur2-00001.snappy.parquet"),
        (BUCKET, f"{DATA}/BILLING_PERIOD=2026-10/cur2-00002.snappy.parquet")]
    with pytest.raises(ValueError, match="not JSON"):
        aws_exports.parse_manifest(obj, b"{truncated")
    with pytest.raises(ValueError, match="no data files"):
        aws_exports.parse_manifest(obj, b'{"columns": []}')
    assert aws_exports.period_of("p/cur/20261001-20261101/abc/cur-Manifest.json") == "2026-10"
    assert aws_exports.period_of("p/x/metadata/BILLING_PERIOD=2026-11/x-Manifest.json") == "2026-11"
    assert aws_exports.period_of("p/x/metadata/other.json") is None
    assert aws_exports.periods(Window(datetime(2026, 11, 20), datetime(2027, 1, 1))) == ["2026-11", "2026-12"]
    older = aws_exports.S3Object(BUCKET, "a/BILLING_PERIOD=2026-10/z-Manifest.json", datetime(2026, 10, 2, 1))
    newer = aws_exports.S3Object(BUCKET, "a/BILLING_PERIOD=2026-10/a-Manifest.json", datetime(2026, 10, 2, 2))
    data = aws_exports.S3Object(BUCKET, "a/BILLING_PERIOD=2026-10/f.parquet", datetime(2026, 10, 3))
    assert aws_exports.newest_manifests([newer, data, older], ["2026-10"]) == {"2026-10": newer}


def test_aws_tag_spellings_map_to_dims(settings: Settings) -> None:
    rules = tag_rules(settings.model_copy(update={"aws": AwsSettings(tag_keys={"project": "App", "team": "CostCenter"})}))
    for key in ("App", "user:App", "user_app", "resourceTags/user:App"):
        assert rules.dims_from_tags({key: "X"})["project"] == "x"
    assert rules.dims_from_tags({"user_cost_center": "ml"})["team"] == "ml"
    assert rules.dims_from_tags({"user_project": "p"})["project"] == "p"  # built-in aliases stay
