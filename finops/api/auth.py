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
from fastapi.security.utils import get_authorization_scheme_param
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


# Where the principal of a request's key is kept once verified (by BodyGuard or a dependency), so a
# second dependency of the same request does not verify, count or touch the key again.
PRINCIPAL_SCOPE_KEY = "finops.principal"


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header value, or None (absent, other scheme, empty)."""
    scheme, key = get_authorization_scheme_param(authorization)  # as HTTPBearer reads it
    return key if scheme.lower() == "bearer" and key else None


async def check_key(state: AppState, client: str, key: str | None) -> Principal:
    """The principal of `key`, or ApiError 401 (no/bad key) or 429 (too many failures from `client`)."""
    retry = state.limiter.retry_after(client, time.monotonic())
    if retry is not None:
        raise ApiError(429, f"too many failed authentications from {client}; retry in {math.ceil(retry)} s",
                       headers={"Retry-After": str(math.ceil(retry))})
    if key is None:
        raise ApiError(401, "authorization: send `Authorization: Bearer <key>`", "authorization", CHALLENGE)
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


async def authenticate(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The principal of the request's key, or 401 (no/bad key) or 429 (too many failures)."""
    verified: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if verified is not None:  # e.g. BodyGuard checked this request's key before reading its body
        return verified
    client = request.client.host if request.client else "unknown"
    principal = await check_key(app_state(request), client, credentials.credentials if credentials else None)
    request.scope[PRINCIPAL_SCOPE_KEY] = principal  # checked once per request, whichever dependency asks
    return principal


async def optional_principal(request: Request) -> Principal | None:
    """None without an `Authorization` header; otherwise the key must be valid (401/429 as above).

    Not a security scheme in the OpenAPI document: the operation answers without a key too."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    verified: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if verified is not None:
        return verified
    client = request.client.host if request.client else "unknown"
    return await check_key(app_state(request), client, bearer_key(header))


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
