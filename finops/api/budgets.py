"""/v1/budgets: list, read, create, replace and delete budgets (finops.store.budgets).

Unscoped finance and admin keys write; every key reads, a team-scoped key only the budgets filtered
on its team. Filter values are normalised by the tag rules, as report filters are.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from finops.api.auth import require
from finops.api.deps import StateDep, ViewerDep
from finops.api.errors import ApiError, responses
from finops.api.schemas import exact_json, utc
from finops.api.state import AppState
from finops.store.budgets import (
    NAME_PATTERN,
    Budget,
    BudgetCreate,
    BudgetExists,
    BudgetSpec,
    delete_budget,
    get_budget,
    list_budgets,
    save_budget,
)
from finops.store.keys import Principal

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])
NameParam = Annotated[str, Path(pattern=NAME_PATTERN, description="the budget's name")]


async def _writer(principal: Annotated[Principal, Depends(require("finance"))]) -> Principal:
    if principal.team is not None:
        raise ApiError(403, f"budgets are written with an unscoped key; yours is scoped to team {principal.team!r}")
    return principal


WriterDep = Annotated[Principal, Depends(_writer)]


def _out(b: Budget) -> dict[str, Any]:
    return {**b.model_dump(), "created_at": utc(b.created_at), "updated_at": utc(b.updated_at)}


def _normalised(state: AppState, spec: BudgetSpec) -> BudgetSpec:
    filters = {}
    for dim, raw in spec.filters.items():
        value = state.rules.value(raw)
        if value is None:
            raise ApiError(422, f"filters.{dim}: {raw!r} means a missing tag; filter on a value", "filters")
        filters[dim] = value
    try:  # checked again once normalised (" __unallocated__ " is refused, as "__unallocated__" is)
        return BudgetSpec.model_validate({**spec.model_dump(), "filters": filters})
    except ValidationError as exc:
        raise ApiError(422, f"filters: {exc.errors(include_url=False)[0]['msg']}", "filters") from None


def _visible(principal: Principal, b: Budget | None) -> Budget | None:
    return b if b is not None and (principal.team is None or b.filters.get("team") == principal.team) else None


@router.get("", response_model=list[Budget], responses=responses(401, 403, 429),
            summary="Budgets by name; a team-scoped key sees the budgets of its team")
def list_all(principal: ViewerDep, state: StateDep) -> Response:
    return exact_json([_out(b) for b in list_budgets(state.db(), principal.team)])


@router.get("/{name}", response_model=Budget, responses=responses(401, 403, 404, 422, 429), summary="One budget")
def read(principal: ViewerDep, state: StateDep, name: NameParam) -> Response:
    found = _visible(principal, get_budget(state.db(), name))
    if found is None:
        raise ApiError(404, f"name: no budget {name!r}", "name")
    return exact_json(_out(found))


@router.post("", status_code=201, response_model=Budget, responses=responses(401, 403, 409, 413, 422, 429),
             summary="Create a budget (finance or admin; 409 if the name is taken)")
async def create(principal: WriterDep, state: StateDep, body: BudgetCreate) -> Response:
    spec = _normalised(state, BudgetSpec(**body.model_dump(exclude={"name"})))
    try:
        made = await run_in_threadpool(
            lambda: save_budget(state.db(), body.name, spec, state.now(), principal.key_id, create=True))
    except BudgetExists as exc:
        raise ApiError(409, str(exc), "name") from None
    return exact_json(_out(made), 201)


@router.put("/{name}", response_model=Budget, responses=responses(401, 403, 413, 422, 429),
            summary="Create or replace a budget (finance or admin)")
async def replace(principal: WriterDep, state: StateDep, name: NameParam, body: BudgetSpec) -> Response:
    spec = _normalised(state, body)
    saved = await run_in_threadpool(lambda: save_budget(state.db(), name, spec, state.now(), principal.key_id))
    return exact_json(_out(saved))


@router.delete("/{name}", status_code=204, response_class=Response, responses=responses(401, 403, 404, 422, 429),
               summary="Delete a budget (finance or admin)")
def delete(principal: WriterDep, state: StateDep, name: NameParam) -> Response:
    if not delete_budget(state.db(), name, state.now(), principal.key_id):
        raise ApiError(404, f"name: no budget {name!r}", "name")
    return Response(status_code=204)

