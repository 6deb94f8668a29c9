"""A team-scoped key sees only its team's rows and totals, whatever it asks for and in every format."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from finops.tags import UNALLOCATED, TagRules
from tests.api.conftest import WEEK, Api, Keys
from tests.support.example_a import BILL


def team_bill(team: str) -> Decimal:
    """Example A's cost billed with `team` as its team tag (computed from the bill, not the API)."""
    rules = TagRules.build(("project", "team", "environment", "model_id"))
    return sum((Decimal(cost) for *_, tags, cost in BILL if rules.dims_from_tags(tags)["team"] == team), Decimal(0))


COREAI, PLATFORM = team_bill("coreai"), team_bill("platform")
OTHER_TEAMS = ("platform", "coreai")
WHOLE = sum(Decimal(line[4]) for line in BILL)


def exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def team_values(body: dict[str, Any]) -> set[str]:
    """Every `team` field in every table of a report body."""
    return {row["team"] for table in body.values() if isinstance(table, list) for row in table if "team" in row}


def test_expected_totals_differ() -> None:
    # The checks below mean something only if the teams' totals differ from each other and the whole.
    assert len({COREAI, PLATFORM, WHOLE}) == 3 and COREAI and PLATFORM


@pytest.mark.parametrize("params", [
    {}, {"group_by": "team"}, {"group_by": "project"}, {"group_by": "model_id", "granularity": "day"},
    {"team": "coreai"}, {"team": "CoreAI", "group_by": "team,environment"},
])
def test_unit_economics_stays_within_the_team(api: Api, keys: Keys, params: dict[str, str]) -> None:
    r = api.get("/v1/reports/unit-economics", keys.coreai, params={"week": WEEK, **params})
    assert r.status_code == 200, r.text
    body = exact(r.text)
    assert team_values(body) <= {"coreai"}
    assert body["totals"]["cost"] == COREAI == sum(row["cost"] for row in body["rows"])
    assert body["totals"]["ingested_total"] == COREAI
    assert body["params"]["filters"]["team"] == "coreai"
    assert UNALLOCATED not in r.text


@pytest.mark.parametrize("name", ["unit-economics", "idle-gpus", "untagged-spend"])
def test_another_team_is_refused(api: Api, keys: Keys, name: str) -> None:
    for team in ("platform", "PLATFORM"):
        r = api.get(f"/v1/reports/{name}", keys.coreai, params={"week": WEEK, "team": team})
        assert r.status_code == 403
        assert r.json()["error"]["param"] == "team"


def test_idle_gpus_and_untagged_spend_of_the_team(api: Api, keys: Keys) -> None:
    idle = exact(api.get("/v1/reports/idle-gpus", keys.coreai, params={"week": WEEK}).text)
    assert idle["rows"] and team_values(idle) == {"coreai"}
    assert idle["totals"]["idle_cost"] == sum(row["idle_cost"] for row in idle["rows"])
    untagged = exact(api.get("/v1/reports/untagged-spend", keys.coreai, params={"week": WEEK}).text)
    assert untagged["totals"]["total_cost"] == COREAI == sum(row["cost"] for row in untagged["rows"])
    # Only the team's own bill lines: the untagged bucket and the other team's VM never appear.
    assert {row["resource_id"] for row in untagged["rows"]} == {"i-gpu1", "i-gpu2"}
    csv_rows = list(csv.DictReader(io.StringIO(api.get(
        "/v1/reports/untagged-spend", keys.coreai, params={"week": WEEK, "format": "csv"}).text)))
    assert sum(Decimal(row["cost"]) for row in csv_rows) == COREAI


def _no_other_money(text: str) -> None:
    for other in ("coreai", UNALLOCATED, str(WHOLE), str(COREAI), "bucket-logs", "i-gpu4"):
        assert other not in text, other


def test_weekly_json_of_a_team_key_holds_only_its_team(api: Api, keys: Keys) -> None:
    for params in ({"week": WEEK}, {"week": WEEK, "group_by": "team"}, {"week": WEEK, "group_by": "project"}):
        r = api.get("/v1/reports/weekly", keys.platform, params=params)
        assert r.status_code == 200, r.text
        body = exact(r.text)
        assert team_values(body) == {"platform"}
        totals = body["totals"]
        assert totals["cost"] == totals["ingested_total"] == PLATFORM
        assert totals["control_total_matches"] is True
        summary = {row["metric"]: row["this_week"] for row in body["summary"]}
        assert summary["total_cost"] == summary["attributed_cost"] == PLATFORM
        assert summary["unallocated_cost"] == 0
        assert [row["amount"] for row in body["reconciliation"]] == [PLATFORM, PLATFORM]
        _no_other_money(r.text)


def test_weekly_downloads_of_a_team_key_hold_only_its_team(api: Api, keys: Keys) -> None:
    r = api.get("/v1/reports/weekly", keys.platform, params={"week": WEEK, "format": "csv"})
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        text = "\n".join(z.read(n).decode() for n in z.namelist())
    _no_other_money(text)
    assert str(PLATFORM) in text
    x = api.get("/v1/reports/weekly", keys.platform, params={"week": WEEK, "format": "xlsx"})
    assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.content))
    cells = [c for ws in wb.worksheets if ws.title != "Parameters" for row in ws.iter_rows(values_only=True) for c in row]
    numbers = {Decimal(str(c)) for c in cells if isinstance(c, int | float) and not isinstance(c, bool)}
    assert not numbers & {WHOLE, COREAI, WHOLE - COREAI - PLATFORM}
    assert not {str(c) for c in cells if isinstance(c, str)} & {"coreai", UNALLOCATED}
    assert PLATFORM in numbers
