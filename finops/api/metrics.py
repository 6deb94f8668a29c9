"""GET /metrics: FinOps KPIs as Prometheus gauges, and the API's own request metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from finops.api.deps import StateDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, summary="Prometheus text exposition", responses={
    200: {"description": "KPIs over the trailing window (finops_cost_per_1k_generated_tokens, finops_idle_gpu_hours, "
                         "finops_idle_gpu_cost, finops_untagged_share, finops_source_freshness_seconds) and "
                         "request metrics (finops_http_requests_total, finops_http_request_duration_seconds)",
          "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
