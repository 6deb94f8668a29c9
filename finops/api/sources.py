"""GET /v1/sources (freshness per source) and POST /v1/sources/{name}/runs (start a collection)."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from finops.api.deps import AdminDep, StateDep, ViewerDep
from finops.api.errors import ApiError, responses
from finops.api.runs import Busy, Job
from finops.api.schemas import JobOut, OutcomeOut, RunOut, RunRequest, SourceOut, utc
from finops.collect import GROUPS, SOURCES
from finops.sources.focus import SOURCE as FOCUS
from finops.store.ledger import source_states
from finops.timeutil import Window

router = APIRouter(prefix="/v1/sources", tags=["sources"])
LISTED = [*SOURCES, FOCUS]
Status = Literal["never_run", "running", "succeeded", "failed"]
RUNNABLE = {**GROUPS, **{s: [s] for s in SOURCES}}


# A run of the FOCUS source has its file as scope; errors name the file as it was given.
_PATHS = re.compile(r"""[^\s'"]*[\\/]([^\s'"\\/]*)""")


def file_name(path: str) -> str:
    """The last component of a file path (either separator)."""
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1] or path


def hide_paths(text: str | None, scope: str) -> str | None:
    """`text` with the file `scope`, and anything else that looks like a path, reduced to base names."""
    if text is None:
        return None
    return _PATHS.sub(r"\1", text.replace(scope, file_name(scope)))


@router.get("", response_model=list[SourceOut], responses=responses(401, 403, 429),
            summary="Per source: newest run, status, data through, rows, error")
def list_sources(principal: ViewerDep, state: StateDep) -> list[SourceOut]:
    """Server paths (the scope of a FOCUS file's run, and in its error) are shown to admin keys only;
    other keys see the file's base name."""
    now = state.now().replace(tzinfo=None)
    out = []
    for s in source_states(state.db(), LISTED):
        run = s.last_run
        since = s.watermark or s.last_success_at
        scope, error = (run.scope, run.error) if run else ("", None)
        if run and s.source == FOCUS and not principal.can("admin"):
            scope, error = file_name(run.scope), hide_paths(run.error, run.scope)
        out.append(SourceOut(
            source=s.source, status=cast(Status, run.status if run else "never_run"), running=s.running,
            last_run=RunOut(run_id=run.run_id, scope=scope, status=run.status,  # type: ignore[arg-type]
                            window_start=utc(run.window_start), window_end=utc(run.window_end), rows=run.rows,
                            quarantined=run.quarantined, requests=run.requests, error=error,
                            started_at=utc(run.started_at), finished_at=utc(run.finished_at)) if run else None,
            last_success_at=utc(s.last_success_at), data_through=utc(s.watermark), rows=s.rows,
            error=error if run and run.status == "failed" else None,
            freshness_seconds=max((now - since).total_seconds(), 0.0) if since else None,
        ))
    return out


def job_out(job: Job) -> JobOut:
    done = job.done.is_set()
    return JobOut(
        job_id=job.job_id, source=job.name, sources=job.sources, start=job.window.start.date(),
        end=job.window.end.date(), status=job.status, submitted_at=job.submitted_at,  # type: ignore[arg-type]
        finished_at=job.finished_at,
        results=[OutcomeOut(**o.__dict__) for o in job.outcomes] if done else [],
        status_url=f"/v1/sources/runs/{job.job_id}",
    )


def _window(state_max_days: int, body: RunRequest | None, start: date | None, end: date | None) -> Window:
    s = body.start if body and body.start else start
    e = body.end if body and body.end else end
    if s is None:
        raise ApiError(422, "start: give the first day to collect (query or body)", "start")
    if e is None:
        raise ApiError(422, "end: give the day after the last to collect (query or body)", "end")
    if e <= s:
        raise ApiError(422, f"end: {e} must be after start ({s})", "end")
    if e - s > timedelta(days=state_max_days):
        raise ApiError(422, f"end: the window is {(e - s).days} days; at most {state_max_days} allowed", "end")
    if s.year < 1970 or e.year > 2999:
        raise ApiError(422, "start: the window must lie between 1970 and 2999", "start")
    return Window.from_dates(s, e)


@router.post("/{name}/runs", status_code=202, response_model=JobOut,
             responses=responses(400, 401, 403, 404, 409, 422, 429),
             summary="Start a collection of a source or group over [start, end) (admin)")
async def start_run(
    _: AdminDep, state: StateDep,
    name: Annotated[str, Path(description=f"a group ({', '.join(GROUPS)}) or a source id ({', '.join(SOURCES)})",
                              examples=["prometheus"])],
    body: Annotated[RunRequest | None, Body()] = None,
    start: Annotated[date | SkipJsonSchema[None], Query(description="first day (inclusive), if not in the body",
                                                        examples=["2026-11-02"])] = None,
    end: Annotated[date | SkipJsonSchema[None], Query(description="day after the last (exclusive), if not in the body",
                                                      examples=["2026-11-03"])] = None,
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the job to finish before answering")] = 0,
) -> JSONResponse:
    if name not in RUNNABLE:
        raise ApiError(404, f"name: unknown source {name!r}; choose from {', '.join(RUNNABLE)}", "name")
    window = _window(state.api.max_run_days, body, start, end)
    try:
        job = await run_in_threadpool(state.jobs().start, name, RUNNABLE[name], window)
    except Busy as exc:
        raise ApiError(409, f"name: a collection of {', '.join(exc.sources)} is already running", "name") from None
    if wait:
        deadline = time.monotonic() + wait
        await run_in_threadpool(job.done.wait, max(deadline - time.monotonic(), 0))
    return JSONResponse(job_out(job).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/v1/sources/runs/{job.job_id}"})


@router.get("/runs/{job_id}", response_model=JobOut, responses=responses(401, 403, 404, 429),
            summary="A collection started through the API: status and, once finished, one result per run")
def get_run(_: AdminDep, state: StateDep, job_id: Annotated[int, Path(ge=1)]) -> JobOut:
    job = state.jobs().get(job_id)
    if job is None:
        raise ApiError(404, f"job_id: no job {job_id} (jobs are kept in memory while the server runs)", "job_id")
    return job_out(job)
