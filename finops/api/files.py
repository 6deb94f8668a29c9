"""GET /v1/reports/weekly/files: report files written by the weekly job, and their download."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from finops.api.deps import FinanceDep, StateDep, UnscopedDep
from finops.api.errors import ApiError, responses
from finops.api.schemas import ReportFileOut, utc
from finops.reports.export import MEDIA_TYPES

router = APIRouter(prefix="/v1/reports/weekly/files", tags=["reports"])
OTHER = "application/octet-stream"
COLUMNS = ("file_id", "report", "period", "format", "location", "bytes", "created_at")


@router.get("", response_model=list[ReportFileOut], responses=responses(401, 403, 429),
            summary="Files of the scheduled weekly report, newest first (finance keys, not team-scoped)")
def list_files(_: FinanceDep, __: UnscopedDep, state: StateDep) -> list[ReportFileOut]:
    rows = state.db().query(f"SELECT {', '.join(COLUMNS)} FROM report_files "  # noqa: S608 - constants
                            "ORDER BY created_at DESC, file_id DESC")
    return [ReportFileOut(file_id=r[0], report=r[1], period=r[2], format=r[3], bytes=r[5], created_at=utc(r[6]),
                          download_url=f"/v1/reports/weekly/files/{r[0]}") for r in rows]


@router.get("/{file_id}", response_class=FileResponse, responses={
    200: {"description": "The file", "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                 for t in sorted({*MEDIA_TYPES.values(), OTHER})}},
    **responses(401, 403, 404, 429)}, summary="Download one report file (finance keys, not team-scoped)")
def download_file(_: FinanceDep, __: UnscopedDep, state: StateDep,
                  file_id: Annotated[int, Path(ge=1)]) -> FileResponse:
    rows = state.db().query("SELECT format, location FROM report_files WHERE file_id = ?", [file_id])
    if not rows:
        raise ApiError(404, f"file_id: no report file {file_id}", "file_id")
    fmt, location = rows[0]
    path = FsPath(location)
    if not path.is_absolute():
        path = state.settings.reports_dir / path
    path = path.resolve()
    # Only files under the reports directory are served, whatever the table says.
    if not path.is_relative_to(state.settings.reports_dir.resolve()) or not path.is_file():
        raise ApiError(404, f"file_id: the file of report file {file_id} is no longer available", "file_id")
    media = MEDIA_TYPES.get(path.suffix.lower().lstrip(".")) or MEDIA_TYPES.get(fmt) or OTHER
    return FileResponse(path, media_type=media, filename=path.name)
