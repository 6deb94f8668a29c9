"""Response and request models of the non-report endpoints, and how times and decimals are written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal, overload

import simplejson
from fastapi.responses import Response
from pydantic import BaseModel, Field

from finops.api.report_models import Money
from finops.reports.export import tidy


class RunOut(BaseModel):
    run_id: int
    scope: str
    status: Literal["running", "succeeded", "failed"]
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    quarantined: int
    requests: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class SourceOut(BaseModel):
    source: str
    status: Literal["never_run", "running", "succeeded", "failed"] = Field(description="status of the newest run")
    running: bool
    last_run: RunOut | None
    last_success_at: datetime | None
    data_through: datetime | None = Field(description="end of the newest successfully collected window")
    rows: int | None = Field(description="rows stored by the newest successful run")
    error: str | None = Field(description="error of the newest run when it failed")
    freshness_seconds: float | None = Field(description="seconds from data_through (or the last success) to now")


class RunRequest(BaseModel):
    start: date | None = Field(default=None, description="first day (inclusive)")
    end: date | None = Field(default=None, description="day after the last (exclusive)")


class OutcomeOut(BaseModel):
    source: str
    status: Literal["succeeded", "failed"]
    run_id: int | None
    rows: int
    quarantined: int
    requests: int
    error: str | None


class JobOut(BaseModel):
    job_id: int
    source: str = Field(description="the name requested: a group (aws, azure, prometheus, all) or a source id")
    sources: list[str]
    start: date
    end: date
    status: Literal["accepted", "running", "succeeded", "failed"]
    submitted_at: datetime
    finished_at: datetime | None
    results: list[OutcomeOut] = Field(description="one per ledger run, once the job has finished")
    status_url: str


class AlertOut(BaseModel):
    alert_key: str
    rule: str
    severity: str
    status: Literal["firing", "resolved"]
    summary: str
    dims: dict[str, Any] | None
    amount: Money | None
    currency: str | None
    link: str | None
    started_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    last_sent_at: datetime | None


class ReportFileOut(BaseModel):
    file_id: int
    report: str
    period: str
    format: str
    bytes: int
    created_at: datetime
    download_url: str


class KeyCreate(BaseModel):
    role: Literal["viewer", "finance", "admin"]
    team: str | None = Field(default=None, max_length=256, description="restrict the key to this team's rows "
                             "(any tag value; normalised like tags)")
    name: str | None = Field(default=None, max_length=200)


class KeyOut(BaseModel):
    key_id: str
    role: Literal["viewer", "finance", "admin"]
    team: str | None
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself, shown this once")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    database: bool = Field(description="the database answers a query")
    revision: str | None = Field(description="schema revision of the database")
    head: str | None = Field(description="newest schema revision this build knows")


@overload
def utc(ts: datetime) -> datetime: ...
@overload
def utc(ts: None) -> None: ...
@overload
def utc(ts: datetime | None) -> datetime | None: ...
def utc(ts: datetime | None) -> datetime | None:
    """Stored times are naive UTC; answer them with their offset (RFC 3339)."""
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


def exact_json(data: Any, status_code: int = 200) -> Response:
    """JSON with decimals as exact numbers (pydantic would write them as strings), like the reports."""
    return Response(simplejson.dumps(_plain(data), use_decimal=True), status_code=status_code,
                    media_type="application/json")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")  # as pydantic writes UTC elsewhere in the API
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return tidy(value)
