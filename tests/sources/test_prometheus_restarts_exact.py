"""Pure: the exact-growth arithmetic and the raw queries of `finops.sources.prometheus.exact`."""

from __future__ import annotations

import re

import pytest

from finops.sources.prometheus.exact import (
    LOOKBACK_SECONDS,
    MAX_RUN_PERIODS,
    groups,
    growth,
    raw_queries,
    runs,
    selector,
)

H = 3_600_000  # one hour in ms
E = 100 * H  # an hour edge


def test_plain_increases_sum_to_last_minus_first_within_a_period() -> None:
    samples = [(E - H + 60_000, 110.0), (E - H + 120_000, 150.0), (E, 200.0)]
    assert growth(samples, [E], H, before=100.0) == {E: 100}


def test_a_drop_counts_the_new_value_whole() -> None:
    # 1000 -> 30 is a restart: the 30 tokens since it count, then +20.
    samples = [(E - 50 * 60_000, 1000.0), (E - 40 * 60_000, 30.0), (E - 30 * 60_000, 50.0)]
    assert growth(samples, [E], H, before=990.0) == {E: 10 + 30 + 20}


def test_several_restarts_in_one_period_each_count_whole() -> None:
    samples = [(E - 50 * 60_000, 500.0), (E - 40 * 60_000, 7.0), (E - 30 * 60_000, 9.0), (E - 20 * 60_000, 4.0)]
    assert growth(samples, [E], H, before=400.0) == {E: 100 + 7 + 2 + 4}


def test_an_increase_belongs_to_the_period_of_its_later_sample() -> None:
    # A sample exactly on the edge closes the period ending there; the one after opens the next.
    samples = [(E - H, 10.0), (E, 25.0), (E + 1, 40.0)]
    assert growth(samples, [E, E + H], H) == {E: 15, E + H: 15}
    # Across a gap over an edge, the whole increase lands in the later sample's period.
    assert growth([(E - 1000, 10.0), (E + 5 * 60_000, 70.0)], [E, E + H], H) == {E + H: 60}


def test_the_first_sample_is_a_baseline_and_empty_periods_have_no_entry() -> None:
    assert growth([(E - 10, 500.0)], [E], H) == {}
    assert growth([(E - 10, 500.0), (E - 5, 520.0)], [E], H) == {E: 20}
    assert growth([], [E], H, before=3.0) == {}
    # Only the asked edges: the increase at E + H is not reported for [E].
    assert growth([(E, 1.0), (E + 10, 2.0)], [E], H, before=0.0) == {E: 1}


def test_counts_are_exact_integers_near_two_to_the_53() -> None:
    big = float(2**53 - 10)
    got = growth([(E - 10, big), (E - 5, big + 7)], [E], H, before=big - 1)
    assert got == {E: 8} and isinstance(got[E], int)


def test_runs_group_flagged_edges_within_the_bound() -> None:
    s = 3600
    assert runs([5 * s, 3 * s, 4 * s, 3 * s], s) == [(3 * s, 5 * s)]
    far = 3 * s + MAX_RUN_PERIODS * s
    assert runs([3 * s, far - s, far], s) == [(3 * s, far - s), (far, far)]


def test_selector_matches_the_series_and_escapes_regex_and_quotes() -> None:
    series = [{"pod": "a.b", "model_name": 'x"y'}, {"pod": "c(d)"}]
    sel = selector('vllm:prompt_tokens_total{model_name!=""}', series)
    assert sel == ('vllm:prompt_tokens_total{model_name!="", model_name=~"|x\\"y", pod=~"a\\\\.b|c\\\\(d\\\\)"}')
    assert selector("finops_gateway_requests_total", [{"pod": "p"}]) == 'finops_gateway_requests_total{pod=~"p"}'
    assert selector("m{}", [{"pod": "p"}]) == 'm{pod=~"p"}'


def test_groups_keep_selectors_short_and_lose_no_series() -> None:
    series = [{"pod": f"vllm-{i:04d}", "instance": f"10.0.{i}.1:8000"} for i in range(300)]
    parts = groups("vllm:prompt_tokens_total", series, max_chars=2000)
    assert len(parts) > 1
    assert all(len(selector("vllm:prompt_tokens_total", g)) <= 2000 for g in parts)
    assert sorted(s["pod"] for g in parts for s in g) == sorted(s["pod"] for s in series)


def test_raw_queries_span_the_flagged_periods_and_look_back_for_the_previous_value() -> None:
    s = 3600
    a, b = frozenset({("pod", "a")}), frozenset({("pod", "b")})
    [q] = raw_queries("c", {a: {10 * s}, b: {12 * s, 13 * s}}, s)
    assert (q.first, q.last, set(q.series)) == (10 * s, 13 * s, {a, b})
    assert q.samples_expr == f'c{{pod=~"a|b"}}[{4 * s}s]'  # (9h, 13h]: the periods ending 10h..13h
    assert q.before_expr == f'last_over_time(c{{pod=~"a|b"}}[{LOOKBACK_SECONDS}s])'
    # Far apart: two runs, each with only its series.
    queries = raw_queries("c", {a: {10 * s}, b: {100 * s}}, s)
    assert [(q.first, q.last, q.series) for q in queries] == [(10 * s, 10 * s, (a,)), (100 * s, 100 * s, (b,))]


@pytest.mark.parametrize("value", ["plain", "with.dot", "a|b", "x\\y", "(paren)", "[br]", "^$*+?{}"])
def test_the_escaped_alternation_matches_exactly_the_value(value: str) -> None:
    sel = selector("m", [{"l": value}])
    quoted = re.search(r'l=~"(.*)"}$', sel)
    assert quoted
    pattern = quoted.group(1).encode().decode("unicode_escape")  # undo PromQL's string escaping
    assert re.fullmatch(pattern, value) and not re.fullmatch(pattern, value + "x")


def test_non_finite_samples_are_skipped() -> None:
    samples = [(E - 30, 10.0), (E - 20, float("nan")), (E - 10, 14.0), (E - 5, float("inf"))]
    assert growth(samples, [E], H) == {E: 4}


def test_a_restart_scraped_above_the_old_value_counts_only_the_difference() -> None:
    """The documented limit without process start times: 1000 -> (restart) -> 1200 counts 200, not 1200."""
    assert growth([(E - 20, 1000.0), (E - 10, 1200.0)], [E], H) == {E: 200}


def test_a_changed_process_start_time_is_a_restart_even_above_the_old_value() -> None:
    samples = [(E - 30, 1000.0), (E - 20, 1200.0), (E - 10, 1300.0)]
    starts = {E - 30: 5.0, E - 20: 9.0, E - 10: 9.0}
    assert growth(samples, [E], H, before=990.0, starts=starts, start_before=5.0) == {E: 10 + 1200 + 100}
    # A change between `before` and the first sample counts the first sample whole.
    assert growth(samples[:1], [E], H, before=990.0, starts={E - 30: 6.0}, start_before=5.0) == {E: 1000}
    # Unknown start times (no process metric) leave the counter's own evidence.
    assert growth(samples, [E], H, before=990.0, starts={E - 20: 9.0}) == {E: 310}
