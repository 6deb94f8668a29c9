"""GET /healthz (the process answers) and GET /readyz (database open, schema current)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from finops.api.deps import StateDep
from finops.api.schemas import Health, Ready
from finops.store.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "Not ready"}},
            summary="The database answers and its schema is the newest this build knows")
def readyz(state: StateDep) -> JSONResponse:
    head = head_revision()
    try:
        store = state.db()
        store.query("SELECT 1")
        revision = current_revision(store)
        database = True
    except Exception:  # not ready is an answer, not an error
        log.warning("readiness check failed", exc_info=True)
        database, revision = False, None
    ready = database and revision == head
    body = Ready(status="ready" if ready else "not_ready", database=database, revision=revision, head=head)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
