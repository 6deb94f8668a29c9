"""Report data for analysts' notebooks: through the service's HTTP API, or from a read-only snapshot.

`from_env()` picks the source from the environment:
- `FINOPS_API_URL` (and `FINOPS_API_KEY`): the running service, `GET /v1/reports/{name}`;
- otherwise the database file named by `FINOPS_DB` (default `./finops.duckdb`), opened read-only
  for each call, with the reports computed in this process (possible only while no service holds
  the file).

Both give a report as the API's JSON document (`rows`, `totals`, `params`, more tables), with money
as exact `Decimal`s. `frame()` turns rows into a pandas DataFrame with floats, for plotting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from finops.settings import Settings, load_settings
from finops.timeutil import iso_week, utcnow

if TYPE_CHECKING:
    import pandas as pd

Params = str | int | float | date | None


class ReadError(RuntimeError):
    """A report could not be read; the message says why (never the key)."""


class Unavailable(ReadError):
    """This source cannot provide that data (e.g. hourly facts through the API)."""


def _query(params: Mapping[str, Params]) -> dict[str, str]:
    return {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in params.items() if v is not None}


@dataclass
class ApiSource:
    """The running service. `key`: an API key (the weekly report and XLSX need a finance key)."""

    url: str
    key: str | None = None
    timeout: float = 120.0

    def describe(self) -> str:
        return f"the finops API at {self.url}"

    def report(self, name: str, **params: Params) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            resp = httpx.get(f"{self.url.rstrip('/')}/v1/reports/{name}", params=_query(params), headers=headers,
                             timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ReadError(f"{self.url} is unreachable ({type(exc).__name__}); is `finops serve` running?") from None
        if resp.status_code != 200:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:300]
            raise ReadError(f"{name}: HTTP {resp.status_code}: {message}")
        doc: dict[str, Any] = json.loads(resp.text, parse_float=Decimal)
        return doc

    def gpu_hours(self, start: date, end: date) -> list[dict[str, Any]]:
        raise Unavailable("the API serves reports, not hourly GPU facts; stop the service and set FINOPS_DB "
                          "to read them from a snapshot")


@dataclass
class SnapshotSource:
    """A database file opened read-only for each call; reports computed here, as the API would."""

    db: Path
    settings: Settings = field(default_factory=load_settings)

    def describe(self) -> str:
        return f"a read-only snapshot of {self.db}"

    def _open(self) -> Any:
        from finops.store import open_store

        if not self.db.exists():
            raise ReadError(f"{self.db} does not exist; set FINOPS_DB to a finops database, or FINOPS_API_URL "
                            "(and FINOPS_API_KEY) to read through the service")
        try:
            return open_store(self.db, self.settings.duckdb, read_only=True)
        except Exception as exc:  # DuckDB refuses while another process holds the file for writing
            raise ReadError(f"{self.db} cannot be opened read-only ({type(exc).__name__}); while `finops serve` "
                            "holds it, read through the API (FINOPS_API_URL, FINOPS_API_KEY)") from None

    def report(self, name: str, **params: Params) -> dict[str, Any]:
        from finops import reports
        from finops.reports.export import render
        from finops.reports.params import ParamError, build_params

        s = self.settings
        values = _query(params)
        values.setdefault("idle_threshold", str(s.idle_threshold))
        try:
            p = build_params(default_required=s.required_tags, shared_cost_key=s.shared_cost_key,
                             today=utcnow().date(), **values)  # type: ignore[arg-type]
        except ParamError as exc:
            raise ReadError(f"{name}: {exc}") from None
        store = self._open()
        try:
            content, _ = render(reports.get(name)(store, s, p), "json")
        finally:
            store.close()
        doc: dict[str, Any] = json.loads(content, parse_float=Decimal)
        return doc

    def gpu_hours(self, start: date, end: date) -> list[dict[str, Any]]:
        """Hourly GPU facts in `[start, end)`: hour, host, resource, GPU and its busy fraction."""
        store = self._open()
        try:
            cur = store.cursor()
            table = cur.sql("SELECT hour_start, host, resource_id, gpu_uuid, gpu_model, busy FROM gpu_hours "
                            "WHERE hour_start >= $start AND hour_start < $end ORDER BY hour_start, host, gpu_uuid",
                            params={"start": start, "end": end}).to_arrow_table()
            return list(table.to_pylist())
        finally:
            store.close()


Source = ApiSource | SnapshotSource


def from_env(environ: Mapping[str, str] | None = None) -> Source:
    """The API when `FINOPS_API_URL` is set, else a read-only snapshot of `FINOPS_DB`."""
    env = os.environ if environ is None else environ
    url = env.get("FINOPS_API_URL")
    if url:
        return ApiSource(url, env.get("FINOPS_API_KEY") or None)
    settings = load_settings()
    return SnapshotSource(Path(env.get("FINOPS_DB") or settings.db), settings)


def latest_week(today: date | None = None) -> str:
    """The last complete ISO week before today (UTC), e.g. `2026-W47`."""
    today = today or utcnow().date()
    return iso_week(today - timedelta(days=today.weekday() + 7))


def frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame for analysis and plots: Decimals become floats, ISO dates become datetimes."""
    import pandas as pd

    def plain(v: Any) -> Any:
        return float(v) if isinstance(v, Decimal) else v

    df = pd.DataFrame([{k: plain(v) for k, v in r.items()} for r in rows])
    for col in df.columns:
        if col.endswith(("_start", "_end", "_at")) and not pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = pd.to_datetime(df[col])
    return df


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def today() -> date:
    return utcnow().date()
