"""Cost Explorer failures: throttling through botocore's real retry modes (a local HTTP double that
answers 400 LimitExceededException before it answers), totals that disagree, and what moto cannot
produce (validation errors, endless paging) through botocore's Stubber on a real client."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from finops.batch import SourceFailed
from finops.collect import collect
from finops.settings import Settings
from finops.sources.aws import ce as aws_ce
from finops.sources.aws.client import AwsSession, RequestCount
from finops.store import Store
from tests.sources.test_aws_ce import A1, D1, EC2, LLAMA, SCENARIO, WINDOW, aws_settings, expected, stored
from tests.support import moto as doubles
from tests.support.clock import TEST_NOW
from tests.support.moto import SECRET, CeServer, FakeBill, item

pytestmark = pytest.mark.clock  # data and expectations are placed relative to the suite's clock

aws_env = doubles.aws_env  # fixture


def snapshot(store: Store) -> list[tuple[Any, ...]]:
    return store.query("SELECT * EXCLUDE (run_id) FROM cost_lines ORDER BY ALL")


def test_throttled_run_retries_then_succeeds(aws_env: None, settings: Settings, store: Store) -> None:
    with CeServer(FakeBill(SCENARIO), throttle=2) as ce:
        s = aws_settings(settings, endpoint_url=ce.url, max_attempts=3, retry_mode="standard")
        (result,) = collect(store, s, "aws_ce", WINDOW)
    assert result.status == "succeeded", result.error
    assert stored(store) == expected(SCENARIO)
    # Two throttled attempts, then every query answered once; the ledger counts them all.
    assert ce.hits == len(ce.log) + 2
    assert store.query("SELECT requests FROM source_runs")[0][0] == ce.hits


def test_always_throttled_run_fails_and_leaves_the_store_as_it_was(
        aws_env: None, settings: Settings, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with CeServer(FakeBill(SCENARIO)) as ok:
        assert collect(store, aws_settings(settings, endpoint_url=ok.url), "aws_ce", WINDOW)[0].status == "succeeded"
    before = snapshot(store)
    assert before

    changed = FakeBill(SCENARIO + [item(D1, LLAMA, EC2, A1, "1000")])
    caplog.set_level(logging.DEBUG, logger="finops")
    with CeServer(changed, throttle=10**6) as ce:
        s = aws_settings(settings, endpoint_url=ce.url, max_attempts=2, retry_mode="standard")
        (result,) = collect(store, s, "aws_ce", WINDOW)
    assert result.status == "failed"
    assert "LimitExceededException" in result.error and "after 2 attempt(s)" in result.error
    assert ce.hits == 2, "attempts are bounded by max_attempts"
    assert snapshot(store) == before
    ledger = store.query("SELECT status, requests, error FROM source_runs ORDER BY run_id")
    assert ledger[-1][:2] == ("failed", 2) and ledger[-1][2] == result.error
    assert SECRET not in caplog.text and SECRET not in result.error


def test_throttling_exception_in_adaptive_mode_is_retried_and_reported(aws_env: None, settings: Settings,
                                                                        store: Store) -> None:
    with CeServer(FakeBill(SCENARIO), throttle=10**6, code="ThrottlingException") as ce:
        s = aws_settings(settings, endpoint_url=ce.url, max_attempts=2, retry_mode="adaptive")
        (result,) = collect(store, s, "aws_ce", WINDOW)
    assert result.status == "failed" and "ThrottlingException" in result.error and "adaptive" in result.error
    assert ce.hits == 2


def test_totals_that_disagree_fail_loudly_naming_both(aws_env: None, settings: Settings, store: Store) -> None:
    ghost = item(D1, {}, EC2, A1, "17.25")  # in the ungrouped total only
    with CeServer(FakeBill(SCENARIO, hidden=[ghost])) as ce:
        s = aws_settings(settings, endpoint_url=ce.url)
        (result,) = collect(store, s, "aws_ce", WINDOW)
    billed = sum(i.billed for i in SCENARIO)
    assert result.status == "failed"
    assert f"collected billed cost {billed} USD" in result.error
    assert f"ungrouped total {billed + Decimal('17.25')} USD" in result.error
    assert snapshot(store) == []
    assert not list(aws_ce.cache_dir(s).glob("*.json")), "answers of a failed window are not cached"


def test_net_amortized_cost_is_the_effective_metric_when_configured(aws_env: None, settings: Settings,
                                                                     store: Store) -> None:
    with CeServer(FakeBill(SCENARIO)) as ce:
        s = aws_settings(settings, endpoint_url=ce.url, effective_metric="NetAmortizedCost")
        assert collect(store, s, "aws_ce", WINDOW)[0].status == "succeeded"
    assert all(b'"Metrics": ["UnblendedCost", "NetAmortizedCost"]' in body for body, _ in ce.log)
    assert stored(store) == expected(SCENARIO)


def _stubbed(settings: Settings, endpoint: str = "http://127.0.0.1:9") -> tuple[Any, Stubber, RequestCount]:
    count = RequestCount()
    s = aws_settings(settings, endpoint_url=endpoint)
    ce = AwsSession(s.aws).client("ce", count)
    return ce, Stubber(ce), count


def test_validation_error_fails_with_aws_reason(aws_env: None, settings: Settings, tmp_path: Path) -> None:
    ce, stub, count = _stubbed(settings)
    stub.add_client_error("get_cost_and_usage", service_error_code="ValidationException",
                          service_message="Start date (and hour) should be before end date (and hour)",
                          http_status_code=400)
    with stub, pytest.raises(SourceFailed, match="ValidationException: Start date") as err:
        aws_ce.collect_window(ce, aws_settings(settings), WINDOW, count,
                              aws_ce.ResponseCache(tmp_path, "x"), TEST_NOW.date())
    assert SECRET not in str(err.value)


def test_paging_that_never_ends_fails(aws_env: None, settings: Settings, tmp_path: Path) -> None:
    ce, stub, count = _stubbed(settings)
    page = {"ResultsByTime": [], "NextPageToken": "same"}
    stub.add_response("get_cost_and_usage", dict(page))
    stub.add_response("get_cost_and_usage", dict(page))
    with stub, pytest.raises(SourceFailed, match="paging does not end"):
        aws_ce.collect_window(ce, aws_settings(settings), WINDOW, count,
                              aws_ce.ResponseCache(None, "x"), TEST_NOW.date())


def test_open_window_answers_are_not_cached(aws_env: None, settings: Settings, tmp_path: Path) -> None:
    """Inside the restatement horizon an answer is never stored, even without estimated days."""
    s = aws_settings(settings)
    with CeServer(FakeBill(SCENARIO)) as ce:
        count = RequestCount()
        client = AwsSession(aws_settings(settings, endpoint_url=ce.url).aws).client("ce", count)
        cache = aws_ce.ResponseCache(tmp_path / "c", "x")
        today = WINDOW.end.date() + timedelta(days=1)  # the window's end is inside the trailing 3 days
        batch = aws_ce.collect_window(client, s, WINDOW, count, cache, today)
        assert batch.details["closed"] is False and not (tmp_path / "c").exists()
        aws_ce.collect_window(client, s, WINDOW, count, cache, TEST_NOW.date())
        assert list((tmp_path / "c").glob("*.json"))
