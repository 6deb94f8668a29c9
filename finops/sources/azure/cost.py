"""Azure cost lines from the Cost Management Query API, one task per configured scope.

Query plan, per scope and calendar month, for ActualCost (billed) and AmortizedCost (effective):
one Daily query per attribute, each grouped by `ResourceId` plus that attribute (a tag key from
`azure.tag_keys`, then the `ServiceName` dimension): two groupings and one aggregation per query.
Answers are joined on the row key (resource, UsageDate, Currency).

Why the joined tuple is exact: each query partitions the same cost C of one row key by one
attribute. When every attribute but at most one (say p) has a single value v_q on that key, every
unit of C carries v_q for all q != p, so p's partition *is* the joint partition. With two or more
multi-valued attributes (a tag changed mid-day on a resource that also bills several services) the
marginals do not determine the joint; such keys are split by the first multi-valued attribute in
plan order, the others are left missing (never guessed) and counted in the run details. Every
query must also give C the same total (within `azure.sum_tolerance`, Azure sums doubles): if not,
the data changed between queries and the run fails. Store scope: `azure:<scope, lower-case>`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from functools import partial
from typing import Any, Literal, NamedTuple

import pyarrow as pa
from azure.core.credentials import TokenCredential
from azure.mgmt.costmanagement import models as m

from finops import money
from finops.batch import Batch, Progress, SourceFailed, Task
from finops.resources import resource_key
from finops.settings import AzureSettings, Settings
from finops.sources.azure.client import (
    CostQueries,
    Pacer,
    RequestCounter,
    check_base_url,
    default_credential,
    make_client,
)
from finops.tags import DIMS, TagRules
from finops.timeutil import Window

log = logging.getLogger(__name__)

COST_TYPES: dict[str, str] = {"ActualCost": "billed_cost", "AmortizedCost": "effective_cost"}
PROVIDER = "Microsoft"  # FOCUS ProviderName for Azure
DIM_COLUMNS = DIMS
COST_COLUMNS = ("Cost", "totalCost")  # the aggregation's column, as named in the answer
MONEY = money.ARROW_MONEY
_SCOPE = re.compile(
    r"^(subscriptions/[^/]+(/resourcegroups/[^/]+)?"
    r"|providers/microsoft\.billing/billingaccounts/[^/]+"
    r"(/(billingprofiles/[^/]+(/invoicesections/[^/]+)?|departments/[^/]+|enrollmentaccounts/[^/]+|customers/[^/]+))?"
    r"|providers/microsoft\.management/managementgroups/[^/]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Plan:
    """One grouping next to ResourceId: a tag key or a dimension, and the attribute it fills."""

    attribute: str  # a dim name, or "service_name"
    kind: Literal["TagKey", "Dimension"]
    name: str  # the Azure tag key or dimension name

    @property
    def value_column(self) -> str:
        return "TagValue" if self.kind == "TagKey" else self.name


def plans(azure: AzureSettings) -> list[Plan]:
    """Tags first (their split wins when a key is ambiguous), then the service."""
    tags = [Plan(dim, "TagKey", key) for dim, key in azure.tag_keys.items()]
    return [*tags, Plan("service_name", "Dimension", "ServiceName")]


def query_definition(cost_type: str, plan: Plan, chunk: Window) -> m.QueryDefinition:
    """The query for one cost type, plan and month chunk; `to` is inclusive, so the last second."""
    return m.QueryDefinition(
        type=cost_type,
        timeframe="Custom",
        time_period=m.QueryTimePeriod(from_property=chunk.start.replace(tzinfo=UTC),
                                      to=(chunk.end - timedelta(seconds=1)).replace(tzinfo=UTC)),
        dataset=m.QueryDataset(
            granularity="Daily",
            aggregation={"totalCost": m.QueryAggregation(name="Cost", function="Sum")},
            grouping=[m.QueryGrouping(type="Dimension", name="ResourceId"),
                      m.QueryGrouping(type=plan.kind, name=plan.name)],
        ),
    )


def day_window(window: Window) -> Window:
    """The whole UTC days covering `window` (Azure's grain is a day)."""
    start = datetime.combine(window.start.date(), dtime())
    end = datetime.combine(window.end.date(), dtime())
    return Window(start, end if end == window.end else end + timedelta(days=1))


def month_chunks(window: Window) -> list[Window]:
    """Split a day-aligned window at calendar month starts (Daily queries are capped near 31 days)."""
    out, start = [], window.start
    while start < window.end:
        nxt = datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
        out.append(Window(start, min(nxt, window.end)))
        start = nxt
    return out


def restatement_window(settings: Settings, today: date) -> Window:
    """The trailing `restatement_days` before today (today excluded, as for AWS), and the whole previous
    month while today is within its first `restatement_month_days` (the invoice month closes then)."""
    azure = settings.azure
    if azure.restatement_days < 1:
        raise ValueError(f"azure.restatement_days must be at least 1, got {azure.restatement_days}")
    start = today - timedelta(days=azure.restatement_days)
    if today.day <= azure.restatement_month_days:
        start = min(start, (today.replace(day=1) - timedelta(days=1)).replace(day=1))
    return Window.from_dates(start, today)


class RowKey(NamedTuple):
    resource_id: str  # lower-cased; "" for charges without a resource
    day: date
    currency: str


class PlanRow(NamedTuple):
    key: RowKey
    value: str | None  # None: untagged (null or "") / no value
    tag_key: str | None  # the tag key as Azure spelled it
    amount: Decimal


@dataclass
class ParsedPage:
    rows: list[PlanRow]
    quarantine: list[dict[str, Any]]
    bad_keys: set[RowKey]


class AzureAnswerError(ValueError):
    """An answer cannot be read at all (e.g. a column the query asked for is missing)."""


def _amount(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"Cost: not a number: {v!r}")
    d = Decimal(v) if isinstance(v, int) else Decimal(repr(v))  # repr: the shortest exact reading of the double
    if not d.is_finite():
        raise ValueError(f"Cost: not finite: {v!r}")
    if not money.in_range(d):
        raise ValueError(f"Cost: out of range (under {money.LIMIT_TEXT}): {v!r}")
    return d


def _day(v: Any, chunk: Window) -> date:
    text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if not isinstance(text, str) or not re.fullmatch(r"\d{8}", text):
        raise ValueError(f"UsageDate: not a yyyymmdd number: {v!r}")
    try:
        d = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError(f"UsageDate: no such day: {v!r}") from None
    if not chunk.start.date() <= d < chunk.end.date():
        raise ValueError(f"UsageDate {v} is outside the queried period {chunk}")
    return d


def _text(v: Any, column: str) -> str | None:
    if v is None or isinstance(v, str):
        return v.strip() if v is not None and v.strip() else None
    raise ValueError(f"{column}: not text: {v!r}")


def parse_page(props: Mapping[str, Any], plan: Plan, chunk: Window, origin: str) -> ParsedPage:
    """One page's rows, read by column name; bad rows are quarantined and their key marked bad."""
    rows = props.get("rows") or []
    names = [str(c.get("name")) if isinstance(c, Mapping) else str(c) for c in props.get("columns") or []]
    index = {n.casefold(): i for i, n in enumerate(names)}

    def col(*alts: str) -> int:
        for a in alts:
            if a.casefold() in index:
                return index[a.casefold()]
        raise AzureAnswerError(f"{origin}: the answer has no {alts[0]} column (columns: {', '.join(names)})")

    out = ParsedPage([], [], set())
    if not rows:
        return out
    i_rid, i_day, i_cur = col("ResourceId"), col("UsageDate"), col("Currency")
    i_cost, i_val = col(*COST_COLUMNS), col(plan.value_column)
    i_key = index.get("tagkey") if plan.kind == "TagKey" else None
    for line, row in enumerate(rows, 1):
        key = None
        try:
            if not isinstance(row, list) or len(row) != len(names):
                raise ValueError(f"row has {len(row) if isinstance(row, list) else 'no'} values for {len(names)} columns")
            currency = (_text(row[i_cur], "Currency") or "").upper()
            key = RowKey((_text(row[i_rid], "ResourceId") or "").lower(), _day(row[i_day], chunk), currency)
            if currency not in money.ISO_4217:
                raise ValueError(f"Currency: not an ISO 4217 code: {row[i_cur]!r}")
            value = _text(row[i_val], plan.value_column)
            tag_key = _text(row[i_key], "TagKey") if i_key is not None else None
            if value is not None and tag_key is not None and tag_key.casefold() != plan.name.casefold():
                raise ValueError(f"TagKey {tag_key!r} in the answer to a query for {plan.name!r}")
            out.rows.append(PlanRow(key, value, tag_key, _amount(row[i_cost])))
        except ValueError as exc:
            reason = str(exc)
            if key is not None:
                out.bad_keys.add(key)
                reason += f"; all cost of {key.resource_id or '(no resource)'} on {key.day} ({key.currency}) left out"
            out.quarantine.append({"origin": origin, "line": line, "reason": reason, "raw": json.dumps(row, default=str)})
    return out


Marginal = dict[RowKey, dict[str | None, Decimal]]


def fold(rows: Sequence[PlanRow]) -> Marginal:
    """Amount per row key and attribute value (rows repeated across pages, null and "" merge)."""
    out: Marginal = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        out[r.key][r.value] += r.amount
    return {k: dict(v) for k, v in out.items()}


@dataclass
class Joined:
    cells: dict[tuple[RowKey, tuple[str | None, ...]], Decimal]  # (key, one value per plan) -> amount
    ambiguous: list[RowKey]


def join_marginals(marginals: Sequence[Marginal], tolerance: Decimal) -> Joined:
    """The joint cells per row key from one marginal per plan (see the module docstring)."""
    joined = Joined(defaultdict(Decimal), [])
    mismatched: list[tuple[RowKey, list[Decimal]]] = []
    for key in sorted(set().union(*marginals)):
        parts = [mg.get(key, {}) for mg in marginals]
        totals = [sum(p.values(), Decimal(0)) for p in parts]
        if max(totals) - min(totals) > tolerance:
            mismatched.append((key, totals))
            continue
        multi = [i for i, p in enumerate(parts) if len(p) > 1]
        split = multi[0] if multi else next(i for i, p in enumerate(parts) if p)
        if len(multi) > 1:
            joined.ambiguous.append(key)
        single = [next(iter(p)) if len(p) == 1 else None for p in parts]
        for value, amount in parts[split].items():
            values = list(single)
            values[split] = value
            joined.cells[(key, tuple(values))] += amount
    if mismatched:
        key, totals = mismatched[0]
        raise AzureAnswerError(
            f"the grouped answers disagree on {len(mismatched)} resource-day(s), e.g. "
            f"{key.resource_id or '(no resource)'} on {key.day}: totals {', '.join(map(str, sorted(set(totals))))}; "
            "the data probably refreshed between queries: run again")
    return joined


def cost_lines(plan_list: Sequence[Plan], billed: Joined, effective: Joined, spelled: Mapping[tuple[int, str], str],
               scope: str, rules: TagRules, today: date) -> pa.Table:
    """Cost-line rows: billed and effective cells outer-joined on (key, values), 0 where absent."""
    amounts: dict[tuple[RowKey, tuple[str | None, ...]], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for i, joined in enumerate((billed, effective)):
        for cell, amount in joined.cells.items():
            amounts[cell][i] += amount
    account = re.search(r"billingaccounts/([^/]+)", scope, re.IGNORECASE)
    scope_sub = re.match(r"subscriptions/([^/]+)", scope, re.IGNORECASE)
    open_month = today.replace(day=1)
    cols: dict[str, list[Any]] = defaultdict(list)
    for (key, values), (b, e) in sorted(amounts.items(), key=lambda kv: (kv[0][0], [v or "" for v in kv[0][1]])):
        attrs = {p.attribute: v for p, v in zip(plan_list, values, strict=True)}
        tags = {spelled.get((i, v), p.name): v for i, (p, v) in enumerate(zip(plan_list, values, strict=True))
                if p.kind == "TagKey" and v is not None}
        sub = re.match(r"/subscriptions/([^/]+)", key.resource_id) or scope_sub
        start = datetime.combine(key.day, dtime())
        cols["charge_period_start"].append(start)
        cols["charge_period_end"].append(start + timedelta(days=1))
        cols["charge_date"].append(key.day)
        cols["provider_name"].append(PROVIDER)
        cols["billing_account_id"].append(account.group(1) if account else None)
        cols["sub_account_id"].append(sub.group(1) if sub else None)
        cols["service_name"].append(attrs.get("service_name"))
        cols["resource_id"].append(key.resource_id or None)
        cols["resource_key"].append(resource_key(key.resource_id))
        cols["billed_cost"].append(money.to_store(b))
        cols["effective_cost"].append(money.to_store(e))
        cols["billing_currency"].append(key.currency)
        # Azure's numbers for the open invoice month may still change.
        cols["estimated"].append(key.day >= open_month)
        cols["tags"].append(json.dumps(tags, ensure_ascii=False))
        for dim in DIM_COLUMNS:
            cols[dim].append(rules.value(attrs.get(dim)))
    types = {"charge_period_start": pa.timestamp("us"), "charge_period_end": pa.timestamp("us"),
             "charge_date": pa.date32(), "billed_cost": MONEY, "effective_cost": MONEY, "estimated": pa.bool_()}
    names = ["charge_period_start", "charge_period_end", "charge_date", "provider_name", "billing_account_id",
             "sub_account_id", "service_name", "resource_id", "resource_key", "billed_cost", "effective_cost",
             "billing_currency", "estimated", "tags", *DIM_COLUMNS]
    schema = pa.schema([(n, types.get(n, pa.string())) for n in names])
    return pa.table({n: cols[n] for n in names}, schema=schema)


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """Configured scopes without slashes at the ends; an unknown form or a nested pair is an error."""
    out = [s.strip().strip("/") for s in scopes]
    if not out:
        raise ValueError("azure.scopes is empty: set FINOPS_AZURE_SCOPES, e.g. '[\"subscriptions/<id>\"]'")
    for s in out:
        if not _SCOPE.match(s):
            raise ValueError(f"azure.scopes: {s!r} is not a subscription, resource group, billing or "
                             "management group scope")
    for a in out:
        for b in out:
            if a is not b and (b.lower() + "/").startswith(a.lower() + "/"):
                raise ValueError(f"azure.scopes: {b!r} lies within {a!r}; its cost would be counted twice")
    return out


def fetch_scope(api: CostQueries, scope: str, window: Window, settings: Settings, today: date,
                tick: Callable[[], None]) -> Batch:
    """Query every month chunk, cost type and plan of one scope and join them into cost lines."""
    plan_list, rules = plans(settings.azure), TagRules.from_settings(settings)
    tables, quarantine, ambiguous, pages = [], [], [], 0
    for chunk in month_chunks(window):
        answers: dict[str, list[Marginal]] = {}
        spelled: dict[tuple[int, str], str] = {}
        bad: set[RowKey] = set()
        for cost_type in COST_TYPES:
            answers[cost_type] = []
            for i, plan in enumerate(plan_list):
                rows: list[PlanRow] = []
                for n, props in enumerate(api.pages(scope, query_definition(cost_type, plan, chunk)), 1):
                    page = parse_page(props, plan, chunk, f"azure:{scope} {cost_type} {plan.name} {chunk} page {n}")
                    rows += page.rows
                    quarantine += page.quarantine
                    bad |= page.bad_keys
                    pages += 1
                spelled.update({(i, r.value): r.tag_key for r in rows if r.tag_key and r.value is not None})
                answers[cost_type].append(fold(rows))
                tick()
        joined = {COST_TYPES[t]: join_marginals([{k: v for k, v in mg.items() if k not in bad} for mg in answers[t]],
                                                settings.azure.sum_tolerance) for t in COST_TYPES}
        billed, effective = joined["billed_cost"], joined["effective_cost"]
        ambiguous += sorted(set(billed.ambiguous) | set(effective.ambiguous))
        tables.append(cost_lines(plan_list, billed, effective, spelled, scope, rules, today))
    if ambiguous:
        log.warning("azure:%s: %d resource-day(s) with several multi-valued tags/services; extra ones left missing",
                    scope, len(ambiguous))
    details = {"scope": scope, "pages": pages, "ambiguous_resource_days": len(ambiguous),
               "ambiguous_examples": [f"{k.resource_id or '(no resource)'}@{k.day}" for k in ambiguous[:5]]}
    return Batch(facts={"cost_lines": pa.concat_tables(tables)}, quarantine=quarantine,
                 requests=api.requests, details=details)


def tasks(settings: Settings, window: Window, progress: Progress | None = None, *,
          credential: TokenCredential | None = None, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic, now: datetime) -> list[Task]:
    """One task per configured scope over the whole days of `window`; `credential` defaults to
    DefaultAzureCredential, `sleep` and `clock` pace and throttle (tests inject them)."""
    try:
        scopes = check_scopes(settings.azure.scopes)
        check_base_url(settings.azure)
    except ValueError as exc:
        raise SourceFailed(str(exc)) from None
    window = day_window(window)
    today = now.date()
    total = len(scopes) * len(month_chunks(window)) * len(plans(settings.azure)) * len(COST_TYPES)
    done = [0]
    pacer = Pacer(settings.azure.min_seconds_between_queries, clock, sleep)  # one per tenant, across scopes

    def tick() -> None:
        done[0] += 1
        if progress:
            progress(done[0], total)

    def fetch_for(scope: str) -> Batch:
        cred = credential if credential is not None else default_credential()
        counter = RequestCounter()
        try:
            with make_client(settings.azure, cred, on_request=counter) as client:
                return fetch_scope(CostQueries(client, settings.azure, counter, pacer, sleep),
                                   scope, window, settings, today, tick)
        except AzureAnswerError as exc:
            raise SourceFailed(f"azure:{scope}: {exc}", counter.count) from None
        finally:
            if cred is not credential:  # ours to close (DefaultAzureCredential holds HTTP sessions)
                getattr(cred, "close", lambda: None)()

    return [Task(scope=f"azure:{s.lower()}", window=window, fetch=partial(fetch_for, s)) for s in scopes]
