"""Bearer-key authentication, role checks and team scope, as FastAPI dependencies.

A failed attempt is logged with the client address and the reason, never with the key. After
`auth_failures_per_minute` failures from one address, further attempts from it answer 429 until
the oldest failure is a minute old (the address is the TCP peer; behind a reverse proxy, run
uvicorn with `--proxy-headers` and `--forwarded-allow-ips` so the peer is the real client).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from finops.api.errors import ApiError
from finops.api.state import AppState
from finops.store.keys import Principal, Role, verify_key

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                    description="An API key from `finops keys create` or `POST /v1/keys`: `Authorization: Bearer fk_...`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.finops
    return state


async def authenticate(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The principal of the request's key, or 401 (no/bad key) or 429 (too many failures)."""
    state = app_state(request)
    client = request.client.host if request.client else "unknown"
    retry = state.limiter.retry_after(client, time.monotonic())
    if retry is not None:
        raise ApiError(429, f"too many failed authentications from {client}; retry in {math.ceil(retry)} s",
                       headers={"Retry-After": str(math.ceil(retry))})
    if credentials is None:
        raise ApiError(401, "authorization: send `Authorization: Bearer <key>`", "authorization", CHALLENGE)
    key = credentials.credentials
    digest = state.keys.digest(key)
    principal = state.keys.get(digest)
    if principal is None:
        verdict = await run_in_threadpool(verify_key, state.db(), key)
        if verdict.principal is None:
            failures = state.limiter.failed(client, time.monotonic())
            log.warning("authentication failed from %s: %s%s (%d failure(s) in the last minute)", client,
                        verdict.reason, f" (key id {verdict.key_id})" if verdict.key_id else "", failures)
            raise ApiError(401, "authorization: the key is not valid", "authorization", CHALLENGE)
        principal = verdict.principal
        state.keys.put(digest, principal)
    if state.last_used is not None:
        state.last_used.touch(principal.key_id, state.now())
    return principal


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys of `role` or a higher one (viewer < finance < admin)."""

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.can(role):
            raise ApiError(403, f"this needs a {role} key; yours is {principal.role}")
        return principal

    check.__name__ = f"require_{role}"
    return check


async def require_unscoped(principal: Annotated[Principal, Depends(require("viewer"))]) -> Principal:
    """Any role, but not a team-scoped key (for data that spans every team)."""
    if principal.team is not None:
        raise ApiError(403, f"this spans every team; your key is scoped to team {principal.team!r}")
    return principal
