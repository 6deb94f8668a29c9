"""GET /v1/alerts: alert history (written by the alerting job), newest first."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic.json_schema import SkipJsonSchema

from finops.api.deps import StoreDep, ViewerDep
from finops.api.errors import responses
from finops.api.schemas import AlertOut, exact_json, utc

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
COLUMNS = ("alert_key", "rule", "severity", "status", "summary", "dims", "amount", "currency", "link",
           "started_at", "last_seen_at", "resolved_at", "last_sent_at")


def _dims(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@router.get("", response_model=list[AlertOut], responses=responses(401, 403, 422, 429),
            summary="Alerts, newest first; a team-scoped key sees only alerts about its team")
def list_alerts(
    principal: ViewerDep, store: StoreDep,
    status: Annotated[Literal["firing", "resolved"] | SkipJsonSchema[None], Query(description="only alerts in this state")] = None,
    rule: Annotated[str | SkipJsonSchema[None], Query(max_length=200, description="only alerts of this rule")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
) -> Response:
    where, binds = ["TRUE"], list[str]()
    if status is not None:
        where.append("status = ?")
        binds.append(status)
    if rule is not None:
        where.append("rule = ?")
        binds.append(rule)
    sql = (f"SELECT {', '.join(COLUMNS)} FROM alerts WHERE {' AND '.join(where)} "  # noqa: S608 - constants
           "ORDER BY started_at DESC, last_seen_at DESC, alert_key")
    out: list[AlertOut] = []
    for row in store.query(sql, binds):
        a = dict(zip(COLUMNS, row, strict=True))
        dims = _dims(a["dims"])
        # An alert whose dims do not name the key's team is about other teams, or all of them.
        if principal.team is not None and (dims or {}).get("team") != principal.team:
            continue
        out.append(AlertOut(**{**a, "dims": dims, **{k: utc(a[k]) for k in COLUMNS if k.endswith("_at")}}))
        if len(out) >= limit:
            break
    return exact_json([a.model_dump() for a in out])
