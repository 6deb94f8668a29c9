"""The CLI as a client of the running service, for the commands a user needs while `finops serve`
owns the store: ingest a FOCUS file, manage keys, compute a report. It authenticates with the admin
key the service issued for its own host (finops.store.local_access)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from finops.store.local_access import Access


class ServiceError(RuntimeError):
    """The service answered with an error; the message is its own (it names the parameter)."""


class ServiceClient:
    def __init__(self, access: Access, timeout: float = 600.0):
        self.access = access
        self._http = httpx.Client(base_url=access.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {access.key}"})

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _check(self, resp: httpx.Response) -> httpx.Response:
        if resp.is_success:
            return resp
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:300]
        raise ServiceError(f"the running service ({self.access.url}) answered {resp.status_code}: {message}")

    def upload_focus(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as fh:
            resp = self._http.post("/v1/sources/focus/files", content=fh,
                                   params={"name": path.name, "scope": str(path.resolve())},
                                   headers={"Content-Length": str(path.stat().st_size),
                                            "Content-Type": "application/octet-stream"},
                                   timeout=httpx.Timeout(60.0, read=None))  # a large file ingests slowly
        out: dict[str, Any] = self._check(resp).json()
        return out

    def create_key(self, role: str, team: str | None, name: str | None) -> dict[str, Any]:
        out: dict[str, Any] = self._check(self._http.post("/v1/keys", json={"role": role, "team": team,
                                                                             "name": name})).json()
        return out

    def list_keys(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._check(self._http.get("/v1/keys")).json()
        return out

    def revoke_key(self, key_id: str) -> None:
        self._check(self._http.delete(f"/v1/keys/{key_id}"))

    def report(self, name: str, query: dict[str, Any], fmt: str) -> tuple[bytes, str]:
        """The rendered report and its kind (json, csv, zip or xlsx, from the answer's media type)."""
        params = {k: v for k, v in query.items() if v is not None}
        resp = self._check(self._http.get(f"/v1/reports/{name}", params={**params, "format": fmt}))
        media = resp.headers.get("content-type", "")
        kind = "zip" if "zip" in media else "xlsx" if "spreadsheet" in media else fmt
        return resp.content, kind

    def list_budgets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(self._check(self._http.get("/v1/budgets")).text, parse_float=Decimal)
        return out

    def put_budget(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self._check(self._http.put(f"/v1/budgets/{quote(name)}", json=spec)).json()
        return out

    def delete_budget(self, name: str) -> None:
        self._check(self._http.delete(f"/v1/budgets/{quote(name)}"))
