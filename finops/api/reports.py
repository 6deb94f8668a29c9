"""GET /v1/reports/{unit-economics,idle-gpus,untagged-spend,weekly,recommendations}: the CLI's reports over HTTP.

Parameters are validated by `build_params`, as in `finops report`, so both answer alike. A
team-scoped key gets its team as a filter; asking for another team is refused (403).
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from finops.api.deps import StateDep, ViewerDep
from finops.api.errors import ApiError, responses
from finops.api.report_models import REPORT_MODELS
from finops.api.state import AppState
from finops.reports import CATALOG, NAMES
from finops.reports.export import MEDIA_TYPES
from finops.reports.params import ParamError, ReportParams, build_params
from finops.store.keys import Principal
from finops.tags import DIMS

router = APIRouter(prefix="/v1/reports", tags=["reports"])
# Absent, never null: a query parameter cannot be null, so the schema does not offer it.
NoNull = SkipJsonSchema[None]

# Dates outside this range are refused: no billing data exists there, and date arithmetic
# (previous week, month buckets) must stay within Python's date range.
MIN_DATE, MAX_DATE = date(1970, 1, 1), date(2999, 12, 31)


class ReportQuery(BaseModel):
    """Query parameters shared by the four reports (those of `finops report`, plus dim filters)."""

    model_config = ConfigDict(extra="forbid")

    start: date | NoNull = Field(default=None, description="first day (inclusive); default 7 days before end")
    end: date | NoNull = Field(default=None, description="day after the last (exclusive); default today (UTC)")
    week: str | NoNull = Field(default=None, pattern=r"^\d{4}-W\d{2}$",
                             description="ISO week, e.g. 2026-W45, instead of start/end")
    group_by: str | NoNull = Field(default=None, max_length=200, description="comma-separated subset of "
                                 f"{', '.join(DIMS)} (default all four)", examples=["team,project"])
    granularity: Literal["day", "week", "month", "total"] | NoNull = Field(default=None, description="default total")
    cost_basis: Literal["effective", "billed"] | NoNull = Field(default=None, description="default effective")
    idle_threshold: float | NoNull = Field(default=None, ge=0, le=1,
                                         description="busy fraction below which a GPU-hour is idle")
    scope: Literal["all", "accelerator"] | NoNull = Field(default=None, description="untagged spend: all or GPU spend")
    required_tags: str | NoNull = Field(default=None, max_length=200,
                                      description="comma-separated dims a bill must carry (untagged spend)")
    currency: str | NoNull = Field(default=None, pattern=r"^[A-Za-z]{3}$", description="report currency")
    format: Literal["json", "csv", "xlsx"] = Field(
        default="json", description="json (default), csv (a zip of one CSV per table for weekly) or xlsx (finance)")
    project: str | NoNull = Field(default=None, min_length=1, max_length=256, description="only this project")
    team: str | NoNull = Field(default=None, min_length=1, max_length=256, description="only this team")
    environment: str | NoNull = Field(default=None, min_length=1, max_length=256, description="only this environment")
    model_id: str | NoNull = Field(default=None, min_length=1, max_length=256, description="only this model")


def _openapi_parameters() -> list[dict[str, Any]]:
    """ReportQuery's fields as OpenAPI query parameters (the dependency below parses them itself)."""
    props = ReportQuery.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "required": False, "description": prop.get("description", ""),
             "schema": {k: v for k, v in prop.items() if k not in ("title", "description")}}
            for name, prop in props.items()]


async def report_query(request: Request) -> ReportQuery:
    """The query string validated by one pydantic call.

    FastAPI's per-field handling of a query model costs ~0.3 ms a request, half the cost of a
    cached report; the OpenAPI document lists the same fields (`_openapi_parameters`).
    """
    try:
        return ReportQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False)[0]
        param = str(first["loc"][0]) if first["loc"] else "query"
        msg = "unknown parameter" if first["type"] == "extra_forbidden" else first["msg"]
    raise ApiError(422, f"{param}: {msg}", param)


def report_params(state: AppState, name: str, q: ReportQuery, principal: Principal) -> ReportParams:
    """ReportParams for a request: the CLI's validation, then the key's team scope."""
    filters: dict[str, str] = {}
    for dim in DIMS:
        raw = getattr(q, dim)
        if raw is None:
            continue
        value = state.rules.value(raw)
        if value is None:
            raise ApiError(422, f"{dim}: {raw!r} means a missing tag; filter on a value", dim)
        filters[dim] = value
    if principal.team is not None:
        if filters.get("team", principal.team) != principal.team:
            raise ApiError(403, f"team: this key is scoped to team {principal.team!r}", "team")
        filters["team"] = principal.team
    s = state.settings
    try:
        params = build_params(
            start=q.start, end=q.end, week=q.week, group_by=q.group_by, required_tags=q.required_tags,
            default_required=s.required_tags, granularity=q.granularity, cost_basis=q.cost_basis,
            idle_threshold=q.idle_threshold if q.idle_threshold is not None else s.idle_threshold, scope=q.scope,
            generation_weight=s.generation_weight,
            currency=q.currency, shared_cost_key=s.shared_cost_key, filters=filters,
            default_window_days=7, today=state.now().date(),
        )
    except ParamError as exc:
        # build_params keeps pydantic's error in a local while that error's traceback holds the
        # frame: a cycle through ValidationError, which gc cannot traverse, so every bad request
        # would keep its frames (request, state) alive. Clearing the finished frames breaks it.
        traceback.clear_frames(exc.__traceback__)
        raise
    if params.start < MIN_DATE:
        raise ParamError("week" if q.week else "start", f"{params.start} is before {MIN_DATE}")
    if params.end > MAX_DATE:
        raise ParamError("week" if q.week else "end", f"{params.end} is after {MAX_DATE}")
    return params


def _filename(name: str, params: ReportParams, kind: str) -> str:
    ext = {"json": "json", "csv": "csv", "zip": "zip", "xlsx": "xlsx"}[kind]
    return f"{name}_{params.start}_{params.end}.{ext}"


async def serve_report(state: AppState, name: str, q: ReportQuery, principal: Principal) -> Response:
    """A report in the asked format: from the cache on the event loop, else computed on a worker thread."""
    if name == "weekly" and not principal.can("finance"):
        raise ApiError(403, "the weekly report needs a finance key")
    if q.format == "xlsx" and not principal.can("finance"):
        raise ApiError(403, "format: XLSX exports need a finance key", "format")
    params = report_params(state, name, q, principal)
    versions = state.data_version()
    version = versions.cached()
    if version is None:
        version = await run_in_threadpool(versions.get)
    found = state.cache.peek(name, params, version, q.format)
    if found is None:
        found = await run_in_threadpool(lambda: state.cache.get(name, params, version).rendered(q.format))
    content, kind = found
    headers = {"Cache-Control": "private, no-store"}
    if q.format != "json":
        headers["Content-Disposition"] = f'attachment; filename="{_filename(name, params, kind)}"'
    return Response(content, media_type=MEDIA_TYPES[kind], headers=headers)


def _openapi_200(name: str) -> dict[int | str, dict[str, Any]]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    content: dict[str, Any] = {"text/csv": {"schema": {"type": "string"}}, MEDIA_TYPES["xlsx"]: binary}
    if name == "weekly":
        content["application/zip"] = binary
    return {200: {"model": REPORT_MODELS[name], "content": content,
                  "description": "The report: JSON (`rows`, `totals`, `params`, more tables), or a download",
                  "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                                      "description": "for csv and xlsx: attachment; filename=..."}}},
            **responses(401, 403, 422, 429)}


def _endpoint(name: str) -> Callable[..., Awaitable[Response]]:
    async def endpoint(principal: ViewerDep, state: StateDep, q: Annotated[ReportQuery, Depends(report_query)]) -> Response:
        return await serve_report(state, name, q, principal)

    endpoint.__name__ = name.replace("-", "_") + "_report"
    return endpoint


for _name in NAMES:
    router.add_api_route(f"/{_name}", _endpoint(_name), methods=["GET"], summary=CATALOG[_name].summary,
                         response_class=Response, responses=_openapi_200(_name), operation_id=_name.replace("-", "_"),
                         openapi_extra={"parameters": _openapi_parameters()})
