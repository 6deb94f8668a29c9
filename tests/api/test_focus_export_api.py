"""GET /v1/exports/focus: the same FOCUS file as `finops export focus`, for finance keys only."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal

import pyarrow.parquet as pq

from finops.reports.focus_export import focus_export, to_csv
from finops.reports.params import build_params
from tests.api.conftest import Api, Keys
from tests.support import example_a

WINDOW = {"start": "2026-11-02", "end": "2026-11-03"}


def test_the_export_over_http_is_the_commands(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    p = build_params(**WINDOW)
    expected = focus_export(api.store, api.settings, p.start, p.end)
    got = api.get("/v1/exports/focus", keys.finance, params=WINDOW)
    assert got.status_code == 200, got.text
    assert got.headers["content-disposition"] == 'attachment; filename="focus_2026-11-02_2026-11-03.parquet"'
    table = pq.read_table(io.BytesIO(got.content))
    assert table.to_pylist() == expected.to_pylist()
    assert sum((r["BilledCost"] for r in table.to_pylist()), Decimal(0)) == sum(Decimal(c) for *_, c in example_a.BILL)
    csv = api.get("/v1/exports/focus", keys.finance, params={**WINDOW, "format": "csv"})
    assert (csv.status_code, csv.content) == (200, to_csv(expected))


def test_viewers_team_keys_and_bad_windows_are_refused(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    assert api.get("/v1/exports/focus", keys.viewer, params=WINDOW).status_code == 403
    assert api.get("/v1/exports/focus", keys.platform, params=WINDOW).status_code == 403  # finance, team-scoped
    backwards = api.get("/v1/exports/focus", keys.finance, params={"start": "2026-11-03", "end": "2026-11-02"})
    assert backwards.status_code == 422 and backwards.json()["error"]["param"] == "end"
    assert api.get("/v1/exports/focus", keys.finance, params={**WINDOW, "format": "xlsx"}).status_code == 422
