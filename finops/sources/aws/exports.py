"""AWS Data Exports in S3 (CUR 2.0 or FOCUS 1.x; Parquet, CSV or CSV.gz), one task per billing period.

Layout: `<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/...Manifest.json` lists the period's data
files (`dataFiles`; legacy CUR's `reportKeys` and `YYYYMMDD-YYYYMMDD` folders are read too). AWS
rewrites a period several times a day: the newest manifest (S3 LastModified, then key) wins, and
its files replace the period as a whole (scope `s3://bucket/prefix#YYYY-MM`, no window). Files are
downloaded to a temporary directory and read by the FOCUS reader with the matching `FileSpec`. A
period without a manifest is left as it is.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from finops.batch import Batch, Progress, SourceFailed, Task
from finops.settings import Settings
from finops.sources.aws.client import AwsSession, RequestCount, failure, tag_rules
from finops.sources.focus import (
    FOCUS,
    REQUIRED_VALUES,
    FileSpec,
    FocusFileError,
    ParsedFile,
    parse_focus_file,
)
from finops.tags import TagRules
from finops.timeutil import Window

log = logging.getLogger(__name__)
_PERIOD_KEYS = (re.compile(r"BILLING_PERIOD=(\d{4})-(\d{2})(?:/|$)"),
                re.compile(r"(?:^|/)(\d{4})(\d{2})01-\d{8}(?:/|$)"))

# CUR 2.0 columns feeding each cost-line column. `x_*` columns are derived first (CUR2_DERIVED):
# amortised cost, FOCUS charge/pricing categories and commitment ids need several columns.
CUR2_SPEC = FileSpec(
    name="CUR 2.0",
    columns={
        "charge_period_start": (("line_item_usage_start_date",), "timestamp"),
        "charge_period_end": (("line_item_usage_end_date",), "timestamp"),
        "provider_name": (("x_provider_name",), "text"),
        "billing_account_id": (("bill_payer_account_id",), "text"),
        "sub_account_id": (("line_item_usage_account_id",), "text"),
        "service_name": (("product_servicecode", "line_item_product_code"), "text"),
        "region_id": (("product_region_code", "product_region"), "text"),
        "resource_id": (("line_item_resource_id",), "text"),
        "sku_id": (("product_sku",), "text"),
        "charge_category": (("x_charge_category",), "text"),
        "pricing_category": (("x_pricing_category",), "text"),
        "commitment_discount_id": (("x_commitment_discount_id",), "text"),
        "billed_cost": (("line_item_unblended_cost",), "money"),
        "effective_cost": (("x_amortized_cost",), "money"),
        "list_cost": (("pricing_public_on_demand_cost",), "money"),
        "billing_currency": (("line_item_currency_code",), "currency"),
        "tags": (("resource_tags",), "tags"),
    },
    required_columns=(("line_item_usage_start_date",), ("line_item_usage_end_date",),
                      ("line_item_unblended_cost",), ("line_item_currency_code",), ("line_item_line_item_type",)),
    required_values=REQUIRED_VALUES,
)
# Derived CUR 2.0 columns as SQL over the raw columns ({name} = a column, NULL when absent).
# Amortised cost per line type follows AWS's documented CUR "amortized cost" rules.
CUR2_DERIVED: dict[str, str] = {
    "x_provider_name": "'AWS'",
    "x_amortized_cost": (
        "CASE {line_item_line_item_type} "
        "WHEN 'SavingsPlanCoveredUsage' THEN $savings_plan_savings_plan_effective_cost "
        "WHEN 'SavingsPlanRecurringFee' THEN $savings_plan_total_commitment_to_date - $savings_plan_used_commitment "
        "WHEN 'SavingsPlanNegation' THEN 0 WHEN 'SavingsPlanUpfrontFee' THEN 0 "
        "WHEN 'DiscountedUsage' THEN $reservation_effective_cost "
        "WHEN 'RIFee' THEN $reservation_unused_amortized_upfront_fee_for_billing_period + $reservation_unused_recurring_fee "
        "WHEN 'Fee' THEN CASE WHEN coalesce({reservation_reservation_a_r_n}, '') <> '' THEN 0 "
        "ELSE $line_item_unblended_cost END "
        "ELSE $line_item_unblended_cost END"
    ),
    "x_charge_category": (
        "CASE WHEN {line_item_line_item_type} IS NULL THEN NULL "
        "WHEN {line_item_line_item_type} = 'Tax' THEN 'Tax' "
        "WHEN {line_item_line_item_type} IN ('Credit', 'Refund') THEN 'Credit' "
        "WHEN {line_item_line_item_type} IN ('Fee', 'RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee') "
        "THEN 'Purchase' ELSE 'Usage' END"
    ),
    "x_pricing_category": (
        "CASE WHEN {line_item_line_item_type} IN ('DiscountedUsage', 'SavingsPlanCoveredUsage') THEN 'Committed' "
        "WHEN {pricing_term} = 'Spot' THEN 'Dynamic' WHEN {pricing_term} = 'OnDemand' THEN 'Standard' END"
    ),
    "x_commitment_discount_id": (
        "CASE WHEN {line_item_line_item_type} IN ('DiscountedUsage', 'RIFee') THEN {reservation_reservation_a_r_n} "
        "WHEN {line_item_line_item_type} IN ('SavingsPlanCoveredUsage', 'SavingsPlanRecurringFee') "
        "THEN {savings_plan_savings_plan_a_r_n} END"
    ),
}
_REF = re.compile(r"(\$|\{)([a-z0-9_]+)\}?")


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    last_modified: datetime
    size: int = 0

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def period_of(key: str) -> str | None:
    """`.../BILLING_PERIOD=2026-11/...` or `.../20261101-20261201/...` -> `2026-11`."""
    for pattern in _PERIOD_KEYS:
        m = pattern.search(key)
        if m:
            return f"{m.group(1)}-{m.group(2)}"
    return None


def newest_manifests(objects: Iterable[S3Object], periods: Iterable[str]) -> dict[str, S3Object]:
    """Per wanted billing period, the newest manifest (LastModified, then key)."""
    wanted, out = set(periods), dict[str, S3Object]()
    for obj in objects:
        period = period_of(obj.key)
        if period in wanted and obj.key.lower().endswith("manifest.json"):
            best = out.get(period)
            if best is None or (obj.last_modified, obj.key) > (best.last_modified, best.key):
                out[period] = obj
    return out


def parse_manifest(manifest: S3Object, body: bytes) -> list[tuple[str, str]]:
    """The (bucket, key) of each data file a manifest lists (`s3://` URIs or keys in its bucket)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{manifest.uri}: the manifest is not JSON ({exc})") from None
    files = doc.get("dataFiles", doc.get("reportKeys")) if isinstance(doc, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{manifest.uri}: the manifest lists no data files (expected dataFiles or reportKeys)")
    out = []
    for f in files:
        if f.startswith("s3://"):
            bucket, _, key = f[5:].partition("/")
            out.append((bucket, key))
        else:
            out.append((manifest.bucket, f.lstrip("/")))
    return out


def file_columns(path: Path) -> tuple[str, list[str]]:
    """('parquet' | 'csv', column names) of a downloaded data file."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        try:
            return "parquet", list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:
            raise FocusFileError(f"cannot read Parquet: {exc}") from None
    try:
        with path.open("rb") as raw, (gzip.GzipFile(fileobj=raw) if head[:2] == b"\x1f\x8b" else raw) as stream, \
                io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise FocusFileError(f"cannot read the CSV header: {exc}") from None
    if not header:
        raise FocusFileError("the file is empty")
    return "csv", [h.strip() for h in header]


def spec_for(columns: Sequence[str]) -> FileSpec:
    present = set(columns)
    if "BilledCost" in present:
        return FOCUS
    if "line_item_unblended_cost" in present:
        return CUR2_SPEC
    raise FocusFileError("neither FOCUS (no BilledCost column) nor CUR 2.0 (no line_item_unblended_cost column)")


def derived_sql(columns: Iterable[str]) -> str:
    """The SELECT list adding CUR2_DERIVED columns; absent inputs read as NULL."""
    present = set(columns)

    def ref(m: re.Match[str]) -> str:
        name = m.group(2)
        col = '"' + name + '"' if name in present else "NULL"
        return f"try_cast({col} AS DECIMAL(38,12))" if m.group(1) == "$" else f"CAST({col} AS VARCHAR)"

    return ", ".join(f"{_REF.sub(ref, sql)} AS {name}" for name, sql in CUR2_DERIVED.items())


def derive_cur(src: Path, kind: str, columns: Sequence[str], dst: Path) -> None:
    """Write `src` plus the derived CUR 2.0 columns as Parquet (`dst`), values otherwise as read."""
    lit = "'" + str(src).replace("'", "''") + "'"
    reader = (f"read_parquet({lit})" if kind == "parquet" else
              f"read_csv({lit}, header=true, all_varchar=true, delim=',', quote='\"', escape='\"')")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = "'" + str(dst).replace("'", "''") + "'"
        con.execute(f"COPY (SELECT *, {derived_sql(columns)} FROM {reader}) TO {out} (FORMAT parquet)")  # noqa: S608
    except duckdb.Error as exc:
        raise FocusFileError(f"cannot read the file: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def parse_data_file(path: Path, rules: TagRules) -> ParsedFile:
    """One downloaded export file (FOCUS or CUR 2.0) into cost lines and quarantine rows."""
    kind, columns = file_columns(path)
    spec = spec_for(columns)
    if spec is FOCUS:
        return parse_focus_file(path, rules, FOCUS)
    derived = path.with_name(path.name + ".derived.parquet")
    derive_cur(path, kind, columns, derived)
    parsed = parse_focus_file(derived, rules, CUR2_SPEC)
    if kind == "csv":  # derived rows are numbered from 1; the CSV has a header line first
        for q in parsed.quarantine:
            q["line"] = (q.get("line") or 0) + 1
    return parsed


def periods(window: Window) -> list[str]:
    """Billing periods (YYYY-MM) overlapping the window."""
    out, d = [], window.start.date().replace(day=1)
    while datetime.combine(d, datetime.min.time()) < window.end:
        out.append(f"{d:%Y-%m}")
        d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


def _list(s3: Any, bucket: str, prefix: str) -> list[S3Object]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out.append(S3Object(bucket, o["Key"], o["LastModified"], int(o.get("Size", 0))))
    return out


def collect_period(s3: Any, listing: list[S3Object], settings: Settings, period: str,
                   count: RequestCount) -> Batch:
    """Download the newest manifest's files of `period`, read them all, or fail with nothing kept."""
    manifest = newest_manifests(listing, [period]).get(period)
    if manifest is None:
        return Batch(facts={}, requests=count.sent, details={"period": period, "skipped": "no manifest"})
    rules = tag_rules(settings)
    tables: list[pa.Table] = []
    quarantine: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="finops-aws-export-") as tmp:
        try:
            body = s3.get_object(Bucket=manifest.bucket, Key=manifest.key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise failure(exc, f"reading {manifest.uri}", settings.aws, count) from None
        try:
            files = parse_manifest(manifest, body)
        except ValueError as exc:
            raise SourceFailed(str(exc), requests=count.sent) from None
        for i, (bucket, key) in enumerate(files):
            uri = f"s3://{bucket}/{key}"
            local = Path(tmp) / f"{i:05d}-{Path(key).name}"
            try:
                s3.download_file(bucket, key, str(local))
            except (ClientError, BotoCoreError) as exc:
                raise failure(exc, f"downloading {uri}", settings.aws, count) from None
            try:
                parsed = parse_data_file(local, rules)
            except (FocusFileError, OSError) as exc:
                reason = str(exc).replace(str(local.with_name(local.name + ".derived.parquet")), uri)
                reason = reason.replace(str(local), uri)
                raise SourceFailed(f"{reason if reason.startswith(uri) else f'{uri}: {reason}'}",
                                   requests=count.sent) from None
            tables.append(parsed.rows)
            quarantine += [{**q, "origin": uri} for q in parsed.quarantine]
    rows = pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
    facts = {"cost_lines": rows} if tables else {}
    return Batch(facts=facts, quarantine=quarantine, requests=count.sent,
                 details={"period": period, "manifest": manifest.uri, "files": len(files),
                          "manifest_last_modified": manifest.last_modified.isoformat()})


def tasks(settings: Settings, window: Window, progress: Progress | None = None, *,
          now: datetime) -> list[Task]:
    """One task per billing period overlapping the window; the prefix is listed once, lazily."""
    aws = settings.aws
    if not aws.export_bucket or not aws.costs_from_exports():
        log.info("AWS exports: not the configured cost source (FINOPS_AWS_EXPORT_BUCKET, "
                 "FINOPS_AWS_COST_SOURCE), nothing to collect")
        return []
    bucket, prefix = aws.export_bucket, aws.export_prefix.lstrip("/")
    base = f"s3://{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")
    session = AwsSession(aws)
    listing: list[list[S3Object]] = []
    wanted = periods(window)

    def make(i: int, period: str) -> Task:
        def fetch() -> Batch:
            count = RequestCount()
            s3 = session.client("s3", count, region=aws.export_region)
            if not listing:
                try:
                    listing.append(_list(s3, bucket, prefix))
                except (ClientError, BotoCoreError) as exc:
                    raise failure(exc, f"listing {base}/", aws, count) from None
            batch = collect_period(s3, listing[0], settings, period, count)
            if progress:
                progress(i + 1, len(wanted))
            return batch
        return Task(scope=f"{base}#{period}", window=None, fetch=fetch)

    return [make(i, p) for i, p in enumerate(wanted)]
