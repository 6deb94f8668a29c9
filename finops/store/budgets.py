"""Budgets: a named amount per month or quarter over the cost that matches a filter on the dims.

The store keeps them (migration 0007) and logs every change with the key that made it. Values in
`filters` are stored as the tag rules normalise them (callers normalise), so a budget on team
"CoreAI" and the rows of team "coreai" meet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from finops.store.db import Store
from finops.tags import DIMS
from finops.timeutil import to_utc_naive

Period = Literal["month", "quarter"]
COLUMNS = ("name", "filters", "period", "amount", "currency", "actual_thresholds", "forecast_thresholds",
           "max_cost_per_1k_generated_tokens", "created_at", "updated_at")
Percent = Decimal
# Letters, digits, inner spaces, dots, dashes and underscores; no space at either end ("x" and "x "
# would be two budgets nobody could tell apart).
NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,98}[A-Za-z0-9._-])?$"


class BudgetSpec(BaseModel):
    """What a user states about a budget (the body of POST and PUT /v1/budgets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filters: dict[str, str] = Field(default_factory=dict, description=f"dim -> value; dims: {', '.join(DIMS)}; "
                                    "empty: all spend")
    period: Period = Field(default="month", description="month or quarter (calendar, UTC)")
    amount: Decimal = Field(gt=0, lt=Decimal("1e15"), max_digits=30, decimal_places=12)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    actual_thresholds: list[Percent] = Field(
        default_factory=lambda: [Decimal(80), Decimal(100)], max_length=10,
        description="alert when actual spend reaches these percentages of the amount")
    forecast_thresholds: list[Percent] = Field(
        default_factory=lambda: [Decimal(100)], max_length=10,
        description="alert when the period's forecast reaches these percentages of the amount")
    max_cost_per_1k_generated_tokens: Decimal | None = Field(
        default=None, gt=0, lt=Decimal("1e9"), max_digits=30, decimal_places=12,
        description="optional ceiling on the period's cost per 1k generated tokens")

    @field_validator("filters")
    @classmethod
    def _dims(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(DIMS))
        if unknown:
            raise ValueError(f"unknown dims {', '.join(unknown)}; choose from {', '.join(DIMS)}")
        if any(not (0 < len(x) <= 256) for x in v.values()):
            raise ValueError("a filter value has 1 to 256 characters")
        if any(re.fullmatch(r"__.*__", x) for x in v.values()):
            raise ValueError("__...__ names are report groups, not tag values (a budget filters on tag values)")
        return {d: v[d] for d in DIMS if d in v}

    @field_validator("actual_thresholds", "forecast_thresholds")
    @classmethod
    def _percentages(cls, v: list[Decimal]) -> list[Decimal]:
        if any(not (0 < p <= 1000) for p in v):
            raise ValueError("thresholds are percentages of the amount, above 0 and at most 1000")
        return sorted({Decimal(f"{p.normalize():f}") for p in v})  # 1e2 and 100.0 are 100


class BudgetCreate(BudgetSpec):
    """A new budget: its name and what it states (the body of POST /v1/budgets)."""

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, space, dot, dash, underscore; 1-100")


class Budget(BudgetCreate):
    """A stored budget."""

    created_at: datetime | None = None
    updated_at: datetime | None = None


class BudgetExists(ValueError):
    pass


def _trimmed(d: Decimal) -> Decimal:
    """A stored DECIMAL(38,12) without its trailing zeros, but with cents (1200.500000000000 -> 1200.50)."""
    n = d.normalize()
    return n.quantize(Decimal("0.01")) if int(n.as_tuple().exponent) > -2 else n


SELECT_SQL = f"SELECT {', '.join(COLUMNS)} FROM budgets ORDER BY name"  # noqa: S608 - constants
EXISTS_SQL = "SELECT 1 FROM duckdb_tables() WHERE table_name = 'budgets' AND NOT temporary"


def stored(rows: Callable[[str], Sequence[tuple[Any, ...]]]) -> list[Budget]:
    """Every budget, read with `rows` (a store's query, or a cursor's). A lake replica holds the facts
    only: without a budgets table there are no budgets (and DuckDB never looks the name up elsewhere,
    such as a Python variable in scope)."""
    return [budget_from_row(r) for r in rows(SELECT_SQL)] if rows(EXISTS_SQL) else []


def budget_from_row(values: tuple[object, ...]) -> Budget:
    """A budget from a row of SELECT_SQL."""
    r = dict(zip(COLUMNS, values, strict=True))
    r["filters"] = json.loads(str(r["filters"]))
    for k in ("amount", "max_cost_per_1k_generated_tokens"):
        r[k] = None if r[k] is None else _trimmed(Decimal(str(r[k])))
    for k in ("actual_thresholds", "forecast_thresholds"):
        r[k] = [Decimal(x) for x in json.loads(str(r[k]))]
    return Budget.model_validate(r)


def list_budgets(store: Store, team: str | None = None) -> list[Budget]:
    """Every budget by name; with `team`, only the budgets filtered on that team."""
    return [b for b in stored(store.query) if team is None or b.filters.get("team") == team]


def get_budget(store: Store, name: str) -> Budget | None:
    rows = store.query(f"SELECT {', '.join(COLUMNS)} FROM budgets WHERE name = ?", [name])  # noqa: S608
    return budget_from_row(rows[0]) if rows else None


def _values(spec: BudgetSpec) -> list[object]:
    return [json.dumps(spec.filters), spec.period, spec.amount, spec.currency,
            json.dumps([str(p) for p in spec.actual_thresholds]),
            json.dumps([str(p) for p in spec.forecast_thresholds]), spec.max_cost_per_1k_generated_tokens]


def save_budget(store: Store, name: str, spec: BudgetSpec, now: datetime, key_id: str | None = None,
                create: bool = False) -> Budget:
    """Create (`create`: BudgetExists if the name is taken) or replace a budget; logs the change."""
    at = to_utc_naive(now)
    with store.transaction() as cur:
        found = cur.execute("SELECT created_at FROM budgets WHERE name = ?", [name]).fetchall()
        if found and create:
            raise BudgetExists(f"name: a budget called {name!r} exists")
        if found:
            cur.execute("UPDATE budgets SET filters = ?, period = ?, amount = ?, currency = ?, actual_thresholds = ?, "
                        "forecast_thresholds = ?, max_cost_per_1k_generated_tokens = ?, updated_at = ? WHERE name = ?",
                        [*_values(spec), at, name]).fetchall()
        else:
            cur.execute(f"INSERT INTO budgets ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608
                        [name, *_values(spec), at, at]).fetchall()
        cur.execute("INSERT INTO budget_changes VALUES (?, ?, ?, ?)",
                    [name, "update" if found else "create", key_id, at]).fetchall()
    stored = get_budget(store, name)
    assert stored is not None
    return stored


def delete_budget(store: Store, name: str, now: datetime, key_id: str | None = None) -> bool:
    """Delete a budget; False if there was none of that name."""
    with store.transaction() as cur:
        if not cur.execute("SELECT 1 FROM budgets WHERE name = ?", [name]).fetchall():
            return False
        cur.execute("DELETE FROM budgets WHERE name = ?", [name]).fetchall()
        cur.execute("INSERT INTO budget_changes VALUES (?, 'delete', ?, ?)", [name, key_id, to_utc_naive(now)]).fetchall()
    return True
