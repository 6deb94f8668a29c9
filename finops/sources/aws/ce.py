"""AWS Cost Explorer (GetCostAndUsage, DAILY): cost per day and joint tag tuple, exact, cached, restated.

Query plan. GetCostAndUsage groups by at most two keys, so the keys (four tags, then SERVICE and
LINKED_ACCOUNT) are taken two at a time, in levels. Level 1 groups the whole window by the first
pair and so discovers every value pair that has cost. Each later level is asked once per value
combination found so far, filtered on exactly those values (a missing tag is `MatchOptions:
ABSENT`, what `Project$` means), and grouped by its own pair. The filters of one level partition
the cost, so the last level yields every full key tuple with its exact cost per day. One ungrouped
query then gives the window's total; the collected total must equal it, else the run fails.
Requests per window: 2 + (value pairs found by level 1) + (combinations found by level 2), each
extra page one more (e.g. 15 for the 3-day, 16-line test scenario; 7 without SERVICE/LINKED_ACCOUNT).

Cache. Once a window has passed the total check, the answers of a closed window (no `Estimated`
day, ending before the restatement horizon) are stored as JSON files named by the SHA-256 of the
request body plus the credential identity (profile, role, endpoint), all pages in one file. A
re-run of that window sends no request. A window is never cached while it can still be restated;
delete the directory (or set `ce_cache` false) to re-read older months that AWS amended anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from finops import money
from finops.batch import Batch, Progress, SourceFailed, Task
from finops.settings import AwsSettings, Settings
from finops.sources.aws.client import AwsSession, RequestCount, endpoint_for, failure
from finops.tags import TagRules
from finops.timeutil import Window

log = logging.getLogger(__name__)

SCOPE = "aws_ce"
WHAT = "Cost Explorer GetCostAndUsage"
MAX_PAGES = 1000


@dataclass(frozen=True)
class Key:
    """One GroupBy key: a cost allocation tag or a dimension."""

    type: str  # "TAG" | "DIMENSION"
    name: str

    def group(self) -> dict[str, str]:
        return {"Type": self.type, "Key": self.name}

    def condition(self, value: str | None) -> dict[str, Any]:
        """The filter selecting cost whose key has `value` (None: tag absent)."""
        if self.type == "TAG":
            if value is None:
                return {"Tags": {"Key": self.name, "MatchOptions": ["ABSENT"]}}
            return {"Tags": {"Key": self.name, "Values": [value], "MatchOptions": ["EQUALS"]}}
        if value is None:
            raise ValueError(f"dimension {self.name} has an empty value and cannot be filtered on")
        return {"Dimensions": {"Key": self.name, "Values": [value], "MatchOptions": ["EQUALS"]}}

    def value(self, raw: str) -> str | None:
        """`Project$chatbot` -> `chatbot`, `Project$` -> None (untagged); dimension values are bare."""
        if self.type != "TAG":
            return raw or None
        name, sep, value = raw.partition("$")
        if not sep or name != self.name:
            raise ValueError(f"group key {raw!r} is not '{self.name}$<value>'")
        return value or None


Combo = tuple[tuple[Key, str | None], ...]


def levels(aws: AwsSettings) -> list[tuple[Key, ...]]:
    """Keys two at a time: tags from the last configured one (few values) first, dimensions last."""
    tags = [Key("TAG", k) for k in reversed(list(aws.tag_keys.values()))]
    out = [tuple(tags[i:i + 2]) for i in range(0, len(tags), 2)]
    dims = list(dict.fromkeys(aws.ce_dimensions))
    out += [tuple(Key("DIMENSION", d) for d in dims[i:i + 2]) for i in range(0, len(dims), 2)]
    return out


def metrics(aws: AwsSettings) -> tuple[str, str]:
    return aws.billed_metric, aws.effective_metric


def build_request(window: Window, metric_names: Sequence[str], group_by: Sequence[Key] = (),
                  combo: Combo = (), token: str | None = None) -> dict[str, Any]:
    """The one place a request is built: the same query always serialises to the same body."""
    req: dict[str, Any] = {
        "TimePeriod": {"Start": window.start.date().isoformat(), "End": window.end.date().isoformat()},
        "Granularity": "DAILY",
        "Metrics": list(dict.fromkeys(metric_names)),
    }
    conditions = [k.condition(v) for k, v in combo]
    if conditions:
        req["Filter"] = conditions[0] if len(conditions) == 1 else {"And": conditions}
    if group_by:
        req["GroupBy"] = [k.group() for k in group_by]
    if token:
        req["NextPageToken"] = token
    return req


@dataclass
class Cell:
    billed: Decimal
    effective: Decimal
    unit: str | None
    estimated: bool


def _amount(m: dict[str, Any], metric: str) -> tuple[Decimal, str | None]:
    if not isinstance(m.get(metric), dict):
        raise ValueError(f"metric {metric} missing from a result")
    raw = m[metric].get("Amount")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{metric} amount {raw!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{metric} amount {raw!r} is not finite")
    if not money.in_range(value):
        raise ValueError(f"{metric} amount {raw!r} is out of range (under {money.LIMIT_TEXT})")
    unit = m[metric].get("Unit")
    return value, unit if isinstance(unit, str) else None


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"malformed answer: {what} is not a list")
    return value


def _day(result: Any) -> date:
    try:
        return date.fromisoformat(result["TimePeriod"]["Start"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"malformed answer: a result without a valid TimePeriod.Start: {str(result)[:120]}") from None


def _group(g: Any, group_by: Sequence[Key], day: date) -> tuple[tuple[str | None, ...], dict[str, Any]]:
    keys = g.get("Keys") if isinstance(g, dict) else None
    if not isinstance(keys, list) or len(keys) != len(group_by) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"malformed answer: {day}: a group's Keys {str(keys)[:80]} are not "
                         f"{len(group_by)} text value(s)")
    metrics_ = g.get("Metrics") or {}
    if not isinstance(metrics_, dict):
        raise ValueError(f"malformed answer: {day}: a group's Metrics is not an object")
    return tuple(k.value(raw) for k, raw in zip(group_by, keys, strict=True)), metrics_


def parse_pages(pages: Sequence[dict[str, Any]], group_by: Sequence[Key],
                metric_names: tuple[str, str]) -> dict[tuple[date, tuple[str | None, ...]], Cell]:
    """Merge pages by TimePeriod into {(day, key values): amounts}; `Total` when ungrouped.

    Raises ValueError naming what is wrong when an answer is not in Cost Explorer's shape."""
    billed_m, effective_m = metric_names
    out: dict[tuple[date, tuple[str | None, ...]], Cell] = {}
    for page in pages:
        if not isinstance(page, dict):
            raise ValueError("malformed answer: a page is not an object")
        for result in _list(page.get("ResultsByTime"), "ResultsByTime"):
            day = _day(result)
            estimated = bool(result.get("Estimated", False))
            if group_by:
                entries = [_group(g, group_by, day) for g in _list(result.get("Groups"), "Groups")]
            else:
                total = result.get("Total") or {}
                if not isinstance(total, dict):
                    raise ValueError(f"malformed answer: {day}: Total is not an object")
                entries = [((), total)] if total else []
            for values, m in entries:
                billed, unit = _amount(m, billed_m)
                effective, unit_e = _amount(m, effective_m)
                if unit and unit_e and unit != unit_e:
                    raise ValueError(f"{day}: {billed_m} in {unit} but {effective_m} in {unit_e}")
                unit = unit or unit_e
                cell = out.get((day, values))
                if cell is None:
                    out[(day, values)] = Cell(billed, effective, unit, estimated)
                    continue
                # A group split over pages: add its parts (the total check guards against doubles).
                if cell.unit and unit and cell.unit != unit:
                    raise ValueError(f"{day}: one group in two currencies ({cell.unit}, {unit})")
                cell.billed += billed
                cell.effective += effective
                cell.unit = cell.unit or unit
                cell.estimated |= estimated
    return out


def restatement_window(settings: Settings, today: date) -> Window:
    """The trailing window each run re-collects: `restatement_days` back from today (exclusive), and
    from the first of the previous month while today is within its first `restatement_month_days`."""
    aws = settings.aws
    start = today - timedelta(days=max(1, aws.restatement_days))
    if today.day <= aws.restatement_month_days:
        start = min(start, (today.replace(day=1) - timedelta(days=1)).replace(day=1))
    return Window.from_dates(start, today)


class ResponseCache:
    """Closed answers as JSON files, one per request body (all its pages), written atomically."""

    def __init__(self, directory: Path | None, identity: str):
        self.directory = directory
        self.identity = identity

    def _path(self, req: dict[str, Any]) -> Path | None:
        if self.directory is None:
            return None
        body = json.dumps({"identity": self.identity, "request": req}, sort_keys=True)
        return self.directory / f"{hashlib.sha256(body.encode()).hexdigest()}.json"

    def get(self, req: dict[str, Any]) -> list[dict[str, Any]] | None:
        path = self._path(req)
        if path is None or not path.is_file():
            return None
        try:
            return list(json.loads(path.read_text())["pages"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable entry is a miss, not an error

    def put(self, req: dict[str, Any], pages: list[dict[str, Any]]) -> None:
        path = self._path(req)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"request": req, "pages": pages}))
        os.replace(tmp, path)


@dataclass
class Query:
    """Runs requests: from the cache when closed and stored, else page by page from the API."""

    ce: Any
    aws: AwsSettings
    count: RequestCount
    cache: ResponseCache
    closed: bool  # the window ends before the restatement horizon
    stats: dict[str, int] = field(default_factory=lambda: {"queries": 0, "cached": 0, "pages": 0})
    # Answers to store once the whole window has passed the total check, never before.
    pending: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)

    def pages(self, window: Window, group_by: Sequence[Key] = (), combo: Combo = ()) -> list[dict[str, Any]]:
        names = metrics(self.aws)
        req = build_request(window, names, group_by, combo)
        self.stats["queries"] += 1
        cached = self.cache.get(req) if self.closed else None
        if cached is not None:
            self.stats["cached"] += 1
            return cached
        pages: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            try:
                page = self.ce.get_cost_and_usage(**build_request(window, names, group_by, combo, token))
            except (ClientError, BotoCoreError) as exc:
                raise failure(exc, WHAT, self.aws, self.count) from None
            page.pop("ResponseMetadata", None)
            pages.append(page)
            self.stats["pages"] += 1
            token = page.get("NextPageToken")
            if not token:
                break
            if token in seen or len(pages) >= MAX_PAGES:
                raise SourceFailed(f"{WHAT}: paging does not end (token repeated or over {MAX_PAGES} pages)",
                                   requests=self.count.sent)
            seen.add(token)
        if self.closed and not any(r.get("Estimated") for p in pages for r in p.get("ResultsByTime", [])):
            self.pending.append((req, pages))
        return pages

    def commit(self) -> None:
        for req, pages in self.pending:
            self.cache.put(req, pages)
        self.pending.clear()


def collect_cells(q: Query, window: Window) -> tuple[dict[tuple[date, Combo], Cell], dict[date, Cell]]:
    """Walk the query plan: every full key combination's cost per day, and the ungrouped daily totals."""
    names = metrics(q.aws)
    plan = levels(q.aws)
    prefixes: list[Combo] = [()]
    cells: dict[tuple[date, Combo], Cell] = {}
    for depth, level in enumerate(plan):
        found: dict[Combo, None] = {}
        for prefix in prefixes:
            for (day, values), cell in parse_pages(q.pages(window, level, prefix), level, names).items():
                combo = prefix + tuple(zip(level, values, strict=True))
                found[combo] = None
                if depth == len(plan) - 1:
                    cells[(day, combo)] = cell
        prefixes = list(found)
    totals = {day: cell for (day, _), cell in parse_pages(q.pages(window), (), names).items()}
    if not plan:
        cells = {(day, ()): cell for day, cell in totals.items()}
    return cells, totals


def check_totals(cells: dict[tuple[date, Combo], Cell], totals: dict[date, Cell], window: Window,
                 tolerance: Decimal) -> None:
    """Fail unless the collected cost equals the ungrouped cost, per day and for the window."""
    def sums(items: Sequence[tuple[date, Cell]], day: date | None = None) -> dict[tuple[str, str | None], Decimal]:
        out: dict[tuple[str, str | None], Decimal] = {}
        for d, c in items:
            if day is None or d == day:
                out[("billed", c.unit)] = out.get(("billed", c.unit), Decimal(0)) + c.billed
                out[("effective", c.unit)] = out.get(("effective", c.unit), Decimal(0)) + c.effective
        return {k: v for k, v in out.items() if v != 0}

    collected = [(day, c) for (day, _), c in cells.items()]
    ungrouped = list(totals.items())
    days = sorted({d for d, _ in collected} | set(totals))
    # The window first (the headline figure), then each day (the first day that differs).
    checks = [(str(window), sums(collected), sums(ungrouped))]
    checks += [(str(d), sums(collected, d), sums(ungrouped, d)) for d in days]
    for scope, got, want in checks:
        for key in sorted(set(got) | set(want), key=str):
            a, b = got.get(key, Decimal(0)), want.get(key, Decimal(0))
            if abs(a - b) > tolerance:
                kind, unit = key
                raise ValueError(f"{scope}: the collected {kind} cost {a} {unit or ''} differs from the "
                                 f"ungrouped total {b} {unit or ''}; the query plan missed or doubled cost")


COST_SCHEMA = pa.schema([
    ("charge_period_start", pa.timestamp("us")), ("charge_period_end", pa.timestamp("us")),
    ("charge_date", pa.date32()), ("provider_name", pa.string()), ("billing_account_id", pa.string()),
    ("sub_account_id", pa.string()), ("service_name", pa.string()), ("resource_id", pa.string()),
    ("resource_key", pa.string()), ("billed_cost", money.ARROW_MONEY),
    ("effective_cost", money.ARROW_MONEY), ("billing_currency", pa.string()), ("estimated", pa.bool_()),
    ("tags", pa.string()), ("project", pa.string()), ("team", pa.string()), ("environment", pa.string()),
    ("model_id", pa.string()),
])
_DIMENSION_COLUMN = {"SERVICE": "service_name", "LINKED_ACCOUNT": "sub_account_id"}


def to_rows(cells: dict[tuple[date, Combo], Cell], totals: dict[date, Cell], aws: AwsSettings,
            rules: TagRules) -> pa.Table:
    """Cost lines: one per day and key combination with cost; dims through the tag rules."""
    rows: list[dict[str, Any]] = []
    key_dim = {key: dim for dim, key in aws.tag_keys.items()}
    for (day, combo), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], repr(kv[0][1]))):
        if cell.billed == 0 and cell.effective == 0:
            continue
        tags = {k.name: v for k, v in combo if k.type == "TAG" and v is not None}
        start = datetime.combine(day, time())
        row: dict[str, Any] = {
            "charge_period_start": start, "charge_period_end": start + timedelta(days=1), "charge_date": day,
            "provider_name": "AWS", "billing_account_id": None, "sub_account_id": None, "service_name": None,
            "resource_id": None, "resource_key": None,
            "billed_cost": money.to_store(cell.billed), "effective_cost": money.to_store(cell.effective),
            "billing_currency": cell.unit or "USD",
            "estimated": cell.estimated or (day in totals and totals[day].estimated),
            "tags": json.dumps(tags, sort_keys=True) if tags else None,
            "project": None, "team": None, "environment": None, "model_id": None,
        }
        for k, v in combo:
            if k.type == "DIMENSION" and k.name in _DIMENSION_COLUMN:
                row[_DIMENSION_COLUMN[k.name]] = v
            elif k.type == "TAG" and key_dim.get(k.name) in rules.dims and key_dim[k.name] in row:
                row[key_dim[k.name]] = rules.value(v)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=COST_SCHEMA)


def collect_window(ce: Any, settings: Settings, window: Window, count: RequestCount,
                   cache: ResponseCache, today: date) -> Batch:
    """One window (whole days) into a Batch of cost lines, totals checked."""
    aws = settings.aws
    closed = window.end <= restatement_window(settings, today).start
    q = Query(ce, aws, count, cache, closed)
    try:
        cells, totals = collect_cells(q, window)
        check_totals(cells, totals, window, aws.ce_total_tolerance)
        table = to_rows(cells, totals, aws, TagRules.from_settings(settings))
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceFailed(f"{WHAT}: {exc}", requests=count.sent) from None
    q.commit()
    billed = sum((c.billed for c in totals.values()), Decimal(0))
    return Batch(facts={"cost_lines": table}, requests=count.sent,
                 details={**q.stats, "closed": closed, "ungrouped_billed_total": str(billed),
                          "plan": [[k.name for k in lv] for lv in levels(aws)]})


def day_window(window: Window) -> Window:
    """The window widened to whole UTC days (Cost Explorer's DAILY grain)."""
    end_day = window.end.date() if window.end.time() == time() else window.end.date() + timedelta(days=1)
    return Window.from_dates(window.start.date(), end_day)


def month_chunks(window: Window) -> list[Window]:
    """Split a whole-day window at month starts, so closed months cache apart from open ones."""
    out, start = [], window.start
    while start < window.end:
        nxt = datetime.combine((start.date().replace(day=1) + timedelta(days=32)).replace(day=1), time())
        out.append(Window(start, min(nxt, window.end)))
        start = min(nxt, window.end)
    return out


def cache_dir(settings: Settings) -> Path | None:
    if not settings.aws.ce_cache:
        return None
    return settings.aws.ce_cache_dir or Path(settings.db).parent / "cache" / "aws_ce"


def tasks(settings: Settings, window: Window, progress: Progress | None = None, *,
          now: datetime) -> list[Task]:
    """One task per calendar-month piece of the (whole-day) window; scope `aws_ce`. Pieces that
    start after today are left out: Cost Explorer rejects a start in the future."""
    aws = settings.aws
    if aws.costs_from_exports():
        # The exports carry the same spend; collecting both would count AWS twice.
        log.info("AWS Cost Explorer: the Data Exports are the cost source (FINOPS_AWS_COST_SOURCE), skipped")
        return []
    session = AwsSession(aws)
    identity = f"{aws.profile}|{aws.role_arn}|{endpoint_for(aws, 'ce')}"
    cache = ResponseCache(cache_dir(settings), identity)
    today = now.date()
    chunks = [c for c in month_chunks(day_window(window)) if c.start.date() <= today]

    def make(i: int, chunk: Window) -> Task:
        def fetch() -> Batch:
            count = RequestCount()
            ce = session.client("ce", count, region=aws.ce_region)
            batch = collect_window(ce, settings, chunk, count, cache, today)
            if progress:
                progress(i + 1, len(chunks))
            return batch
        return Task(scope=SCOPE, window=chunk, fetch=fetch)

    return [make(i, c) for i, c in enumerate(chunks)]
