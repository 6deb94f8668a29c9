"""POST /v1/sources/focus/files: a billing file sent to the running service, ingested as one run.

The CLI sends `finops ingest focus FILE` here while the service owns the store. The body is the
file itself (CSV, CSV.gz or Parquet), streamed to `uploads/` beside the store, never held in
memory; `Content-Length` is required and bounded by `max_upload_bytes` before a byte is read.
A file's scope is the path the CLI names it by (`scope`), as for a local ingest, else `upload:<name>`;
sending a corrected file under the same scope replaces it.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from finops.api.deps import AdminDep, StateDep
from finops.api.errors import ApiError, responses
from finops.collect import run_task
from finops.sources.focus import SOURCE, file_task

PATH = "/v1/sources/focus/files"
router = APIRouter(tags=["sources"])
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_SUFFIXES = (".csv", ".csv.gz", ".parquet")
QUARANTINE_SHOWN = 100


class QuarantinedRow(BaseModel):
    line: int | None
    reason: str


class UploadOut(BaseModel):
    run_id: int
    status: str
    rows: int
    quarantined: int
    error: str | None
    quarantine: list[QuarantinedRow]


@router.post(PATH, response_model=UploadOut, status_code=201, responses=responses(401, 403, 411, 413, 422, 429),
             summary="Ingest a FOCUS file sent as the request body (as `finops ingest focus`)",
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}})
async def upload(_: AdminDep, state: StateDep, request: Request,
                 name: Annotated[str, Query(description="the file's name, e.g. export-2026-11.csv.gz")],
                 scope: Annotated[str | None, Query(max_length=1000, description=(
                     "what the rows replace: the file's absolute path as `finops ingest focus` names it "
                     "(the CLI sends it), so the same file ingested with or without the service replaces "
                     "itself; default `upload:<name>`"))] = None) -> UploadOut:
    if not _NAME.match(name) or not name.lower().endswith(_SUFFIXES):
        raise ApiError(422, "name: a plain file name ending in .csv, .csv.gz or .parquet", "name")
    store = state.db()
    folder = store.path.parent / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}-{name}"
    limit = min(int(request.headers.get("content-length", "0")), state.api.max_upload_bytes)
    try:
        written = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:  # never more than was declared and allowed, whatever the framing
                    raise ApiError(413, f"body: more than the {limit} bytes declared and allowed "
                                        "(max_upload_bytes)", "body")
                out.write(chunk)
        if scope is not None and (not scope.startswith("/") or not scope.isprintable()):
            raise ApiError(422, "scope: an absolute path of printable characters", "scope")
        result = await run_in_threadpool(run_task, store, SOURCE,
                                         file_task(state.rules, path, scope=scope or f"upload:{name}"))
    finally:
        path.unlink(missing_ok=True)  # the store keeps the rows and the quarantine; the file is done
    shown = store.query("SELECT line, reason FROM quarantine WHERE run_id = ? ORDER BY line LIMIT ?",
                        [result.run_id, QUARANTINE_SHOWN])
    return UploadOut(run_id=result.run_id, status=result.status, rows=result.rows, quarantined=result.quarantined,
                     error=_without_path(result.error, path, name),
                     quarantine=[QuarantinedRow(line=line, reason=reason) for line, reason in shown])


def _without_path(error: str | None, path: Path, name: str) -> str | None:
    return None if error is None else error.replace(str(path), name)
