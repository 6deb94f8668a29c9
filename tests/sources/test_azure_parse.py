"""Pure parts of the Azure collector on recorded answers: parsing, joining, plans and windows."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finops.settings import AzureSettings, Settings
from finops.sources.azure import cost as az
from finops.sources.azure.client import DEFAULT_THROTTLE_WAIT, default_wait, throttle_wait
from finops.tags import TagRules
from finops.timeutil import Window
from tests.conftest import FIXTURES
from tests.support.azure_fake import check_body

AZ = FIXTURES / "azure"
NOV = Window(datetime(2026, 11, 1), datetime(2026, 12, 1))
SUB = "/subscriptions/11111111-1111-1111-1111-111111111111/resourcegroups/rg-gpu/providers/microsoft.compute"
VM1, VM2, DISK = f"{SUB}/virtualmachines/vm-gpu1", f"{SUB}/virtualmachines/vm-gpu2", f"{SUB}/disks/disk-1"
PROJECT = az.Plan("project", "TagKey", "Project")
SERVICE = az.Plan("service_name", "Dimension", "ServiceName")
TOL = Decimal("0.000001")


def props(name: str) -> dict:
    return json.loads((AZ / name).read_text())["properties"]


def key(rid: str, day: int, currency: str = "USD") -> az.RowKey:
    return az.RowKey(rid, date(2026, 11, day), currency)


def test_pages_with_different_column_orders_read_by_name_and_merge_untagged_forms() -> None:
    p1, p2 = props("resource_project_page1.json"), props("resource_project_page2.json")
    assert [c["name"] for c in p1["columns"]] != [c["name"] for c in p2["columns"]]
    rows = []
    for n, p in enumerate((p1, p2), 1):
        page = az.parse_page(p, PROJECT, NOV, f"page {n}")
        assert page.quarantine == [] and page.bad_keys == set()
        rows += page.rows
    # Upper-case ids are lower-cased, so VM-GPU1 on page 2 is the vm-gpu1 of page 1.
    assert az.fold(rows) == {
        key(VM1, 1): {"chatbot": Decimal("218.68795741935486")},
        key(VM1, 2): {"chatbot": Decimal("96")},
        key(VM2, 1): {"Search": Decimal("0.14384913581657052")},
        # null/null on page 1 and ""/null on page 2 are one untagged group
        key(DISK, 1): {None: Decimal("2.10333307059661") + Decimal("1.5")},
        key(DISK, 2): {None: Decimal("0.009865586851323632")},
    }
    assert {(r.key.resource_id, r.tag_key) for r in rows if r.value} >= {(VM2, "project"), (VM1, "Project")}


def test_the_same_page_in_any_column_order_parses_the_same() -> None:
    p = props("resource_project_page1.json")
    expected = az.parse_page(p, PROJECT, NOV, "x").rows
    n = len(p["columns"])
    for shift in range(1, n):
        order = [(i + shift) % n for i in range(n)][::-1]
        shuffled = {"columns": [p["columns"][i] for i in order], "rows": [[r[i] for i in order] for r in p["rows"]]}
        assert az.parse_page(shuffled, PROJECT, NOV, "x").rows == expected


def test_costs_are_read_from_the_double_repr_never_float_arithmetic() -> None:
    rows = az.parse_page(props("resource_service_page.json"), SERVICE, NOV, "x").rows
    by_rid = {r.key.resource_id: r for r in rows}
    assert by_rid[VM1].amount == Decimal("218.68795741935486")
    assert by_rid[DISK].amount == Decimal("3.60333307059661")
    assert by_rid[""].value == "Azure Support" and by_rid[""].amount == Decimal("12.0")


def test_malformed_rows_are_quarantined_with_reasons_and_their_resource_day_left_out() -> None:
    page = az.parse_page(props("malformed_rows.json"), PROJECT, NOV, "origin-x")
    assert [r.key.resource_id.rsplit("/", 1)[1] for r in page.rows] == ["good"]
    reasons = {q["raw"].split('"')[1].rsplit("/", 1)[1]: q["reason"] for q in page.quarantine}
    assert set(reasons) == {"bad-day", "text-cost", "bool-cost", "currency", "short", "outside", "other-key"}
    assert "no such day" in reasons["bad-day"]
    assert "Cost: not a number: '12.5'" in reasons["text-cost"]
    assert "Cost: not a number: True" in reasons["bool-cost"]
    assert "ISO 4217" in reasons["currency"]
    assert "5 values for 6 columns" in reasons["short"]
    assert "outside the queried period" in reasons["outside"]
    assert "TagKey 'Team'" in reasons["other-key"]
    assert all(q["origin"] == "origin-x" and q["line"] >= 2 for q in page.quarantine)
    # rows whose key could be read mark that resource-day bad, so every plan leaves it out alike
    assert {k.resource_id.rsplit("/", 1)[1] for k in page.bad_keys} == {"text-cost", "bool-cost", "currency", "other-key"}


def test_an_answer_without_a_needed_column_names_it() -> None:
    with pytest.raises(az.AzureAnswerError, match="no ResourceId column .*PreTaxCost, ResourceGroup"):
        az.parse_page(props("subscription_query_example.json"), SERVICE, Window(datetime(2018, 3, 1), datetime(2018, 5, 1)), "ex")
    assert az.parse_page({"rows": [], "columns": []}, SERVICE, NOV, "empty").rows == []


def test_single_valued_attributes_join_exactly_and_one_split_carries_the_others() -> None:
    k = key(VM1, 1)
    project = {k: {"chatbot": Decimal("3.5"), "search": Decimal("1.25")}}
    team = {k: {"coreai": Decimal("4.75")}}
    service = {k: {"Virtual Machines": Decimal("4.750000000001")}}  # Azure's doubles differ a little
    joined = az.join_marginals([project, team, service], TOL)
    assert joined.ambiguous == []
    assert joined.cells == {(k, ("chatbot", "coreai", "Virtual Machines")): Decimal("3.5"),
                            (k, ("search", "coreai", "Virtual Machines")): Decimal("1.25")}


def test_two_multi_valued_attributes_keep_the_total_and_leave_the_later_one_missing() -> None:
    k = key(VM1, 1)
    project = {k: {"a": Decimal(5), "b": Decimal(5)}}
    team = {k: {"x": Decimal(5), "y": Decimal(5)}}
    joined = az.join_marginals([project, team], TOL)
    assert joined.ambiguous == [k]
    assert joined.cells == {(k, ("a", None)): Decimal(5), (k, ("b", None)): Decimal(5)}


def test_answers_that_disagree_beyond_the_tolerance_fail() -> None:
    k = key(VM1, 1)
    with pytest.raises(az.AzureAnswerError, match="disagree on 1 resource-day.*refreshed between queries"):
        az.join_marginals([{k: {"a": Decimal("10")}}, {k: {None: Decimal("10.01")}}], TOL)


values = st.sampled_from(["a", "b", None])


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["r1", "r2", ""]), st.integers(1, 2), values, values, values,
                          st.integers(0, 10**6)), max_size=12))
def test_join_is_exact_whenever_at_most_one_attribute_varies(atoms: list) -> None:
    """Property: the joined cells equal the true joint cells for every key with <= 1 varying attribute."""
    truth: dict = defaultdict(Decimal)
    for rid, day, *vals, cents in atoms:
        truth[(key(rid, day), tuple(vals))] += Decimal(cents).scaleb(-2)
    marginals: list[dict] = [defaultdict(lambda: defaultdict(Decimal)) for _ in range(3)]
    for (k, vals), amount in truth.items():
        for i, v in enumerate(vals):
            marginals[i][k][v] += amount
    joined = az.join_marginals([{k: dict(v) for k, v in mg.items()} for mg in marginals], TOL)
    for k in {k for k, _ in truth}:
        mine = {vals: a for (kk, vals), a in joined.cells.items() if kk == k}
        true = {vals: a for (kk, vals), a in truth.items() if kk == k}
        assert sum(mine.values()) == sum(true.values())  # totals are always exact
        varying = sum(len({vals[i] for vals in true}) > 1 for i in range(3))
        assert (k in joined.ambiguous) == (varying > 1)
        if varying <= 1:
            assert mine == true
        else:  # never guessed: every known value is true of all of the cell's cost
            for vals, amount in mine.items():
                covered = sum(a for tv, a in true.items() if all(m in (None, t) for m, t in zip(vals, tv, strict=True)))
                assert covered >= amount


def test_cost_lines_outer_join_billed_and_effective_and_fill_columns() -> None:
    plan_list = [PROJECT, az.Plan("team", "TagKey", "Team"), SERVICE]
    k1, k2, k3 = key(VM1, 1), az.RowKey("", date(2026, 10, 31), "EUR"), key(DISK, 2)
    billed = az.Joined({(k1, ("Chatbot ", None, "Virtual Machines")): Decimal("0.009865586851323632"),
                        (k2, (None, None, "Reservations")): Decimal("300")}, [])
    effective = az.Joined({(k1, ("Chatbot ", None, "Virtual Machines")): Decimal("12.5"),
                           (k3, (None, "n/a", "Storage")): Decimal("1.0000000000005")}, [])
    table = az.cost_lines(plan_list, billed, effective, {(0, "Chatbot "): "project"},
                          "providers/Microsoft.Billing/billingAccounts/8611537", TagRules.from_settings(Settings()),
                          date(2026, 11, 23))
    rows = {(r["resource_id"], r["charge_date"]): r for r in table.to_pylist()}
    vm = rows[(VM1, date(2026, 11, 1))]
    assert vm["billed_cost"] == Decimal("0.009865586851")  # 12 decimals, half-even
    assert vm["effective_cost"] == Decimal("12.5")
    assert vm["project"] == "chatbot" and vm["team"] is None and vm["service_name"] == "Virtual Machines"
    assert json.loads(vm["tags"]) == {"project": "Chatbot "}
    assert vm["sub_account_id"] == "11111111-1111-1111-1111-111111111111"
    assert vm["billing_account_id"] == "8611537" and vm["provider_name"] == "Microsoft"
    assert vm["resource_key"] == "vm-gpu1" and vm["estimated"] is True
    assert vm["charge_period_start"] == datetime(2026, 11, 1) and vm["charge_period_end"] == datetime(2026, 11, 2)
    purchase = rows[(None, date(2026, 10, 31))]
    assert (purchase["billed_cost"], purchase["effective_cost"]) == (Decimal(300), Decimal(0))
    assert purchase["billing_currency"] == "EUR" and purchase["estimated"] is False
    assert purchase["resource_key"] is None and purchase["sub_account_id"] is None
    disk = rows[(DISK, date(2026, 11, 2))]
    assert (disk["billed_cost"], disk["effective_cost"]) == (Decimal(0), Decimal("1.000000000000"))
    assert disk["team"] is None and json.loads(disk["tags"]) == {"Team": "n/a"}  # raw kept, dim missing


def test_query_body_is_daily_two_groupings_one_aggregation_with_an_inclusive_end() -> None:
    q = az.query_definition("AmortizedCost", PROJECT, Window(datetime(2026, 11, 1), datetime(2026, 11, 3)))
    assert q.as_dict() == {
        "type": "AmortizedCost", "timeframe": "Custom",
        "timePeriod": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T23:59:59Z"},
        "dataset": {"granularity": "Daily", "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
                    "grouping": [{"type": "Dimension", "name": "ResourceId"}, {"type": "TagKey", "name": "Project"}]}}


def test_plans_put_configured_tags_first_then_the_service() -> None:
    assert [(p.kind, p.name) for p in az.plans(AzureSettings())] == [
        ("TagKey", "Project"), ("TagKey", "Team"), ("TagKey", "Environment"), ("TagKey", "ModelID"),
        ("Dimension", "ServiceName")]


def test_windows_become_whole_days_cut_at_month_starts() -> None:
    w = az.day_window(Window(datetime(2026, 12, 30, 6), datetime(2027, 3, 2, 0, 0, 1)))
    assert w == Window(datetime(2026, 12, 30), datetime(2027, 3, 3))
    assert [(c.start.date().isoformat(), c.end.date().isoformat()) for c in az.month_chunks(w)] == [
        ("2026-12-30", "2027-01-01"), ("2027-01-01", "2027-02-01"), ("2027-02-01", "2027-03-01"),
        ("2027-03-01", "2027-03-03")]


@pytest.mark.parametrize(("today", "start"), [
    (date(2026, 11, 20), date(2026, 11, 17)),   # mid-month: the trailing 3 days
    (date(2026, 11, 5), date(2026, 10, 1)),     # first days: the whole previous month too
    (date(2027, 1, 2), date(2026, 12, 1)),      # across a year
    (date(2026, 11, 6), date(2026, 11, 3)),
])
def test_restatement_window(today: date, start: date) -> None:
    w = az.restatement_window(Settings(), today)
    assert (w.start.date(), w.end.date()) == (start, today)


def test_restatement_days_below_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="azure.restatement_days must be at least 1, got 0"):
        az.restatement_window(Settings(azure=AzureSettings(restatement_days=0)), date(2026, 11, 20))


def test_scopes_are_checked_and_nested_scopes_refused() -> None:
    assert az.check_scopes(["/subscriptions/a/", "providers/Microsoft.Billing/billingAccounts/1"]) == [
        "subscriptions/a", "providers/Microsoft.Billing/billingAccounts/1"]
    with pytest.raises(ValueError, match="azure.scopes is empty"):
        az.check_scopes([])
    with pytest.raises(ValueError, match="'tenants/x' is not a subscription"):
        az.check_scopes(["tenants/x"])
    with pytest.raises(ValueError, match="'subscriptions/A/resourceGroups/rg' lies within 'subscriptions/a'"):
        az.check_scopes(["subscriptions/a", "subscriptions/A/resourceGroups/rg"])


def test_throttle_wait_takes_the_largest_header_else_our_doubling_default() -> None:
    prefix = "x-ms-ratelimit-microsoft.costmanagement-"
    assert throttle_wait({f"{prefix}qpu-retry-after": "3"}) == 3
    headers = {f"{prefix}entity-retry-after": "2", "X-MS-RateLimit-Microsoft.CostManagement-Tenant-Retry-After": "7",
               f"{prefix}clienttype-retry-after": "1"}
    assert throttle_wait(headers) == 7
    assert throttle_wait({"Retry-After": "4", f"{prefix}qpu-retry-after": "1"}) == 4
    assert throttle_wait({"Retry-After": "soon"}) is None and throttle_wait({}) is None
    assert [default_wait(n, 100) for n in (1, 2, 3, 4)] == [DEFAULT_THROTTLE_WAIT, 20, 40, 80]
    assert default_wait(5, 100) == 100  # a guess of ours is capped, never a reason to give up


def test_the_fake_rejects_bodies_that_break_the_query_api_rules() -> None:
    good = az.query_definition("ActualCost", PROJECT, Window(datetime(2026, 11, 1), datetime(2026, 11, 3))).as_dict()
    assert check_body(good) == []
    bad = json.loads(json.dumps(good))
    bad["timeframe"] = "MonthToDate"
    bad["timePeriod"]["to"] = "2026-11-03T00:00:00Z"  # a half-open end sent as if inclusive
    bad["dataset"]["granularity"] = "Monthly"
    bad["dataset"]["aggregation"]["other"] = {"name": "PreTaxCost", "function": "Sum"}
    bad["dataset"]["grouping"] += [{"type": "Tag", "name": "Team"}]
    assert check_body(bad) == [
        "timeframe 'MonthToDate' is not Custom",
        "timePeriod {'from': '2026-11-01T00:00:00Z', 'to': '2026-11-03T00:00:00Z'} is not whole days with an inclusive end",
        "granularity 'Monthly'",
        f"aggregation {bad['dataset']['aggregation']!r} is not exactly one Sum",
        "3 groupings (at most 2)",
        "Invalid dataset grouping {'type': 'Tag', 'name': 'Team'}",
    ]
