"""Cost Explorer collection: pure parsing on recorded pages, then whole runs against moto's server.

moto serves queued GetCostAndUsage answers by request body, first come first served. The answers
come from a FakeBill (tests/support/moto.py) that evaluates each request's Filter and GroupBy over
known line items; a first run against the bill's own HTTP double records which bodies the plan
sends, in order, and those answers are queued in moto for the run under test.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from finops.collect import collect
from finops.settings import AwsSettings, Settings
from finops.sources.aws import ce as aws_ce
from finops.store import Store
from finops.timeutil import Window
from tests.conftest import FIXTURES
from tests.support import moto as doubles
from tests.support.clock import TEST_NOW, month_start
from tests.support.moto import CeServer, FakeBill, Item, item, queue_ce

pytestmark = pytest.mark.clock  # data and expectations are placed relative to the suite's clock

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures

AWS_FIXTURES = FIXTURES / "aws"
# Days of a month long closed for corrections, placed relative to the suite's clock.
D1 = month_start(TEST_NOW.date(), 2) + timedelta(days=1)
D2, D3 = D1 + timedelta(days=1), D1 + timedelta(days=2)
WINDOW = Window.from_dates(D1, D1 + timedelta(days=3))
EC2, S3 = "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"
A1, A2 = "111111111111", "222222222222"
LLAMA = {"Project": "chatbot", "Team": "coreai", "Environment": "prod", "ModelID": "llama-70b"}

# Partly untagged, with tuples whose pairs recombine wrongly if tags were collected two by two:
# (chatbot, coreai) and (prod, llama-70b) both occur, but so do (search, coreai, prod, llama-70b).
SCENARIO = [
    item(D1, LLAMA, EC2, A1, "240.0000000001", "200.5"),
    item(D1, {"Project": "Chatbot", "Team": "CoreAI", "Environment": "prod"}, EC2, A1, "120.00"),
    item(D1, {"Project": "search", "Team": "platform", "Environment": "prod", "ModelID": "mistral-7b"}, EC2, A2,
         "96.1234567891"),
    item(D1, {}, S3, A1, "30.00"),
    item(D1, {}, EC2, A2, "48.00"),
    item(D1, {"Team": "coreai"}, S3, A1, "5.5"),
    item(D1, {**LLAMA, "Environment": "dev"}, EC2, A1, "12.25"),
    item(D1, {**LLAMA, "Project": "search"}, EC2, A2, "7.0000000003"),
    item(D2, LLAMA, EC2, A1, "239.99", "199.99"),
    item(D2, LLAMA, S3, A1, "0.0123456789"),
    item(D2, {}, EC2, A2, "48.00"),
    item(D2, {"Project": "search", "Team": "platform", "Environment": "prod", "ModelID": "mistral-7b"}, EC2, A2,
         "95.50"),
    item(D2, {"Environment": "prod"}, S3, A2, "3.3333333333"),
    item(D3, LLAMA, EC2, A1, "-1.5"),
    item(D3, {}, S3, A1, "31.00"),
    item(D3, {"Project": "search", "Team": "coreai", "Environment": "prod", "ModelID": "llama-70b"}, EC2, A2, "8"),
]


def aws_settings(settings: Settings, **aws: Any) -> Settings:
    base = {"max_attempts": 2, "tag_keys": {"project": "Project", "team": "Team", "environment": "Environment",
                                            "model_id": "ModelID"}}
    return settings.model_copy(update={"aws": AwsSettings(**{**base, **aws})})


def record(bill: FakeBill, settings: Settings, window: Window) -> list[dict[str, Any]]:
    """The answers a run over `window` asks for, in the order it asks (no cache while recording)."""
    aws = settings.aws.model_copy(update={"endpoint_urls": {}, "ce_cache": False})
    with CeServer(bill) as ce:
        rec = settings.model_copy(update={"aws": aws.model_copy(update={"endpoint_url": ce.url})})
        for task in aws_ce.tasks(rec, window, now=TEST_NOW):
            task.fetch()
    return [answer for _, answer in ce.log]


def run_via_moto(moto_url: str, bill: FakeBill, settings: Settings, store: Store, window: Window = WINDOW) -> Any:
    answers = record(bill, settings, window)
    queue_ce(moto_url, answers)
    results = collect(store, settings, "aws_ce", window)
    return results, answers


def expected(items: list[Item]) -> dict[tuple[Any, ...], tuple[Decimal, Decimal]]:
    """Truth from the bill: cost per day, normalised dims, service and account."""
    def norm(v: str | None) -> str | None:
        return v.strip().lower() if v and v.strip() else None

    out: dict[tuple[Any, ...], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for i in items:
        key = (i.day, norm(i.tag("Project")), norm(i.tag("Team")), norm(i.tag("Environment")),
               norm(i.tag("ModelID")), i.service, i.account)
        out[key][0] += i.billed
        out[key][1] += i.effective
    return {k: (b, e) for k, (b, e) in out.items() if b or e}


def stored(store: Store) -> dict[tuple[Any, ...], tuple[Decimal, Decimal]]:
    rows = store.query(
        "SELECT charge_date, project, team, environment, model_id, service_name, sub_account_id, "
        "sum(billed_cost), sum(effective_cost) FROM cost_lines WHERE source = 'aws_ce' GROUP BY ALL")
    return {tuple(r[:7]): (r[7], r[8]) for r in rows}


# --- pure parts ---------------------------------------------------------------------------------

R1, R2 = date(2026, 11, 2), date(2026, 11, 3)  # the days of the recorded pages in tests/fixtures/aws

def test_parse_pages_merges_recorded_pages_by_period() -> None:
    pages = [json.loads((AWS_FIXTURES / f"ce_grouped_page{n}.json").read_text()) for n in (1, 2)]
    level = (aws_ce.Key("TAG", "ModelID"), aws_ce.Key("TAG", "Environment"))
    cells = aws_ce.parse_pages(pages, level, ("UnblendedCost", "AmortizedCost"))
    assert cells[(R1, (None, None))].billed == Decimal("78.0000000001")
    assert cells[(R1, ("llama-70b", "prod"))].effective == Decimal("200.5")
    # 2026-11-03 arrives on both pages: its groups are merged, and it stays estimated.
    d2 = {values: c for (day, values), c in cells.items() if day == R2}
    assert set(d2) == {(None, "prod"), ("mistral-7b", "prod"), ("llama-70b", "dev")}
    assert all(c.estimated for c in d2.values())
    total = aws_ce.parse_pages([json.loads((AWS_FIXTURES / "ce_total.json").read_text())], (),
                               ("UnblendedCost", "AmortizedCost"))
    for day in (R1, R2):
        assert sum(c.billed for (d, _), c in cells.items() if d == day) == total[(day, ())].billed
        assert sum(c.effective for (d, _), c in cells.items() if d == day) == total[(day, ())].effective


def test_group_keys_and_amounts_are_checked() -> None:
    tag = aws_ce.Key("TAG", "Project")
    assert tag.value("Project$") is None
    assert tag.value("Project$a$b") == "a$b"
    with pytest.raises(ValueError, match="not 'Project\\$<value>'"):
        tag.value("Team$x")
    page = {"ResultsByTime": [{"TimePeriod": {"Start": "2026-11-02", "End": "2026-11-03"}, "Groups": [
        {"Keys": ["Project$x"], "Metrics": {"UnblendedCost": {"Amount": "12,50", "Unit": "USD"},
                                            "AmortizedCost": {"Amount": "1", "Unit": "USD"}}}]}]}
    with pytest.raises(ValueError, match="UnblendedCost amount '12,50' is not a decimal"):
        aws_ce.parse_pages([page], (tag,), ("UnblendedCost", "AmortizedCost"))


def test_requests_are_built_in_one_place_and_stable() -> None:
    level = (aws_ce.Key("TAG", "Team"), aws_ce.Key("TAG", "Project"))
    combo = ((aws_ce.Key("TAG", "ModelID"), None), (aws_ce.Key("TAG", "Environment"), "prod"))
    window = Window.from_dates(date(2026, 11, 2), date(2026, 11, 5))
    a = aws_ce.build_request(window, ["UnblendedCost", "AmortizedCost"], level, combo)
    b = aws_ce.build_request(window, ("UnblendedCost", "AmortizedCost"), list(level), combo)
    assert json.dumps(a) == json.dumps(b)
    assert a["TimePeriod"] == {"Start": "2026-11-02", "End": "2026-11-05"}
    assert a["Filter"] == {"And": [{"Tags": {"Key": "ModelID", "MatchOptions": ["ABSENT"]}},
                                   {"Tags": {"Key": "Environment", "Values": ["prod"], "MatchOptions": ["EQUALS"]}}]}
    single = aws_ce.build_request(WINDOW, ["UnblendedCost"], level, combo[1:], token="t")
    assert "And" not in single["Filter"] and list(single)[-1] == "NextPageToken"


def test_default_plan_pairs_tags_then_dimensions() -> None:
    plan = aws_ce.levels(AwsSettings())
    assert [[(k.type, k.name) for k in lv] for lv in plan] == [
        [("TAG", "ModelID"), ("TAG", "Environment")], [("TAG", "Team"), ("TAG", "Project")],
        [("DIMENSION", "SERVICE"), ("DIMENSION", "LINKED_ACCOUNT")]]
    assert len(aws_ce.levels(AwsSettings(ce_dimensions=[]))) == 2


@pytest.mark.parametrize(("today", "start"), [
    (date(2026, 11, 23), date(2026, 11, 20)),   # mid-month: the trailing 3 days
    (date(2026, 12, 2), date(2026, 11, 1)),     # first days: the whole previous month too
    (date(2026, 12, 5), date(2026, 11, 1)),
    (date(2026, 12, 6), date(2026, 12, 3)),
    (date(2027, 1, 3), date(2026, 12, 1)),      # across a year
])
def test_restatement_window(settings: Settings, today: date, start: date) -> None:
    assert aws_ce.restatement_window(settings, today) == Window.from_dates(start, today)


def test_windows_become_whole_days_split_by_month(settings: Settings) -> None:
    window = Window(datetime(2026, 10, 30, 6), datetime(2026, 11, 2, 0, 0))
    now = datetime(2026, 11, 20, 12)
    chunks = [t.window for t in aws_ce.tasks(settings, window, now=now)]
    assert chunks == [Window.from_dates(date(2026, 10, 30), date(2026, 11, 1)),
                      Window.from_dates(date(2026, 11, 1), date(2026, 11, 2))]
    assert {t.scope for t in aws_ce.tasks(settings, window, now=now)} == {"aws_ce"}
    # Pieces that start after today are left out.
    assert aws_ce.tasks(settings, Window.from_dates(date(2026, 11, 21), date(2026, 12, 1)), now=now) == []


# --- whole runs against moto ---------------------------------------------------------------------

def test_scenario_lands_joint_exact_and_equal_to_the_ungrouped_total(
        moto: str, aws_env: None, settings: Settings, store: Store) -> None:
    s = aws_settings(settings, endpoint_url=moto)
    results, answers = run_via_moto(moto, FakeBill(SCENARIO, page_size=4), s, store)
    assert [r.status for r in results] == ["succeeded"], results
    assert any("NextPageToken" in a for a in answers), "the scenario must span several pages"
    assert stored(store) == expected(SCENARIO)
    total = store.query("SELECT sum(billed_cost), sum(effective_cost) FROM cost_lines")[0]
    assert total == (sum(i.billed for i in SCENARIO), sum(i.effective for i in SCENARIO))
    # Raw tags are kept as the bill had them; untagged lines have no tags and NULL dims.
    raw = store.query("SELECT tags FROM cost_lines WHERE charge_date = ? AND billed_cost = 120", [D1])
    assert json.loads(raw[0][0]) == {"Project": "Chatbot", "Team": "CoreAI", "Environment": "prod"}
    untagged = store.query("SELECT count(*) FROM cost_lines WHERE tags IS NULL AND project IS NULL "
                           "AND team IS NULL AND environment IS NULL AND model_id IS NULL")[0][0]
    assert untagged == len({(i.day, i.service, i.account) for i in SCENARIO if not i.tags})
    assert store.query("SELECT DISTINCT provider_name, resource_id, estimated FROM cost_lines") == [("AWS", None, False)]
    run = store.query("SELECT requests, status FROM source_runs WHERE source = 'aws_ce'")[0]
    assert run == (len(answers), "succeeded")


def test_rerunning_a_closed_window_sends_no_request(moto: str, aws_env: None, settings: Settings,
                                                      store: Store, tmp_path: Path) -> None:
    s = aws_settings(settings, endpoint_url=moto, ce_cache_dir=tmp_path / "ce-cache")
    run_via_moto(moto, FakeBill(SCENARIO), s, store)
    first = stored(store)
    assert list((tmp_path / "ce-cache").glob("*.json")), "closed answers must be cached"
    # moto forgets everything: any request now would get an empty answer and change the store.
    httpx.post(f"{moto}/moto-api/reset").raise_for_status()
    (again,) = collect(store, s, "aws_ce", WINDOW)
    assert again.status == "succeeded" and again.requests == 0
    assert again.details["cached"] == again.details["queries"] > 0
    assert stored(store) == first
    requests = [r[0] for r in store.query("SELECT requests FROM source_runs ORDER BY run_id")]
    assert requests[0] > 0 and requests[1] == 0


def test_estimated_day_finalised_later_is_replaced_not_added(moto: str, aws_env: None, settings: Settings,
                                                              store: Store) -> None:
    s = aws_settings(settings, endpoint_url=moto)
    early = [i for i in SCENARIO if i.day != D3] + [item(D3, LLAMA, EC2, A1, "10.00")]
    run_via_moto(moto, FakeBill(early, estimated=frozenset({D3})), s, store)
    assert store.query("SELECT bool_and(estimated), sum(billed_cost) FROM cost_lines WHERE charge_date = ?",
                       [D3]) == [(True, Decimal("10.00"))]
    assert not list(aws_ce.cache_dir(s).glob("*.json")), "answers with estimated days are never cached"

    httpx.post(f"{moto}/moto-api/reset").raise_for_status()
    run_via_moto(moto, FakeBill(SCENARIO), s, store)
    assert stored(store) == expected(SCENARIO)
    assert store.query("SELECT bool_or(estimated), sum(billed_cost) FROM cost_lines WHERE charge_date = ?",
                       [D3]) == [(False, sum(i.billed for i in SCENARIO if i.day == D3))]
    assert store.query("SELECT sum(billed_cost) FROM cost_daily WHERE source = 'aws_ce'")[0][0] == \
        sum(i.billed for i in SCENARIO)
