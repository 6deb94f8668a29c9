"""A corpus of bad input, one parametrized case each: FOCUS rows and files, report parameters, and
malformed Cost Explorer, Azure and Prometheus answers. Every case asserts its clear error (naming the
field or parameter) or its quarantine reason; valid oddities (credits, unicode) must be kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops import reports
from finops.collect import ingest_focus
from finops.reports.params import ParamError, build_params
from finops.settings import Settings
from finops.sources.aws import ce as aws_ce
from finops.sources.azure import cost as az
from finops.sources.focus import FocusFileError, parse_focus_file
from finops.sources.prometheus.gpu import gpu_rows
from finops.sources.prometheus.parse import LabelMap, MalformedResult, Series, parse_matrix
from finops.sources.prometheus.tokens import token_rows
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.reliability.helpers import snapshot
from tests.support import example_a

HEADER = ("BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
          "ServiceName,BillingAccountId,ProviderName,ResourceId,Tags")
GOOD = "1.5,1.5,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-good,"
RULES = TagRules.build(["project", "team", "environment", "model_id"])


def line(billed: str = "2", effective: str = "2", currency: str = "USD", start: str = "2026-11-02T00:00:00Z",
         end: str = "2026-11-03T00:00:00Z", service: str = "EC2", tags: str = "") -> str:
    return f"{billed},{effective},{currency},{start},{end},Usage,{service},acct,AWS,i-case,{tags}"


def quoted(obj: Any) -> str:
    """A JSON value as one CSV field."""
    return '"' + json.dumps(obj, ensure_ascii=False).replace('"', '""') + '"'


BIG_TAGS = quoted({"Project": "p", "blob": "x" * (10 * 1024 * 1024)})  # 10 MB: over the 4 MB row limit
FAIR_TAGS = quoted({"Project": "Big", "blob": "x" * (3 * 1024 * 1024)})  # 3 MB: read

# (id, CSV row bytes, quarantine reason fragment). Each row sits between two good rows.
QUARANTINED: list[tuple[str, bytes, str]] = [
    ("date-text", line(start="yesterday").encode(), "ChargePeriodStart: not a timestamp: yesterday"),
    ("date-month-13", line(start="2026-13-40T00:00:00Z").encode(), "ChargePeriodStart: not a timestamp"),
    ("date-feb-30", line(start="2026-02-30T00:00:00Z").encode(), "ChargePeriodStart: not a timestamp"),
    ("date-epoch-number", line(start="1793577600").encode(), "ChargePeriodStart: not a timestamp: 1793577600"),
    ("date-empty", line(start="").encode(), "ChargePeriodStart: missing value"),
    ("date-year-0", line(start="0000-01-01T00:00:00Z").encode(), "ChargePeriodStart: out of range (years 1 to 9999)"),
    ("date-negative-year", line(start="-0044-03-15T00:00:00Z").encode(), "ChargePeriodStart: out of range"),
    ("end-before-start", line(end="2026-11-01T00:00:00Z").encode(), "ChargePeriodEnd: before ChargePeriodStart"),
    ("end-garbage", line(end="soon").encode(), "ChargePeriodEnd: not a timestamp: soon"),
    ("cost-nan", line(billed="NaN").encode(), "BilledCost: not a finite number within DECIMAL(38,12): NaN"),
    ("cost-infinity", line(billed="Infinity").encode(), "BilledCost: not a finite number within DECIMAL(38,12)"),
    ("cost-minus-inf", line(effective="-inf").encode(), "EffectiveCost: not a finite number within DECIMAL(38,12)"),
    ("cost-text", line(billed="abc").encode(), "BilledCost: not a finite number within DECIMAL(38,12): abc"),
    ("cost-decimal-comma", line(billed='"12,5"').encode(), "BilledCost: not a finite number within DECIMAL(38,12): 12,5"),
    ("cost-hex", line(billed="0x10").encode(), "BilledCost: not a finite number"),
    ("cost-1e400", line(billed="1e400").encode(), "BilledCost: not a finite number within DECIMAL(38,12): 1e400"),
    ("cost-1e30", line(billed="1" + "0" * 30).encode(), "BilledCost: not a finite number within DECIMAL(38,12)"),
    ("cost-27-digits", line(effective="9" * 27).encode(), "EffectiveCost: not a finite number within DECIMAL(38,12)"),
    ("cost-10e18", line(billed="1" + "0" * 18).encode(), "BilledCost: out of range (under 10^18)"),
    ("cost-minus-10e18", line(effective="-1" + "0" * 18 + ".5").encode(), "EffectiveCost: out of range (under 10^18)"),
    ("cost-null-literal", line(billed="NULL").encode(), "BilledCost: missing value"),
    ("cost-lowercase-null", line(billed="null").encode(), "BilledCost: missing value"),
    ("cost-empty", line(effective="").encode(), "EffectiveCost: missing value"),
    ("currency-unknown", line(currency="XYZ").encode(), "BillingCurrency: unknown currency XYZ"),
    ("currency-too-long", line(currency="USDX").encode(), "BillingCurrency: unknown currency USDX"),
    ("currency-null-literal", line(currency="NULL").encode(), "BillingCurrency: missing value"),
    ("tags-invalid-json", line(tags="{not json").encode(), "Tags: invalid JSON at position 1"),
    ("tags-json-array", line(tags=quoted([1, 2])).encode(), "Tags: not a JSON object"),
    ("tags-json-string", line(tags=quoted("Project=a")).encode(), "Tags: not a JSON object"),
    ("tags-nested-5000-deep", line(tags='"' + '{""a"":' * 5000 + "1" + "}" * 5000 + '"').encode(),
     "Tags: JSON nested too deeply"),
    ("tags-nan", line(tags='"{""Team"": NaN}"').encode(), "Tags: NaN is not a tag value"),
    ("tags-infinity", line(tags='"{""Team"": -Infinity}"').encode(), "Tags: -Infinity is not a tag value"),
    ("tags-lone-surrogate", line(tags='"{""Team"": ""a\\ud800""}"').encode(),
     "Tags: a value is not valid Unicode (a lone surrogate escape)"),
    ("tags-10-mb", line(tags=BIG_TAGS).encode(), "unreadable CSV row: LINE SIZE OVER MAXIMUM"),
    ("invalid-utf8-service", line(service="EC\udcff2").encode("utf-8", "surrogateescape"),
     "unreadable CSV row: INVALID ENCODING"),
    ("invalid-utf8-tags", line(tags=quoted({"Project": "a\udcc3("})).encode("utf-8", "surrogateescape"),
     "unreadable CSV row: INVALID ENCODING"),
    ("too-many-columns", (line() + ",extra").encode(), "unreadable CSV row: TOO MANY COLUMNS"),
    ("too-few-columns", b"2,2,USD", "unreadable CSV row: MISSING COLUMNS"),
    ("several-problems", line(billed="abc", currency="XYZ").encode(), "BilledCost: not a finite number"),
]


def parse_rows(tmp_path: Path, body: bytes) -> Any:
    path = tmp_path / "case.csv"
    path.write_bytes(f"{HEADER}\n{GOOD}\n".encode() + body + f"\n{GOOD}\n".encode())
    return parse_focus_file(path, RULES)


@pytest.mark.parametrize(("row", "reason"), [c[1:] for c in QUARANTINED], ids=[c[0] for c in QUARANTINED])
def test_focus_row_is_quarantined_with_its_reason(tmp_path: Path, row: bytes, reason: str) -> None:
    parsed = parse_rows(tmp_path, row)
    assert [q["line"] for q in parsed.quarantine] == [3]
    assert reason in parsed.quarantine[0]["reason"]
    # The good rows around it are kept, exactly.
    assert parsed.rows.column("billed_cost").to_pylist() == [Decimal("1.5"), Decimal("1.5")]
    assert parsed.total == 3


def test_several_problems_in_one_row_are_all_named(tmp_path: Path) -> None:
    [q] = parse_rows(tmp_path, line(billed="abc", currency="XYZ", end="soon").encode()).quarantine
    for part in ("BilledCost: not a finite number", "BillingCurrency: unknown currency XYZ",
                 "ChargePeriodEnd: not a timestamp"):
        assert part in q["reason"]


@dataclass(frozen=True)
class Kept:
    row: str
    column: str
    value: Any


KEPT: dict[str, Kept] = {
    "negative-credit": Kept(line(billed="-3.25", effective="-3.25"), "billed_cost", Decimal("-3.25")),
    "unicode-tag-value": Kept(line(tags=quoted({"Project": "チャットボット", "Team": " Équipe 🚀 "})), "team", "équipe 🚀"),
    "unicode-tag-key": Kept(line(tags=quoted({"Projekt-名前": "x", "Project": "Ünïcödé"})), "project", "ünïcödé"),
    "null-literal-tags": Kept(line(tags="NULL"), "tags", None),
    "tag-value-n/a-is-missing": Kept(line(tags=quoted({"Project": "n/a", "Team": "ml"})), "project", None),
    "tag-value-object-is-missing": Kept(line(tags=quoted({"Project": {"a": 1}})), "project", None),
    "tags-3-mb": Kept(line(tags=FAIR_TAGS), "project", "big"),
    "largest-amount": Kept(line(billed="999999999999999999.999999999999"), "billed_cost",
                           Decimal("999999999999999999.999999999999")),
    "largest-negative-amount": Kept(line(billed="-999999999999999999.5"), "billed_cost",
                                    Decimal("-999999999999999999.5")),
    "scientific-notation": Kept(line(billed="1.25e3"), "billed_cost", Decimal("1250")),
    "timezone-offset-to-utc": Kept(line(start="2026-11-02T05:30:00+05:30"), "charge_period_start",
                                   datetime(2026, 11, 2)),
    "sql-text-stored-verbatim": Kept(line(service="\"EC2'); DROP TABLE cost_lines;--\""), "service_name",
                                     "EC2'); DROP TABLE cost_lines;--"),
    "formula-text-stored-verbatim": Kept(line(service='"=HYPERLINK(""http://x"")"'), "service_name",
                                         '=HYPERLINK("http://x")'),
    "lowercase-currency": Kept(line(currency="eur"), "billing_currency", "EUR"),
}


@pytest.mark.parametrize("case", list(KEPT.values()), ids=list(KEPT))
def test_valid_oddities_are_kept(tmp_path: Path, case: Kept) -> None:
    parsed = parse_rows(tmp_path, case.row.encode())
    assert parsed.quarantine == []
    assert parsed.rows.num_rows == 3
    assert parsed.rows.column(case.column).to_pylist()[1] == case.value


# (id, file bytes, error fragment): files that cannot be read at all.
BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "the file is empty"),
    ("header-only", f"{HEADER}\n".encode(), "the file has a header but no rows"),
    ("duplicate-header", f"{HEADER},BilledCost\n{GOOD},1\n".encode(), "duplicate column(s) in the header: BilledCost"),
    ("duplicate-header-other-case", f"{HEADER},billedcost\n{GOOD},1\n".encode(),
     "duplicate column(s) in the header: BilledCost, billedcost"),
    ("not-focus", b"date,amount\n2026-11-02,1\n", "not a FOCUS file: missing required column(s) BilledCost"),
    ("lower-case-header", f"{HEADER.lower()}\n{GOOD}\n".encode(),
     "(column names are case-sensitive: found 'billedcost' for BilledCost, 'effectivecost' for EffectiveCost"),
    ("utf-16", f"{HEADER}\n{GOOD}\n".encode("utf-16"), "not a FOCUS file"),
    ("binary", bytes(range(256)) * 4, "not a FOCUS file"),
    ("mixed-line-endings", (example_a.focus_csv() + GOOD + "NULL\n").encode(),
     "the CSV structure is inconsistent (mixed line endings"),
    ("truncated", f"{HEADER}\n{GOOD}\n1.5,1.5,US".encode(), "the file is truncated"),
]


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_unreadable_file_fails_with_a_clear_error(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(body)
    with pytest.raises(FocusFileError) as err:
        parse_focus_file(path, RULES)
    assert message in str(err.value) and str(path) in str(err.value)


def test_parquet_doubles_that_are_not_money_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "doubles.parquet"
    duckdb.sql(f"""COPY (SELECT * FROM (VALUES (1.5::DOUBLE), ('nan'::DOUBLE), ('inf'::DOUBLE), (1e300::DOUBLE))
                   v(BilledCost), (SELECT 1.0 AS EffectiveCost, 'USD' AS BillingCurrency,
                   TIMESTAMP '2026-11-02' AS ChargePeriodStart, TIMESTAMP '2026-11-03' AS ChargePeriodEnd,
                   'Usage' AS ChargeCategory, 'EC2' AS ServiceName, 'a' AS BillingAccountId, 'AWS' AS ProviderName))
                   TO '{path}' (FORMAT parquet)""")
    parsed = parse_focus_file(path, RULES)
    assert parsed.rows.column("billed_cost").to_pylist() == [Decimal("1.5")]
    assert [q["reason"].split(":")[0] for q in parsed.quarantine] == ["BilledCost"] * 3


def test_quarantine_lines_count_quoted_values_that_span_lines(tmp_path: Path) -> None:
    note = '"{\n""Project"": ""a"",\n""Team"": ""b""}"'  # JSON whose whitespace is two line breaks
    path = tmp_path / "multiline.csv"
    path.write_text(f"{HEADER}\n{line(tags=note)}\n{GOOD}\n{line(currency='XYZ')}\n")
    parsed = parse_focus_file(path, RULES)
    # The tagged row spans lines 2-4, the good row is line 5: the bad currency is on line 6.
    assert [(q["line"], q["reason"]) for q in parsed.quarantine] == [(6, "BillingCurrency: unknown currency XYZ")]
    assert parsed.rows.num_rows == 2


def test_parquet_booleans_are_not_money(tmp_path: Path) -> None:
    path = tmp_path / "booleans.parquet"
    duckdb.sql(f"""COPY (SELECT * FROM (VALUES (true), (false)) v(BilledCost), (SELECT 1.0 AS EffectiveCost,
                   'USD' AS BillingCurrency, TIMESTAMP '2026-11-02' AS ChargePeriodStart,
                   TIMESTAMP '2026-11-03' AS ChargePeriodEnd, 'Usage' AS ChargeCategory, 'EC2' AS ServiceName,
                   'a' AS BillingAccountId, 'AWS' AS ProviderName)) TO '{path}' (FORMAT parquet)""")
    parsed = parse_focus_file(path, RULES)
    assert parsed.rows.num_rows == 0  # never stored as 1.00 / 0.00
    assert [q["reason"] for q in parsed.quarantine] == ["BilledCost: not a finite number within DECIMAL(38,12): "
                                                        + v for v in ("true", "false")]


def test_the_whole_corpus_in_one_file_accounts_for_every_row(store: Store, tmp_path: Path) -> None:
    """Through the real ingest path: every row is either stored or quarantined, and the sum is exact."""
    rows = [c[1] for c in QUARANTINED if c[0] != "too-few-columns"] + [k.row.encode() for k in KEPT.values()]
    path = tmp_path / "corpus.csv"
    path.write_bytes(f"{HEADER}\n".encode() + b"\n".join(rows) + b"\n")
    [r] = ingest_focus(store, RULES, [path])
    assert r.status == "succeeded", r.error
    assert (r.rows, r.quarantined) == (len(KEPT), len(QUARANTINED) - 1)
    with localcontext(Context(prec=60)):  # Decimal's default 28 digits would round these sums
        want = sum((Decimal(k.row.split(",")[0]) for k in KEPT.values()), Decimal(0))
    assert store.query("SELECT sum(billed_cost) FROM cost_lines")[0][0] == want
    assert store.query("SELECT sum(billed_cost) FROM cost_daily")[0][0] == want
    assert store.query("SELECT count(*) FROM quarantine WHERE run_id = ?", [r.run_id])[0][0] == r.quarantined


# --- report parameters --------------------------------------------------------------------------

W = {"start": "2026-11-01", "end": "2026-11-08"}
PARAMS: list[tuple[str, dict[str, Any], str, str]] = [
    ("group-by-drop-table", {"group_by": "project;drop table cost_lines"}, "group_by", "unknown dimension"),
    ("group-by-union", {"group_by": "team) UNION SELECT * FROM api_keys --"}, "group_by", "unknown dimension"),
    ("group-by-nul-byte", {"group_by": "project\x00"}, "group_by", "unknown dimension"),
    ("group-by-repeated", {"group_by": "team,TEAM"}, "group_by", "a dimension is repeated"),
    ("granularity-injection", {**W, "granularity": "day; DROP TABLE cost_lines"}, "granularity", "'day', 'week'"),
    ("cost-basis-injection", {**W, "cost_basis": "effective' OR '1'='1"}, "cost_basis", "'effective' or 'billed'"),
    ("scope-injection", {**W, "scope": "all--"}, "scope", "'all' or 'accelerator'"),
    ("currency-injection", {**W, "currency": "US'"}, "currency", "not a currency code"),
    ("required-tags-injection", {"required_tags": "project' --"}, "required_tags", "unknown dimension"),
    ("filter-unknown-dim", {**W, "filters": {"tenant": "x"}}, "filters", "unknown dimension(s) 'tenant'"),
    ("unknown-parameter", {**W, "bogus": "1"}, "bogus", "Extra inputs are not permitted"),
    ("huge-range", {"start": "0001-01-01", "end": "9999-12-31"}, "start", "out of range (1900-01-01 to 2999-12-31)"),
    ("range-over-three-years", {"start": "1990-01-01", "end": "2026-01-01"}, "end", "at most 1098 allowed"),
    ("reversed-dates", {"start": "2026-11-08", "end": "2026-11-01"}, "end", "must be after start (2026-11-08)"),
    ("empty-range", {"start": "2026-11-08", "end": "2026-11-08"}, "end", "must be after start"),
    ("end-near-year-1", {"end": "0001-01-05"}, "end", "out of range"),
    ("week-after-year-9999", {"week": "9999-W52"}, "week", "does not exist"),
    ("week-in-year-1", {"week": "0001-W01"}, "week", "out of range"),
    ("week-54", {"week": "2026-W54"}, "week", "does not exist"),
    ("week-injection", {"week": "2026-W47'; --"}, "week", "not an ISO week"),
    ("week-and-dates", {"week": "2026-W47", **W}, "week", "not both"),
    ("date-feb-30", {"start": "2026-02-30", "end": "2026-03-02"}, "start", "not a date"),
    ("date-with-time", {"start": "2026-11-01T00:00"}, "start", "not a date"),
    ("date-five-digit-year", {"start": "99999-01-01"}, "start", "not a date"),
    ("date-blank", {"start": " ", "end": "2026-11-03"}, "start", "not a date"),
    ("bad-enum-granularity", {**W, "granularity": "hour"}, "granularity", "'day', 'week', 'month' or 'total'"),
    ("bad-enum-shared-key", {**W, "shared_cost_key": "random"}, "shared_cost_key", "'gpu_hours', 'tokens' or 'even'"),
    ("threshold-nan", {**W, "idle_threshold": float("nan")}, "idle_threshold", "less than or equal to 1"),
    ("threshold-infinity", {**W, "idle_threshold": "inf"}, "idle_threshold", "less than or equal to 1"),
    ("threshold-negative", {**W, "idle_threshold": -0.1}, "idle_threshold", "greater than or equal to 0"),
    ("threshold-text", {**W, "idle_threshold": "abc"}, "idle_threshold", "valid number"),
]


@pytest.mark.parametrize(("kwargs", "param", "fragment"), [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS])
def test_bad_report_parameter_is_named(kwargs: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(ParamError) as err:
        build_params(**kwargs)
    assert err.value.param == param
    assert fragment in err.value.message


def test_an_injection_in_a_filter_value_is_only_a_value(store: Store, settings: Settings, tmp_path: Path) -> None:
    example_a.load(store, RULES, tmp_path)
    before = snapshot(store)
    for name in ("unit-economics", "idle-gpus", "untagged-spend", "weekly"):
        params = build_params(start="2026-11-02", end="2026-11-09", filters={"team": "x' OR '1'='1"})
        report = reports.get(name)(store, settings, params)
        assert report.rows == [], name
    assert snapshot(store) == before


# --- malformed Cost Explorer answers -------------------------------------------------------------

TAG = (aws_ce.Key("TAG", "Project"),)
METRICS = ("UnblendedCost", "AmortizedCost")


def ce_group(keys: Any, billed: Any = "1", unit: str = "USD") -> dict[str, Any]:
    return {"Keys": keys, "Metrics": {"UnblendedCost": {"Amount": billed, "Unit": unit},
                                      "AmortizedCost": {"Amount": "1", "Unit": unit}}}


def ce_page(groups: list[Any], start: Any = "2026-11-02") -> dict[str, Any]:
    return {"ResultsByTime": [{"TimePeriod": {"Start": start, "End": "2026-11-03"}, "Groups": groups}]}


CE: list[tuple[str, Any, str]] = [
    ("no-time-period", {"ResultsByTime": [{"Groups": []}]}, "a result without a valid TimePeriod.Start"),
    ("results-not-a-list", {"ResultsByTime": {"a": 1}}, "ResultsByTime is not a list"),
    ("page-not-an-object", [1, 2], "a page is not an object"),
    ("bad-start-date", ce_page([ce_group(["Project$a"])], start="2026-13-01"), "without a valid TimePeriod.Start"),
    ("start-not-text", ce_page([ce_group(["Project$a"])], start=20261102), "without a valid TimePeriod.Start"),
    ("keys-missing", ce_page([ce_group([])]), "a group's Keys [] are not 1 text value(s)"),
    ("keys-not-a-list", ce_page([ce_group("Project$a")]), "are not 1 text value(s)"),
    ("keys-wrong-tag", ce_page([ce_group(["Team$a"])]), "group key 'Team$a' is not 'Project$<value>'"),
    ("amount-nan", ce_page([ce_group(["Project$a"], "NaN")]), "UnblendedCost amount 'NaN' is not finite"),
    ("amount-infinity", ce_page([ce_group(["Project$a"], "Infinity")]), "amount 'Infinity' is not finite"),
    ("amount-text", ce_page([ce_group(["Project$a"], "12,50")]), "amount '12,50' is not a decimal number"),
    ("amount-huge", ce_page([ce_group(["Project$a"], "1e400")]), "amount '1e400' is out of range"),
    ("amount-10e18", ce_page([ce_group(["Project$a"], "-1E+18")]), "amount '-1E+18' is out of range (under 10^18)"),
    ("metric-missing", ce_page([{"Keys": ["Project$a"], "Metrics": {"UnblendedCost": {"Amount": "1"}}}]),
     "metric AmortizedCost missing from a result"),
    ("metric-not-an-object", ce_page([{"Keys": ["Project$a"], "Metrics": {"UnblendedCost": "1"}}]),
     "metric UnblendedCost missing from a result"),
    ("metrics-not-an-object", ce_page([{"Keys": ["Project$a"], "Metrics": [1]}]), "Metrics is not an object"),
    ("two-currencies", ce_page([{"Keys": ["Project$a"], "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"},
                                                                    "AmortizedCost": {"Amount": "1", "Unit": "EUR"}}}]),
     "UnblendedCost in USD but AmortizedCost in EUR"),
]


@pytest.mark.parametrize(("pages", "message"), [c[1:] for c in CE], ids=[c[0] for c in CE])
def test_malformed_cost_explorer_answer_is_named(pages: Any, message: str) -> None:
    with pytest.raises(ValueError) as err:
        aws_ce.parse_pages(pages if isinstance(pages, list) else [pages], TAG, METRICS)
    assert message in str(err.value)


def test_an_amount_of_many_digits_is_stored_exactly() -> None:
    """Decimal's default 28 digits cannot hold 17 + 12 digits: the store's rounding must not fail."""
    cells = aws_ce.parse_pages([ce_page([ce_group(["Project$a"], "12345678901234567.123456789012")])], TAG, METRICS)
    table = aws_ce.to_rows({(d, tuple(zip(TAG, v, strict=True))): c for (d, v), c in cells.items()}, {},
                           Settings().aws, RULES)
    assert table.column("billed_cost").to_pylist() == [Decimal("12345678901234567.123456789012")]


# --- malformed Azure answers --------------------------------------------------------------------

PROJECT = az.Plan("project", "TagKey", "Project")
NOV = Window(datetime(2026, 11, 1), datetime(2026, 11, 3))
COLUMNS = [{"name": n} for n in ("Cost", "ResourceId", "TagKey", "TagValue", "UsageDate", "Currency")]


def az_row(cost: Any = 1.5, rid: Any = "/subscriptions/s/vm-1", value: Any = "a", day: Any = 20261101,
           currency: Any = "USD", key: Any = "Project") -> list[Any]:
    return [cost, rid, key, value, day, currency]


AZURE: list[tuple[str, Any, str]] = [
    ("cost-text", az_row(cost="1.5"), "Cost: not a number: '1.5'"),
    ("cost-nan", az_row(cost=float("nan")), "Cost: not finite: nan"),
    ("cost-infinity", az_row(cost=float("inf")), "Cost: not finite: inf"),
    ("cost-boolean", az_row(cost=True), "Cost: not a number: True"),
    ("cost-null", az_row(cost=None), "Cost: not a number: None"),
    ("cost-huge", az_row(cost=1e300), "Cost: out of range (under 10^18)"),
    ("cost-10e18", az_row(cost=1e18), "Cost: out of range (under 10^18)"),
    ("date-no-such-day", az_row(day=20261399), "UsageDate: no such day: 20261399"),
    ("date-outside-query", az_row(day=20261105), "UsageDate 20261105 is outside the queried period"),
    ("date-float", az_row(day=20261101.0), "UsageDate: not a yyyymmdd number"),
    ("currency-unknown", az_row(currency="XYZ"), "Currency: not an ISO 4217 code: 'XYZ'"),
    ("currency-number", az_row(currency=840), "Currency: not text: 840"),
    ("resource-number", az_row(rid=5), "ResourceId: not text: 5"),
    ("tag-key-of-another-query", az_row(key="Team"), "TagKey 'Team' in the answer to a query for 'Project'"),
    ("short-row", [1.5, "x"], "row has 2 values for 6 columns"),
    ("row-not-a-list", {"Cost": 1}, "row has no values for 6 columns"),
]


@pytest.mark.parametrize(("row", "reason"), [c[1:] for c in AZURE], ids=[c[0] for c in AZURE])
def test_malformed_azure_row_is_quarantined_with_its_reason(row: Any, reason: str) -> None:
    good = az_row(rid="/subscriptions/s/vm-2")
    page = az.parse_page({"columns": COLUMNS, "rows": [good, row]}, PROJECT, NOV, "azure:test page 1")
    assert [r.key.resource_id for r in page.rows] == ["/subscriptions/s/vm-2"]
    [q] = page.quarantine
    assert reason in q["reason"] and q["line"] == 2 and q["origin"] == "azure:test page 1"


@pytest.mark.parametrize("columns", [[{"name": "X"}], "abc", None], ids=["cost-missing", "columns-text", "no-columns"])
def test_an_azure_answer_without_its_columns_fails_naming_them(columns: Any) -> None:
    with pytest.raises(az.AzureAnswerError, match="the answer has no"):
        az.parse_page({"columns": columns, "rows": [az_row()]}, PROJECT, NOV, "azure:test")


def test_azure_valid_oddities_are_kept() -> None:
    rows = [az_row(value="チーム"), az_row(cost=-3.25, rid="/subscriptions/s/credit"), az_row(day="20261102")]
    page = az.parse_page({"columns": COLUMNS, "rows": rows}, PROJECT, NOV, "azure:test")
    assert page.quarantine == []
    assert [(r.value, r.amount) for r in page.rows] == [("チーム", Decimal("1.5")), ("a", Decimal("-3.25")),
                                                       ("a", Decimal("1.5"))]


# --- malformed Prometheus answers ---------------------------------------------------------------

PROM: list[tuple[str, Any, str]] = [
    ("not-a-list", {"resultType": "matrix", "result": []}, "result is not a list"),
    ("vector-not-matrix", [{"metric": {}, "value": [1793581200, "1"]}], "has no metric/values (not a matrix)"),
    ("metric-not-an-object", [{"metric": [], "values": []}], "has no metric/values"),
    ("point-without-value", [{"metric": {}, "values": [[1793581200]]}], "has a point that is not [time, \"value\"]"),
    ("value-not-a-number", [{"metric": {}, "values": [[1793581200, "x"]]}], "has a point that is not"),
    ("time-nan", [{"metric": {}, "values": [["NaN", "1"]]}], "has a point that is not"),
    ("time-infinite", [{"metric": {}, "values": [["+Inf", "1"]]}], "has a point that is not"),
    ("time-after-year-9999", [{"metric": {}, "values": [[1e13, "1"]]}], "point time outside the years 1970 to 9999"),
    ("time-negative", [{"metric": {}, "values": [[-3600, "1"]]}], "point time outside the years 1970 to 9999"),
]


@pytest.mark.parametrize(("result", "message"), [c[1:] for c in PROM], ids=[c[0] for c in PROM])
def test_malformed_prometheus_result_is_named(result: Any, message: str) -> None:
    with pytest.raises(MalformedResult) as err:
        parse_matrix(result)
    assert message in str(err.value)


T = 1793581200  # 2026-11-02T01:00Z: the point of the hour 00:00-01:00


@pytest.mark.parametrize(("value", "reason"), [
    (float("nan"), "prompt_tokens increase nan is not a count"),
    (-5.0, "prompt_tokens increase -5.0 is not a count"),
    (1e30, "prompt_tokens increase 1e+30 is not a count"),
    (float("inf"), "prompt_tokens increase inf is not a count"),
], ids=["nan", "negative", "1e30", "infinite"])
def test_token_increase_that_is_not_a_count_is_quarantined(value: float, reason: str) -> None:
    lm = LabelMap.from_settings(Settings())
    labels = {"model_name": "m", "instance": "h:8000"}
    series = {"prompt_tokens": [Series(labels, [(T, value), (T + 3600, 10.0)])]}
    rows, quarantine = token_rows(series, lm, 3600, ("model_name",), "vllm")
    assert [r["prompt_tokens"] for r in rows] == [10]
    assert [q["reason"] for q in quarantine] == [reason]


@pytest.mark.parametrize("busy", [1.5, -0.2, float("nan")], ids=["above-1", "negative", "nan"])
def test_busy_fraction_outside_0_1_is_quarantined(busy: float) -> None:
    lm = LabelMap.from_settings(Settings())
    series = {"busy": [Series({"UUID": "GPU-1"}, [(T, busy), (T + 3600, 0.5)])]}
    rows, quarantine = gpu_rows(series, [], lm, 3600)
    assert [r["busy"] for r in rows] == [0.5]
    assert [q["reason"] for q in quarantine] == [f"busy fraction {busy!r} is outside 0..1"]
