"""GET /metrics: the API's own request metrics, and FinOps KPIs as Prometheus gauges.

The KPIs show every team's costs, so they are served only to an unscoped key (Prometheus sends
one with `authorization: {credentials: ...}` in its scrape config), unless `open_metrics_kpis`.
Without a key an open /metrics answers the request metrics alone; a key that is sent must be valid
(401 otherwise, so a scrape with a revoked key fails loudly), and a team-scoped key is refused (403).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from finops.api.auth import optional_principal
from finops.api.deps import StateDep
from finops.api.errors import ApiError, responses
from finops.store.keys import Principal

router = APIRouter(tags=["metrics"])

KPIS = ("finops_cost_per_1k_generated_tokens, finops_idle_gpu_hours, finops_idle_gpu_cost, finops_untagged_share, "
        "finops_source_freshness_seconds, finops_kpi_up")


@router.get("/metrics", response_class=Response, summary="Prometheus text exposition", responses={
    200: {"description": "Request metrics (finops_http_requests_total, finops_http_request_duration_seconds); "
                         f"with an unscoped key (`Authorization: Bearer <key>`) also the KPIs over the trailing "
                         f"window ({KPIS})",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    **responses(401, 403, 429)})
def metrics(state: StateDep, principal: Annotated[Principal | None, Depends(optional_principal)]) -> Response:
    if principal is not None and principal.team is not None and not state.api.open_metrics_kpis:
        raise ApiError(403, f"the KPIs on /metrics span every team; your key is scoped to team {principal.team!r}")
    text = generate_latest(state.registry)
    if state.api.open_metrics_kpis or principal is not None:
        text += generate_latest(state.kpis)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
