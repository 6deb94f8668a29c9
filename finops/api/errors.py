"""Errors as JSON `{"error": {"param": ..., "message": ...}}`, their handlers and OpenAPI entries."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from finops.reports.params import ParamError

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    param: str | None = Field(description="the parameter at fault, when one is")
    message: str = Field(description="what is wrong, naming the parameter")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error answered as JSON with `status`; `param` names the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.headers = dict(headers or {})


DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No key, or a key that is unknown, malformed or revoked",
    403: "The key's role or team scope does not allow this",
    404: "No such resource",
    409: "Conflicts with the current state (a collection of that source is running; the last active admin key)",
    411: "A file upload without a Content-Length",
    413: "The body is larger than `max_body_bytes` (`max_upload_bytes` for a file upload)",
    422: "A parameter is invalid; `error.param` names it",
    429: "Too many failed authentications from this address; retry after `Retry-After` seconds",
    503: "Not ready",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all with the ErrorBody schema."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def body(status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"param": param, "message": message}}, status_code=status, headers=headers)


def _param_of(loc: Sequence[Any]) -> str:
    # ("query", "granularity", "literal[...]"): the parameter, not the union member that failed.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "body", "header"):
        parts = parts[1:] or parts
    return parts[0] if parts else "request"


def allowed_methods(request: Request) -> list[str]:
    table = getattr(request.app.state, "route_table", None)
    return table.methods(request.url.path) if table is not None else []


async def reject_unknown_query(request: Request) -> None:
    """422 for query parameters the operation does not document (a typo must not be ignored), and
    for a parameter given more than once (which value was meant is not ours to guess)."""
    route = request.scope.get("route")
    known = getattr(request.app.state, "query_names", {}).get((request.method, getattr(route, "path", "")))
    if known is None:
        return
    unknown = sorted(k for k in request.query_params if k not in known)
    if unknown:
        raise ApiError(422, f"{unknown[0]}: unknown parameter", unknown[0])
    names = [k for k, _ in request.query_params.multi_items()]
    if len(names) != len(set(names)):
        repeated = next(k for i, k in enumerate(names) if k in names[:i])
        raise ApiError(422, f"{repeated}: given {names.count(repeated)} times; give it once", repeated)


def query_names(spec: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """(method, path) -> the query parameters the OpenAPI document lists for that operation."""
    out = {}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
            out[(method.upper(), path)] = frozenset(names)
            if method == "get":
                out[("HEAD", path)] = frozenset(names)
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return body(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(ParamError)
    async def _param_error(_: Request, exc: ParamError) -> JSONResponse:
        return body(422, f"{exc.param}: {exc.message}", exc.param)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # FastAPI reports it as a validation error at a position
            return body(400, "body: not valid JSON", "body")
        param = _param_of(first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if first.get("type") == "extra_forbidden":
            msg = "unknown parameter"
        return body(422, f"{param}: {msg}", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; list all of them.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return body(exc.status_code, str(exc.detail), "body" if exc.status_code == 400 else None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return body(500, "internal error; see the server log")
