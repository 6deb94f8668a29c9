"""GET /v1/reports/recommendations: example A's idle shutdowns over HTTP, within a team key's scope."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from finops.settings.recommendations import RecommendationSettings
from tests.api.conftest import WEEK, Api, Keys

MONTH = RecommendationSettings().days_per_month


def exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def test_recommendations_of_example_a(api: Api, keys: Keys) -> None:
    r = api.get("/v1/reports/recommendations", keys.viewer, params={"week": WEEK})
    assert r.status_code == 200, r.text
    body = exact(r.text)
    idle = {row["resource"]: row for row in body["rows"] if row["kind"] == "idle_shutdown"}
    # i-gpu4 costs 48.00 a day and idles all day; i-gpu2's GPU idles 12 hours at 5.00.
    assert idle["i-gpu4"]["monthly_saving"] == (Decimal("48") * MONTH).quantize(Decimal("0.01"))
    assert idle["i-gpu2"]["monthly_saving"] == (Decimal("60") * MONTH).quantize(Decimal("0.01"))
    assert body["totals"]["monthly_saving"] == sum(row["monthly_saving"] for row in body["rows"])
    csv = api.get("/v1/reports/recommendations", keys.viewer, params={"week": WEEK, "format": "csv"})
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    assert "i-gpu4" in csv.text


def test_a_team_key_sees_only_its_recommendations(api: Api, keys: Keys) -> None:
    body = exact(api.get("/v1/reports/recommendations", keys.coreai, params={"week": WEEK}).text)
    assert [row["resource"] for row in body["rows"]] == ["i-gpu2"]
    assert all(row["team"] == "coreai" for row in body["rows"])
    assert "i-gpu4" not in json.dumps(body, default=str)
