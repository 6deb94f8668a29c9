"""The Azure collector end to end: real SDK, local HTTPS fake of Cost Management, real DuckDB store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops.collect import RunResult, run_tasks
from finops.settings import AzureSettings, Settings
from finops.sources.azure import cost as azure_cost
from finops.store import Store
from finops.timeutil import Window
from tests.support.azure_fake import Atom, AzureFake, Clock, FakeCredential, Reply, Seen, make_cert

TODAY = date(2026, 11, 23)
WINDOW = Window(datetime(2026, 10, 30), datetime(2026, 11, 3))  # crosses a month: two chunks per query
DAYS = [date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)]
SUB_A, SUB_B = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
SCOPE_A = f"subscriptions/{SUB_A}"
SCOPE_B = f"/subscriptions/{SUB_B}/resourceGroups/rg-ml"  # configured with a leading slash
SCOPE_C = "providers/Microsoft.Billing/billingAccounts/8611537"  # answers 204: no data
FULL = {"Project": "Chatbot", "Team": "CoreAI", "Environment": "prod", "ModelID": "llama-70b"}
Q12 = Decimal("1e-12")


def rid(sub: str, name: str, kind: str = "virtualMachines") -> str:
    # ARM's own casing; the answers may carry it and the store must hold it lower-cased.
    return f"/subscriptions/{sub}/resourceGroups/RG-GPU/providers/Microsoft.Compute/{kind}/{name}"


VM1, VM2, VM3, DISK = rid(SUB_A, "VM-GPU1"), rid(SUB_A, "vm-gpu2"), rid(SUB_A, "vm-gpu3"), rid(SUB_A, "disk-1", "disks")
VMB = rid(SUB_B, "vm-b1")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("azure-tls"))


@pytest.fixture
def fake(cert: tuple[Path, Path]) -> Iterator[AzureFake]:
    with AzureFake(*cert, page_size=3) as f:
        yield f


def azure_settings(settings: Settings, fake: AzureFake, cert: tuple[Path, Path], scopes: list[str],
                   **extra: Any) -> Settings:
    azure = AzureSettings(scopes=scopes, base_url=fake.base_url, verify_tls=str(cert[0]),
                          min_seconds_between_queries=0, **extra)
    return settings.model_copy(update={"azure": azure})


def collect(store: Store, s: Settings, clock: Clock | None = None, window: Window = WINDOW) -> list[RunResult]:
    clock = clock or Clock()
    tasks = azure_cost.tasks(s, window, credential=FakeCredential(), sleep=clock.sleep, clock=clock.time,
                             now=datetime.combine(TODAY, time()))
    return run_tasks(store, "azure", tasks)


def scenario(fake: AzureFake) -> None:
    """Two subscriptions' worth of cost, partly untagged, with a reservation and a mid-day tag change."""
    for cost_type in ("ActualCost", "AmortizedCost"):
        amortised = cost_type == "AmortizedCost"
        vm1 = [218.68795741935486, 219.3, 77.41935483870968 if amortised else 0.0,
               77.41935483870968 if amortised else 0.0]
        atoms = [Atom(VM1, d, c, tags=FULL) for d, c in zip(DAYS, vm1, strict=True)]
        atoms += [Atom(VM1, DAYS[2], 0.14384913581657052, service="Bandwidth", tags=FULL)]  # two services, one tag set
        atoms += [Atom(VM2, d, 96.00000000000001 + i, tags={"project": "Search"}) for i, d in enumerate(DAYS)]
        atoms += [Atom(DISK, d, c, service="Storage", tags={"Environment": ""})
                  for d, c in zip(DAYS, [2.10333307059661, 0.009865586851323632, 3.3, 1e-13], strict=True)]
        changed = {"Team": "platform", "Environment": "prod", "ModelID": "mistral-7b"}
        atoms += [Atom(VM3, DAYS[3], 40.123456789012345, tags={"Project": "search", **changed}),
                  Atom(VM3, DAYS[3], 55.87654321098766, tags={"Project": "chatbot", **changed})]
        atoms += [Atom("", DAYS[1], 12.5, service="Azure Support")]
        if not amortised:
            atoms += [Atom("", DAYS[2], 2400.123456789012, service="Reservations")]
        fake.add(SCOPE_A, cost_type, atoms)
        fake.add(SCOPE_B, cost_type, [Atom(VMB, d, 31.415926535897932 * (i + 1), currency="EUR",
                                           tags={**FULL, "ModelID": "mistral-7b"}) for i, d in enumerate(DAYS)])
    fake.end_with_204.add(SCOPE_B.strip("/").lower())
    fake.empty_as_204.add(SCOPE_C.lower())


def scope_id(scope: str) -> str:
    return "azure:" + scope.strip("/").lower()


def sums(store: Store, scope: str) -> tuple[Decimal, Decimal, int]:
    row = store.query("SELECT coalesce(sum(billed_cost), 0), coalesce(sum(effective_cost), 0), count(*) "
                      "FROM cost_lines WHERE source = 'azure' AND scope = ?", [scope_id(scope)])[0]
    return row[0], row[1], row[2]


def lines(store: Store, resource_id: str | None, day: date) -> list[dict[str, Any]]:
    cur = store.cursor()
    try:
        rel = cur.execute("SELECT * FROM cost_lines WHERE resource_id IS NOT DISTINCT FROM ? AND charge_date = ? "
                          "ORDER BY service_name, project", [resource_id, day])
        names = [d[0] for d in rel.description]
        return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
    finally:
        cur.close()


def test_multi_page_multi_scope_partly_untagged_lands_exactly(store: Store, settings: Settings, fake: AzureFake,
                                                               cert: tuple[Path, Path]) -> None:
    scenario(fake)
    s = azure_settings(settings, fake, cert, [SCOPE_A, SCOPE_B, SCOPE_C])
    results = collect(store, s)
    assert [r.status for r in results] == ["succeeded"] * 3, [r.error for r in results]
    assert fake.violations == []

    for scope in (SCOPE_A, SCOPE_B):
        billed, effective, n = sums(store, scope)
        # Exactly the fake's own sum at the store's 12 decimals, and within rounding of its exact sum.
        assert billed == fake.total(scope, "ActualCost", places=12)
        assert effective == fake.total(scope, "AmortizedCost", places=12)
        assert abs(billed - fake.total(scope, "ActualCost")) <= n * Decimal("0.5e-12")
    assert sums(store, SCOPE_C) == (0, 0, 0)
    # cost_daily is rebuilt from the same lines
    daily = store.query("SELECT sum(billed_cost) FROM cost_daily WHERE scope = ?", [scope_id(SCOPE_A)])[0][0]
    assert daily == fake.total(SCOPE_A, "ActualCost", places=12)

    # the mid-day tag change on vm-gpu3 is split exactly; the other tags are carried to both parts
    vm3 = lines(store, VM3.lower(), DAYS[3])
    assert [(r["project"], r["team"], r["model_id"], r["billed_cost"]) for r in vm3] == [
        ("chatbot", "platform", "mistral-7b", Decimal("55.87654321098766").quantize(Q12)),
        ("search", "platform", "mistral-7b", Decimal("40.123456789012345").quantize(Q12))]
    # two services of one fully tagged VM; billed 0 under the reservation, effective amortised
    vm1 = lines(store, VM1.lower(), DAYS[2])
    assert [(r["service_name"], r["billed_cost"], r["effective_cost"]) for r in vm1] == [
        ("Bandwidth", Decimal("0.14384913581657052").quantize(Q12), Decimal("0.14384913581657052").quantize(Q12)),
        ("Virtual Machines", Decimal(0), Decimal("77.41935483870968").quantize(Q12))]
    assert {(r["project"], r["team"], r["environment"], r["model_id"]) for r in vm1} == {
        ("chatbot", "coreai", "prod", "llama-70b")}
    assert json.loads(vm1[0]["tags"]) == FULL
    assert vm1[0]["resource_key"] == "vm-gpu1" and vm1[0]["sub_account_id"] == SUB_A
    assert vm1[0]["provider_name"] == "Microsoft" and vm1[0]["billing_currency"] == "USD"
    assert vm1[0]["charge_period_start"] == datetime(2026, 11, 1) and vm1[0]["charge_period_end"] == datetime(2026, 11, 2)
    assert vm1[0]["estimated"] is True and lines(store, VM1.lower(), DAYS[0])[0]["estimated"] is False
    # partly tagged (key spelled in lower case on the resource) and untagged
    vm2 = lines(store, VM2.lower(), DAYS[0])[0]
    assert (vm2["project"], vm2["team"], json.loads(vm2["tags"])) == ("search", None, {"project": "Search"})
    for disk in [lines(store, DISK.lower(), d)[0] for d in DAYS]:
        assert (disk["project"], disk["environment"], disk["tags"]) == (None, None, "{}")
    purchase = lines(store, None, DAYS[2])
    assert [(r["service_name"], r["billed_cost"], r["effective_cost"]) for r in purchase] == [
        ("Reservations", Decimal("2400.123456789012"), Decimal(0))]
    b = lines(store, VMB.lower(), DAYS[1])[0]
    assert (b["billing_currency"], b["model_id"], b["sub_account_id"]) == ("EUR", "mistral-7b", SUB_B)
    assert store.query("SELECT count(*) FROM cost_lines WHERE resource_id <> lower(resource_id)")[0][0] == 0

    # what went over the wire
    for result, scope in zip(results, (SCOPE_A, SCOPE_B, SCOPE_C), strict=True):
        sent = [q for q in fake.requests if q.scope == scope.strip("/").lower()]
        assert result.requests == len(sent)
        first = [q for q in sent if "$skiptoken" not in q.query]
        assert len(first) == 2 * 5 * 2  # month chunks x (4 tags + service) x (actual, amortised)
        assert {(q.body["timePeriod"]["from"], q.body["timePeriod"]["to"]) for q in first} == {
            ("2026-10-30T00:00:00Z", "2026-10-31T23:59:59Z"), ("2026-11-01T00:00:00Z", "2026-11-02T23:59:59Z")}
        assert {json.dumps(q.body["dataset"]["grouping"][1]) for q in first} == {
            json.dumps({"type": t, "name": n}) for t, n in [("TagKey", "Project"), ("TagKey", "Team"),
                                                           ("TagKey", "Environment"), ("TagKey", "ModelID"),
                                                           ("Dimension", "ServiceName")]}
        assert all(q.body["dataset"]["grouping"][0] == {"type": "Dimension", "name": "ResourceId"} for q in first)
    a_pages = [q for q in fake.requests if q.scope == SCOPE_A.lower() and "$skiptoken" in q.query]
    assert len(a_pages) > 20 and all(q.status == 200 for q in a_pages)
    b_tail = [q for q in fake.requests if q.scope == SCOPE_B.strip("/").lower() and "$skiptoken" in q.query]
    assert b_tail and all(q.status == 204 for q in b_tail)  # the page behind the last one is a 204
    assert {q.status for q in fake.requests if q.scope == SCOPE_C.lower()} == {204}
    runs = store.query("SELECT status, requests, rows FROM source_runs WHERE source = 'azure' ORDER BY run_id")
    assert runs == [("succeeded", r.requests, r.rows) for r in results]


def test_columns_reordered_between_pages_give_the_same_lines_as_one_page(store: Store, settings: Settings,
                                                                        cert: tuple[Path, Path]) -> None:
    contents = []
    for page_size in (1, 10_000):
        with AzureFake(*cert, page_size=page_size) as fake:
            scenario(fake)
            s = azure_settings(settings, fake, cert, [SCOPE_A])
            assert [r.status for r in collect(store, s)] == ["succeeded"]
            orders = set(fake.column_orders)
            contents.append(store.query("SELECT * EXCLUDE (run_id) FROM cost_lines ORDER BY ALL"))
        assert fake.violations == []
        assert len(orders) > 1 if page_size == 1 else len(orders) >= 1
    assert contents[0] == contents[1] and len(contents[0]) == 17  # 5 + 4 + 4 + 2 + 1 + 1 lines in scenario A


def test_rerunning_a_window_replaces_it(store: Store, settings: Settings, fake: AzureFake,
                                        cert: tuple[Path, Path]) -> None:
    scenario(fake)
    s = azure_settings(settings, fake, cert, [SCOPE_A])
    collect(store, s)
    first = sums(store, SCOPE_A)
    collect(store, s)
    assert sums(store, SCOPE_A) == first
    assert store.query("SELECT count(DISTINCT run_id) FROM cost_lines")[0][0] == 1


def test_ambiguous_resource_day_keeps_exact_totals_and_never_guesses(store: Store, settings: Settings,
                                                                     fake: AzureFake, cert: tuple[Path, Path]) -> None:
    vm = rid(SUB_A, "vm-swap")
    for cost_type in ("ActualCost", "AmortizedCost"):
        fake.add(SCOPE_A, cost_type, [Atom(vm, DAYS[2], 10.25, tags={"Project": "a", "Team": "x"}),
                                      Atom(vm, DAYS[2], 20.5, tags={"Project": "b", "Team": "y"})])
    [result] = collect(store, azure_settings(settings, fake, cert, [SCOPE_A]))
    assert result.status == "succeeded"
    assert result.details["ambiguous_resource_days"] == 1
    assert result.details["ambiguous_examples"] == [f"{vm.lower()}@2026-11-01"]
    assert [(r["project"], r["team"], r["billed_cost"]) for r in lines(store, vm.lower(), DAYS[2])] == [
        ("a", None, Decimal("10.25")), ("b", None, Decimal("20.5"))]
    assert sums(store, SCOPE_A)[0] == fake.total(SCOPE_A, "ActualCost")


def test_data_changing_between_queries_fails_and_keeps_the_store(store: Store, settings: Settings,
                                                                 fake: AzureFake, cert: tuple[Path, Path]) -> None:
    scenario(fake)
    s = azure_settings(settings, fake, cert, [SCOPE_A])
    collect(store, s)
    before = store.query("SELECT * FROM cost_lines ORDER BY ALL")
    refreshed: list[bool] = []

    def refresh(seen: Seen) -> bool:
        # Azure refreshes its data every few hours; here it does so once the Project query is done.
        if not refreshed and seen.body["dataset"]["grouping"][1]["name"] == "Team":
            fake.add(SCOPE_A, "ActualCost", [Atom(VM1, DAYS[0], 1.0, tags=FULL)])
            refreshed.append(True)
        return False  # never answers itself

    fake.script(Reply(500), when=refresh, times=None)
    [result] = collect(store, s)
    assert refreshed and result.status == "failed"
    assert "disagree on 1 resource-day(s)" in (result.error or "") and "run again" in (result.error or "")
    assert store.query("SELECT * FROM cost_lines ORDER BY ALL") == before
