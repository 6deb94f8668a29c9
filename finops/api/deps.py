"""Dependencies of the routers, as Annotated aliases (`...Dep`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from finops.api.auth import app_state, authenticate, require, require_unscoped
from finops.api.state import AppState
from finops.store import Store
from finops.store.keys import Principal


async def _state(request: Request) -> AppState:
    return app_state(request)


async def _store(request: Request) -> Store:
    return app_state(request).db()


StateDep = Annotated[AppState, Depends(_state)]
StoreDep = Annotated[Store, Depends(_store)]
PrincipalDep = Annotated[Principal, Depends(authenticate)]
ViewerDep = Annotated[Principal, Depends(require("viewer"))]
FinanceDep = Annotated[Principal, Depends(require("finance"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
UnscopedDep = Annotated[Principal, Depends(require_unscoped)]
