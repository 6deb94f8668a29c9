"""The Prometheus collector against a real Prometheus serving three days of a generated fleet.

Expected values come from the generator's own truth (tests/sources/test_prometheus_fleet.py),
computed in plain Python, never from PromQL.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from finops.collect import collect
from finops.demo.prometheus import shifted
from finops.settings import PrometheusSettings, Settings
from finops.store import Store, open_store
from finops.timeutil import Window
from tests.sources.test_prometheus_fleet import (
    A0,
    A1,
    A2,
    B0,
    B1,
    D0,
    LLAMA_RESTART,
    MISTRAL_RESTART,
    T0,
    Fleet,
    build_fleet,
    hour_of_increment,
)
from tests.support.prometheus import PrometheusServer, free_port

WINDOW = Window(D0, D0 + timedelta(days=3))
# 5 GPU queries + 6 vLLM counters + vLLM sleep + vLLM suspects + 3 gateway + gateway suspects
# (token_source gateway_then_vllm).
VLLM_QUERIES = 6 + 1 + 1
QUERIES_PER_CHUNK = 5 + VLLM_QUERIES + 4
# Raw-sample queries, 2 per measure and run of flagged periods plus 2 for the process start times:
# the gateway series start at D1 00:00 (one run), the vLLM restarts at D1 13:28 and D2 06:00 flag
# D1 14:00-15:00 and D2 06:00-07:00.
RAW_GATEWAY, RAW_VLLM = 8, 8
# Prometheus 2.x as installed, and 3.x's left-open range selectors emulated on it (every sample 1 ms
# earlier: `finops.demo.prometheus.shifted`).
SEMANTICS = ("prometheus-2", "prometheus-3-emulated")


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet()


@pytest.fixture(scope="module", params=SEMANTICS)
def prom(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[PrometheusServer]:
    series = fleet.series if request.param == "prometheus-2" else shifted(fleet.series, -0.001)
    with PrometheusServer.from_series(tmp_path_factory.mktemp("prometheus"), series) as server:
        yield server


def with_prom(settings: Settings, prom: PrometheusServer, **fields: Any) -> Settings:
    cfg = PrometheusSettings(url=prom.url, max_retries=0, timeout_seconds=10, **fields)
    return settings.model_copy(update={"prometheus": cfg})


def run(store: Store, settings: Settings, window: Window = WINDOW, **kw: Any) -> Any:
    [result] = collect(store, settings, "prometheus", window, **kw)
    return result


def gpu_facts(store: Store) -> dict[tuple[str, str, datetime], dict[str, Any]]:
    """Per GPU-hour, its row; a time-sliced GPU's rows (one per pod) agree on the GPU's measures and
    are merged: `shares` {pod: time_share}, energy summed, and dims each pod's (`by_pod`)."""
    cur = store.cursor()
    rows = cur.execute("SELECT * EXCLUDE (run_id) FROM gpu_hours").fetchall()
    names = [d[0] for d in cur.description]
    out: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for r in rows:
        row = dict(zip(names, r, strict=True))
        key = (row["gpu_uuid"], row["mig_instance"] or "", row["hour_start"])
        if row["time_share"] is None:
            assert key not in out, f"GPU-hour {key} stored twice"
            out[key] = row
            continue
        merged = out.setdefault(key, {**row, "shares": {}, "by_pod": {}, "energy_kwh": 0.0})
        assert all(merged[m] == row[m] for m in ("busy", "samples", "memory_used_mib")), key
        assert row["pod"] not in merged["shares"], f"GPU-hour {key} of {row['pod']} stored twice"
        merged["shares"][row["pod"]] = row["time_share"]
        merged["by_pod"][row["pod"]] = row
        merged["energy_kwh"] += row["energy_kwh"]
    return out


def token_facts(store: Store) -> list[dict[str, Any]]:
    cur = store.cursor()
    rows = cur.execute("SELECT * EXCLUDE (run_id) FROM token_hours").fetchall()
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in rows]


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(map(tuple, store.query(f"SELECT * EXCLUDE (run_id) FROM {t}")), key=repr)
            for t in ("gpu_hours", "token_hours", "quarantine")}


def expected_gpus(fleet: Fleet, window: Window) -> dict[tuple[str, str, datetime], dict[str, Any]]:
    return {
        key: {"busy": fmean(t.busy), "samples": len(t.busy), "memory": max(t.memory),
              # Energy is metered per physical GPU; the MIG GPU's instances carry none.
              "energy": t.power_w / 1000 if key[0] != B1 else None, "full": len(t.busy) == 60}
        for key, t in fleet.gpus.items() if t.busy and window.start <= key[2] < window.end
    }


def check_gpu_hours(store: Store, fleet: Fleet, settings: Settings, window: Window = WINDOW) -> None:
    got, want = gpu_facts(store), expected_gpus(fleet, window)
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert g["busy"] == pytest.approx(w["busy"], abs=1e-9), key
        assert g["samples"] == w["samples"], key
        assert g["memory_used_mib"] == w["memory"], key
        if w["energy"] is None:
            assert g["energy_kwh"] is None
        elif w["full"]:  # a constant power over a full hour: the extrapolated increase is exact
            assert g["energy_kwh"] == pytest.approx(w["energy"], rel=1e-9), key
    # The time-sliced GPU is split by each pod's own GPU_UTIL over the hour.
    for (uuid, _, hour), g in got.items():
        truth = fleet.pod_util.get((uuid, hour))
        assert (g.get("shares") is not None) == (truth is not None), (uuid, hour)
        if truth:
            assert sum(g["shares"].values()) == pytest.approx(1.0, abs=1e-12)
            assert g["shares"] == pytest.approx({p: u / sum(truth.values()) for p, u in truth.items()}, abs=1e-12)
    idle = sum(1 for w in want.values() if w["busy"] < settings.idle_threshold)
    assert sum(1 for g in got.values() if g["busy"] < settings.idle_threshold) == idle
    assert idle >= 71 + 72  # a1 (but for the outage hour) and the unallocated MIG instance, always


def test_gpu_hours_busy_fractions_and_idle_hours_equal_the_generated_series(
        store: Store, settings: Settings, prom: PrometheusServer, fleet: Fleet) -> None:
    s = with_prom(settings, prom)
    started = time.monotonic()
    result = run(store, s)
    elapsed = time.monotonic() - started
    assert result.status == "succeeded", result.error
    assert result.requests == QUERIES_PER_CHUNK + RAW_GATEWAY + RAW_VLLM
    print(f"\none collection of the test fleet: {result.requests} queries, {elapsed:.3f} s, {result.rows} rows")
    check_gpu_hours(store, fleet, s)

    got = gpu_facts(store)
    h = D0 + timedelta(hours=12)
    a0, a1, a2 = got[(A0, "", h)], got[(A1, "", h)], got[(A2, "", h)]
    assert (a0["host"], a0["resource_id"], a0["resource_key"]) == ("gpu-node-a", "i-0AbC1234567890def",
                                                                   "i-0abc1234567890def")
    assert (a0["namespace"], a0["pod"], a0["container"], a0["gpu_model"], a0["gpu_index"]) == \
        ("llm", "vllm-llama-0", "vllm", "NVIDIA H100 80GB HBM3", "0")
    # Dims normalised like bill tags: trimmed and lower-cased.
    assert (a0["project"], a0["team"], a0["environment"], a0["model_id"]) == ("chatbot", "coreai", "prod", None)
    # The idle GPU shows the exporter's own pod: no workload.
    assert (a1["namespace"], a1["pod"], a1["container"]) == (None, None, None)
    # The time-sliced GPU is a row per pod, each with its own environment; batch-embed-0 had 70% of it.
    assert {p: (r["project"], r["team"], r["environment"]) for p, r in a2["by_pod"].items()} == {
        "batch-embed-0": ("embeddings", "search", "prod"), "batch-embed-1": ("embeddings", "search", "staging")}
    assert a2["shares"]["batch-embed-0"] == pytest.approx(0.7, abs=0.01)
    b0, mig1, mig2 = got[(B0, "", h)], got[(B1, "1", h)], got[(B1, "2", h)]
    assert (b0["host"], b0["resource_id"], b0["pod"], b0["namespace"], b0["container"], b0["project"]) == \
        ("gpu-node-b", "gpu-node-b", "vllm-mistral-0", "llm", "vllm", "search")
    assert (mig1["mig_profile"], mig1["pod"], mig1["namespace"]) == ("3g.40gb", "notebook-0", "research")
    assert (mig2["mig_profile"], mig2["pod"], mig2["namespace"], mig2["container"]) == ("3g.40gb", None, None, None)


def vllm_totals(rows: list[dict[str, Any]]) -> dict[tuple[str, datetime], dict[str, int]]:
    out: dict[tuple[str, datetime], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        for m in ("prompt_tokens", "generation_tokens", "requests"):
            out[(r["pod"], r["hour_start"])][m] += r[m]
    return {k: dict(v) for k, v in out.items()}


def test_token_counts_are_exact_across_vllm_restarts(store: Store, settings: Settings, prom: PrometheusServer,
                                                     fleet: Fleet) -> None:
    result = run(store, with_prom(settings, prom, token_source="vllm"))
    assert result.status == "succeeded", result.error
    assert result.requests == 5 + VLLM_QUERIES + RAW_VLLM
    rows = token_facts(store)
    assert vllm_totals(rows) == {k: dict(v) for k, v in fleet.vllm.items()}
    # The restart hours really contain a counter drop: a naive last - first would be wrong there.
    for pod, restart in (("vllm-llama-0", LLAMA_RESTART), ("vllm-mistral-0", MISTRAL_RESTART)):
        series = next(s for s in fleet.series if s.name == "vllm:prompt_tokens_total"
                      and s.labels.get("pod") == pod and s.labels["engine"] == "0")
        start = T0 + (hour_of_increment(restart) - D0).total_seconds()
        pts = [v for t, v in series.points if start <= t <= start + 3600]
        assert pts[-1] - pts[0] < 0
        assert fleet.vllm[(pod, hour_of_increment(restart))]["prompt_tokens"] > 0
    # One row per model server and hour, dims from labels, model_id falling back to model_name.
    llama = {(r["instance"], r["resource_id"], r["resource_key"], r["namespace"], r["model_name"], r["project"],
              r["team"], r["environment"], r["model_id"]) for r in rows if r["pod"] == "vllm-llama-0"}
    assert llama == {("10.1.0.10:8000", "i-0AbC1234567890def", "i-0abc1234567890def", "llm",
                      "meta-llama/Llama-3.1-70B-Instruct", "chatbot", "coreai", "prod",
                      "meta-llama/llama-3.1-70b-instruct")}
    mistral = {(r["resource_id"], r["model_name"], r["model_id"], r["team"]) for r in rows
               if r["pod"] == "vllm-mistral-0"}
    assert mistral == {("gpu-node-b", "mistral-7b-instruct", "mistral-7b", None)}
    assert not [r for r in rows if r["pod"] is None]  # the router look-alike has no model_name


def test_gateway_counters_replace_vllm_for_the_same_model_and_hour(
        store: Store, settings: Settings, prom: PrometheusServer, fleet: Fleet) -> None:
    result = run(store, with_prom(settings, prom))  # default token_source: gateway_then_vllm
    assert result.status == "succeeded", result.error
    rows = token_facts(store)
    gateway_hours = {h for (_, h) in fleet.gateway}
    assert len(gateway_hours) == 24
    want: dict[tuple[str, datetime], dict[str, int]] = {}
    for (pod, hour), truth in fleet.vllm.items():
        if not (pod == "vllm-mistral-0" and hour in gateway_hours):
            want[(pod, hour)] = dict(truth)
    for (team, hour), truth in fleet.gateway.items():
        want[(f"{team}@vllm-mistral-0", hour)] = dict(truth)
    got: dict[tuple[str, datetime], dict[str, int]] = {}
    for r in rows:
        pod = f"{r['team']}@{r['pod']}" if r["hour_start"] in gateway_hours and r["model_id"] == "mistral-7b" \
            else r["pod"]
        assert (pod, r["hour_start"]) not in got
        got[(pod, r["hour_start"])] = {m: r[m] for m in ("prompt_tokens", "generation_tokens", "requests")}
    assert got == want
    # Gateway rows carry the callers' dims and the location of the one vLLM server they displaced.
    gw = [r for r in rows if r["hour_start"] in gateway_hours and r["model_id"] == "mistral-7b"]
    assert {(r["project"], r["team"], r["environment"]) for r in gw} == {("search", "search", "prod"),
                                                                         ("ads", "growth", "prod")}
    assert {(r["instance"], r["pod"], r["resource_id"], r["model_name"]) for r in gw} == \
        {("10.2.0.20:8000", "vllm-mistral-0", "gpu-node-b", "Mistral-7B")}


def test_gateway_only_token_source_reads_only_gateway_counters(
        store: Store, settings: Settings, prom: PrometheusServer, fleet: Fleet) -> None:
    result = run(store, with_prom(settings, prom, token_source="gateway"))
    assert result.status == "succeeded", result.error
    rows = token_facts(store)
    got = defaultdict(int)
    for r in rows:
        got[(r["team"], r["hour_start"])] += r["generation_tokens"]
    assert dict(got) == {k: v["generation_tokens"] for k, v in fleet.gateway.items()}
    assert {r["instance"] for r in rows} == {"10.3.0.9:8080"}  # no vLLM server to borrow a location from


def totals(store: Store) -> tuple[Any, ...]:
    [row] = store.query("SELECT count(*), sum(busy), sum(samples) FROM gpu_hours")
    [tok] = store.query("SELECT count(*), sum(prompt_tokens), sum(generation_tokens), sum(requests) FROM token_hours")
    return (*row, *tok)


def test_recollecting_overlapping_windows_leaves_totals_unchanged(
        store: Store, settings: Settings, prom: PrometheusServer, fleet: Fleet) -> None:
    s = with_prom(settings, prom, token_source="vllm")
    assert run(store, s).status == "succeeded"
    once = totals(store)
    first = run(store, s, Window(D0, D0 + timedelta(days=2)))
    second = run(store, s, Window(D0 + timedelta(days=1), D0 + timedelta(days=3)))
    assert first.status == second.status == "succeeded"
    assert totals(store) == once
    assert once[5] == sum(v["generation_tokens"] for v in fleet.vllm.values())
    check_gpu_hours(store, fleet, s)


def test_long_windows_are_chunked_with_progress_and_give_the_same_facts(
        store: Store, settings: Settings, prom: PrometheusServer) -> None:
    assert run(store, with_prom(settings, prom)).status == "succeeded"
    whole = snapshot(store)
    calls: list[tuple[int, int]] = []
    result = run(store, with_prom(settings, prom, max_points_per_query=24),
                 progress=lambda done, total: calls.append((done, total)))
    assert result.status == "succeeded", result.error
    # Day-long chunks: the two vLLM restarts fall in different chunks, so in two runs.
    queries = 3 * QUERIES_PER_CHUNK + RAW_GATEWAY + 2 * RAW_VLLM
    assert result.requests == queries
    # Every query reported once; the total grows as raw queries are found, and ends exact.
    assert [done for done, _ in calls] == list(range(queries + 1))
    totals = [total for _, total in calls]
    assert totals[0] == 3 * QUERIES_PER_CHUNK and totals == sorted(totals) and totals[-1] == queries
    assert snapshot(store) == whole


def test_prometheus_stopped_mid_run_fails_the_run_and_a_later_run_fills_the_gap(
        store: Store, settings: Settings, prom: PrometheusServer, fleet: Fleet) -> None:
    s = with_prom(settings, prom, max_points_per_query=24, token_source="vllm")
    assert run(store, s, Window(D0, D0 + timedelta(days=1))).status == "succeeded"
    before = snapshot(store)

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done == 9:  # 5 GPU + 3 vLLM + suspects: the first of three chunks is complete (none flagged)
            prom.stop()

    try:
        failed = run(store, s, progress=stop_after_first_chunk)
    finally:
        prom.start()
    s = with_prom(settings, prom, max_points_per_query=24, token_source="vllm")  # the port may have moved
    assert failed.status == "failed"
    assert "unreachable" in failed.error and "127.0.0.1" in failed.error
    assert failed.requests == 10
    assert snapshot(store) == before
    [(status, error)] = store.query("SELECT status, error FROM source_runs WHERE run_id = ?", [failed.run_id])
    assert (status, error) == ("failed", failed.error)

    assert run(store, s).status == "succeeded"
    check_gpu_hours(store, fleet, s)
    assert vllm_totals(token_facts(store)) == {k: dict(v) for k, v in fleet.vllm.items()}


def test_a_query_error_fails_the_run_with_prometheus_reason_and_no_secret(
        store: Store, settings: Settings, prom: PrometheusServer) -> None:
    assert run(store, with_prom(settings, prom)).status == "succeeded"
    before = snapshot(store)
    # Misconfigured chunking: Prometheus itself refuses more than 11,000 points per series.
    s = with_prom(settings, prom, max_points_per_query=20000,
                  headers={"Authorization": SecretStr("Bearer sekret-token-123")})
    result = run(store, s, Window(D0 - timedelta(days=460), D0 + timedelta(days=1)))
    assert result.status == "failed"
    assert "exceeded maximum resolution of 11,000 points" in result.error
    assert "sekret" not in result.error and "Bearer" not in result.error
    assert result.requests == 1
    assert snapshot(store) == before


def test_an_unreachable_prometheus_fails_the_run_without_credentials_in_the_reason(
        store: Store, settings: Settings) -> None:
    cfg = PrometheusSettings(url=f"http://finops:pa55word@127.0.0.1:{free_port()}", max_retries=0)
    result = run(store, settings.model_copy(update={"prometheus": cfg}))
    assert result.status == "failed"
    assert "unreachable" in result.error
    assert "pa55word" not in result.error
    assert store.query("SELECT count(*) FROM gpu_hours") == [(0,)]


def test_cli_collect_prometheus(tmp_path: Path, prom: PrometheusServer, fleet: Fleet,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.cli import app

    db = tmp_path / "cli.duckdb"
    monkeypatch.setenv("FINOPS_DB", str(db))
    monkeypatch.setenv("FINOPS_PROMETHEUS_URL", prom.url)
    # D1: the llama restart is flagged, not the gateway's first sample (D1 00:00 closes D0 23:00).
    result = CliRunner().invoke(app, ["collect", "prometheus", "--start", "2026-11-03", "--end", "2026-11-04"])
    assert result.exit_code == 0, result.output
    assert "prometheus:" in result.output and f"{QUERIES_PER_CHUNK + RAW_VLLM} requests" in result.output
    store = open_store(db)
    try:
        day = Window(D0 + timedelta(days=1), D0 + timedelta(days=2))
        # A GPU-hour of the time-sliced GPU is a row per pod.
        [(hours,)] = store.query("SELECT count(DISTINCT (gpu_uuid, mig_instance, hour_start)) FROM gpu_hours")
        assert hours == len(expected_gpus(fleet, day))
    finally:
        store.close()
