"""GET /v1/exports/focus: the attributed cost as a FOCUS 1.3 file (docs/definitions.md 6.11)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from finops.api.deps import FinanceDep, StateDep, UnscopedDep
from finops.api.errors import ApiError, responses
from finops.reports.params import MAX_DATE, MAX_DAYS, MIN_DATE

router = APIRouter(prefix="/v1/exports", tags=["exports"])
MEDIA = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}


@router.get("/focus", response_class=Response, responses={
    200: {"description": "The FOCUS file", "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                      for t in MEDIA.values()}},
    **responses(401, 403, 422, 429)},
    summary="The attributed cost of [start, end) as FOCUS 1.3 with split cost allocation columns "
            "(finance keys, not team-scoped)")
async def focus(_: FinanceDep, __: UnscopedDep, state: StateDep,
                start: Annotated[date, Query(description="first day, YYYY-MM-DD")],
                end: Annotated[date, Query(description="day after the last, YYYY-MM-DD")],
                format: Annotated[Literal["parquet", "csv"], Query()] = "parquet") -> Response:  # noqa: A002
    if not (MIN_DATE <= start < end <= MAX_DATE):
        raise ApiError(422, f"end: the window [{start}, {end}) is empty or outside {MIN_DATE}..{MAX_DATE}", "end")
    if (end - start).days > MAX_DAYS:
        raise ApiError(422, f"end: the window is longer than {MAX_DAYS} days", "end")

    def build() -> bytes:
        from finops.reports.focus_export import focus_export, to_csv, to_parquet

        table = focus_export(state.db(), state.settings, start, end)
        return to_csv(table) if format == "csv" else to_parquet(table)

    content = await run_in_threadpool(build)
    return Response(content, media_type=MEDIA[format], headers={
        "Cache-Control": "private, no-store",
        "Content-Disposition": f'attachment; filename="focus_{start}_{end}.{format}"'})
