"""/v1/keys: create, list and revoke API keys over HTTP (admin), for use while the server owns the DB."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from finops.api.deps import AdminDep, StateDep
from finops.api.errors import ApiError, responses
from finops.api.schemas import KeyCreate, KeyCreated, KeyOut, utc
from finops.store.keys import ApiKey, LastAdminKey, check_team, create_key, list_keys, revoke_key

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def key_out(k: ApiKey) -> KeyOut:
    return KeyOut(key_id=k.key_id, role=k.role, team=k.team, name=k.name, created_at=utc(k.created_at),
                  last_used_at=utc(k.last_used_at), revoked_at=utc(k.revoked_at))


@router.post("", status_code=201, response_model=KeyCreated, responses=responses(400, 401, 403, 413, 422, 429),
             summary="Create a key; the answer holds the key, shown this once")
async def create(_: AdminDep, state: StateDep, body: KeyCreate) -> KeyCreated:
    team = None
    if body.team is not None:
        team = state.rules.value(body.team)
        if team is None:
            raise ApiError(422, f"team: {body.team!r} means a missing tag, not a team", "team")
    try:
        check_team(team, body.role)
    except ValueError as exc:
        param, message = str(exc).split(": ", 1)
        raise ApiError(422, f"{param}: {message}", param) from None
    record, key = await run_in_threadpool(create_key, state.db(), body.role, team, body.name, state.now())
    return KeyCreated(**key_out(record).model_dump(), key=key)


@router.get("", response_model=list[KeyOut], responses=responses(401, 403, 429), summary="List keys (never the keys)")
def list_all(_: AdminDep, state: StateDep) -> list[KeyOut]:
    return [key_out(k) for k in list_keys(state.db())]


@router.delete("/{key_id}", status_code=204, response_class=Response,
               responses=responses(401, 403, 404, 409, 429),
               summary="Revoke a key at once (not the last active admin key: 409)")
def revoke(_: AdminDep, state: StateDep, key_id: Annotated[str, Path(max_length=64)]) -> Response:
    try:
        revoked = revoke_key(state.db(), key_id, state.now(), keep_an_admin=True)
    except LastAdminKey as exc:
        raise ApiError(409, str(exc), "key_id") from None
    if not revoked:
        raise ApiError(404, f"key_id: no active key {key_id!r}", "key_id")
    state.keys.clear()  # a revoked key must not live on in the cache
    return Response(status_code=204)
