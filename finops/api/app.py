"""`create_app`: the FastAPI application, built per call from explicit settings (no module-level app)."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from finops import reports
from finops.api import admin, alerts, budgets, exports, files, health, metrics, sources, uploads
from finops.api import reports as reports_router
from finops.api.auth import require, require_unscoped
from finops.api.cache import DataVersion, ReportCache
from finops.api.errors import install, query_names, reject_unknown_query, responses
from finops.api.guard import BodyGuard
from finops.api.keystore import KeyCache, LastUsed
from finops.api.mcp_tools import McpMount
from finops.api.routetable import RouteTable
from finops.api.runs import RunRegistry
from finops.api.scope import restrict
from finops.api.state import AppState, Clock, system_clock
from finops.api.telemetry import KpiCollector, MetricsMiddleware, RequestMetrics
from finops.reports.model import Report
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.settings.api import ApiSettings
from finops.store import Store, open_store
from finops.store.keys import FailureLimiter
from finops.tags import TagRules

log = logging.getLogger(__name__)

DESCRIPTION = """FinOps for self-hosted LLM inference: the reports of `finops report`, source freshness,
collections, alerts and Prometheus metrics. Authenticate with `Authorization: Bearer <key>`.
Errors answer `{"error": {"param": ..., "message": ...}}`."""


# The OpenAPI document depends on the code and on `api` (which routes answer without a key): built
# once per process and API configuration (~0.4 s), not for every app.
_SPECS: dict[str, dict[str, Any]] = {}


def create_app(settings: Settings, store: Store | None = None, clock: Clock | None = None,
               api: ApiSettings | None = None) -> FastAPI:
    """Build the API. Without `store` the database is opened at startup and closed at shutdown;
    a store passed in belongs to the caller. `api` defaults to `settings.api`."""
    api = api or settings.api

    def compute(name: str, params: ReportParams) -> Report:
        return restrict(reports.get(name)(state.db(), settings, params), params.filters)

    state = AppState(
        settings=settings, api=api, clock=clock or system_clock, rules=TagRules.from_settings(settings),
        cache=ReportCache(compute, api.report_cache_entries), limiter=FailureLimiter(api.auth_failures_per_minute),
        keys=KeyCache(api.key_cache_seconds), store=store,
    )

    def cached_report(name: str, params: ReportParams) -> Report:
        return state.cache.get(name, params, state.data_version().get()).report

    request_metrics = RequestMetrics(state.registry)
    state.kpis.register(KpiCollector(state.db, settings, state.now, cached_report, api.metrics_window_days,
                                     sources.LISTED))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owned = state.store is None
        if owned:
            state.store = open_store(settings.db, settings.duckdb)
        db = state.db()
        state.runs = RunRegistry(db, settings, state.now)
        state.last_used = LastUsed(db)
        state.version = DataVersion(db, api.data_version_max_age_seconds)
        try:
            async with mcp.running():
                yield
        finally:
            if not state.runs.join(api.shutdown_wait_seconds):
                log.warning("collections still running at shutdown; the ledger marks them interrupted on restart")
            state.last_used.close()
            if owned:
                db.close()
                state.store = None

    app = FastAPI(title="finops", version="1", description=DESCRIPTION, lifespan=lifespan,
                  dependencies=[Depends(reject_unknown_query)], docs_url=None, redoc_url=None)
    offline_docs(app)
    app.state.finops = state
    install(app)
    # The last added runs first: requests are counted (BodyGuard's answers too), then bodies are guarded.
    app.add_middleware(BodyGuard, state=state, max_body_bytes=api.max_body_bytes,
                       streamed={uploads.PATH: api.max_upload_bytes})
    routes = RouteTable()  # filled below, once every router is included
    app.add_middleware(MetricsMiddleware, metrics=request_metrics, routes=routes)
    closed: dict[str, Any] = {"responses": responses(401, 403, 429)}
    app.include_router(health.router, **({} if api.open_health else {
        **closed, "dependencies": [Depends(require("viewer"))]}))
    app.include_router(metrics.router, **({} if api.open_metrics else {
        **closed, "dependencies": [Depends(require_unscoped)]}))
    app.include_router(files.router)
    app.include_router(exports.router)
    app.include_router(reports_router.router)
    app.include_router(uploads.router)  # before /v1/sources/{name}: its path is more specific
    app.include_router(sources.router)
    app.include_router(alerts.router)
    app.include_router(budgets.router)
    app.include_router(admin.router)
    key = api.model_dump_json()
    # Read here only (query names, route table); /openapi.json builds the app's own on first use.
    spec = _SPECS[key] if key in _SPECS else _SPECS.setdefault(key, copy.deepcopy(app.openapi()))
    # The reports as MCP tools (docs/mcp.md), calling this app in process with the caller's key.
    mcp = McpMount(app, state)
    app.router.routes.append(mcp.route)
    app.state.query_names = query_names(spec)
    routes.load(app, spec)
    app.state.route_table = routes
    return app


DOCS_ASSETS = "/docs-assets"


def offline_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from the assets installed with the package, not a CDN, so it works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="finops API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")
