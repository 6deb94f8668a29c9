"""Pure parts of the Prometheus collector on responses recorded from a real Prometheus
(tests/fixtures/prometheus/, see record.py there): parsing, GPU and token rows, chunking, errors."""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops.collect import collect
from finops.settings import PrometheusSettings, Settings
from finops.sources.prometheus.client import error_reason, plan_chunks, safe_url
from finops.sources.prometheus.gpu import GPU_MEASURES, gpu_rows, gpu_table
from finops.sources.prometheus.parse import LabelMap, MalformedResult, Series, parse_matrix
from finops.sources.prometheus.promql import METRICS, QUERIES, render
from finops.sources.prometheus.tokens import TOKEN_MEASURES, merge_token_sources, token_rows, token_table
from finops.store import Store
from finops.timeutil import Window
from tests.conftest import FIXTURES

REC = FIXTURES / "prometheus"
A1, A2 = "GPU-bc5610b9-79c8-fedd-8899-07539c7f868a", "GPU-fbc2c554-4d37-8938-0032-f923bad0f716"
B0, B1 = "GPU-82e45d1b-1618-559f-144c-eab51545030b", "GPU-39e28159-8c62-ee71-64db-b748edd61e15"


def recorded(name: str) -> list[dict[str, Any]]:
    body = json.loads((REC / f"{name}.json").read_text())
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    return body["data"]["result"]


def series(name: str) -> list[Series]:
    return parse_matrix(recorded(name))


@pytest.fixture
def lm(settings: Settings) -> LabelMap:
    return LabelMap.from_settings(settings)


def test_parse_matrix_keeps_every_series_and_point() -> None:
    raw = recorded("gpu_busy")
    parsed = parse_matrix(raw)
    assert [dict(s.labels) for s in parsed] == [r["metric"] for r in raw]
    assert [p for s in parsed for p in s.points] == [(int(t), float(v)) for r in raw for t, v in r["values"]]
    assert parse_matrix([{"metric": {}, "values": [[1, "NaN"], [2, "+Inf"]]}])[0].points[1] == (2, float("inf"))


@pytest.mark.parametrize("bad", [{"result": []}, [{"metric": {}}], [{"metric": {}, "values": [[1]]}],
                                 [{"metric": {}, "values": [[1, "x"]]}], [{"metric": [], "values": []}]])
def test_parse_matrix_rejects_what_is_not_a_matrix(bad: Any) -> None:
    with pytest.raises(MalformedResult):
        parse_matrix(bad)


def recorded_gpu_rows(lm: LabelMap) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return gpu_rows({m: series(f"gpu_{m}") for m in GPU_MEASURES}, series("gpu_labels_labels"), lm, 3600)


def test_gpu_rows_one_per_gpu_and_hour_with_the_recorded_values(lm: LabelMap) -> None:
    rows, quarantine = recorded_gpu_rows(lm)
    assert quarantine == []
    busy = {(r["metric"]["UUID"], r["metric"].get("GPU_I_ID", ""), int(t)): float(v)
            for r in recorded("gpu_busy") for t, v in r["values"]}
    got = {(r["gpu_uuid"], r["mig_instance"] or "",
            int(r["hour_start"].replace(tzinfo=UTC).timestamp()) + 3600): r for r in rows}
    assert {k: r["busy"] for k, r in got.items()} == busy
    samples = {(r["metric"]["UUID"], r["metric"].get("GPU_I_ID", ""), int(t)): int(v)
               for r in recorded("gpu_samples") for t, v in r["values"]}
    assert {k: r["samples"] for k, r in got.items()} == samples
    # node-a's exporter was down for the first half of D1 10:00 (the first recorded point).
    first = min(t for (_, _, t) in got)
    assert got[(A2, "", first)]["samples"] == 30 and got[(B0, "", first)]["samples"] == 60
    # Energy is per physical GPU: the MIG instances have none; the others have the recorded value.
    assert all(r["energy_kwh"] is None for r in rows if r["gpu_uuid"] == B1)
    energy = {r["metric"]["UUID"]: float(r["values"][0][1]) for r in recorded("gpu_energy_kwh")}
    assert got[(B0, "", first)]["energy_kwh"] == energy[B0]
    assert gpu_table(rows).num_rows == len(rows)


def test_gpu_rows_split_a_shared_gpu_by_pod_and_drop_the_exporters_own_labels(lm: LabelMap) -> None:
    labels = series("gpu_labels_labels")
    copies = Counter(s.labels["UUID"] for s in labels)
    assert copies[A2] == 2  # the recorded answer really has the shared GPU once per pod
    assert any(s.labels.get("pod", "").startswith("nvidia-dcgm-exporter") for s in labels if s.labels["UUID"] == A1)
    rows, _ = recorded_gpu_rows(lm)
    per_hour = Counter((r["gpu_uuid"], r["mig_instance"], r["hour_start"]) for r in rows)
    assert {k[0] for k, n in per_hour.items() if n > 1} == {A2} and set(per_hour.values()) == {1, 2}
    # The shared GPU: a row per pod and hour, each with the GPU's busy fraction and half of it (the
    # recorded answer weighs both pods the same), its own dims; the shares add up to the whole GPU.
    a2 = [r for r in rows if r["gpu_uuid"] == A2]
    assert {r["pod"] for r in a2} == {"batch-embed-0", "batch-embed-1"} and {r["time_share"] for r in a2} == {0.5}
    by_hour: dict[Any, list[dict[str, Any]]] = {}
    for r in a2:
        by_hour.setdefault(r["hour_start"], []).append(r)
    assert all(len({r["busy"] for r in pair}) == 1 and sum(r["time_share"] for r in pair) == 1
               for pair in by_hour.values())
    assert {(r["pod"], r["environment"]) for r in a2} == {("batch-embed-0", "prod"), ("batch-embed-1", "staging")}
    assert all(r["time_share"] is None for r in rows if r["gpu_uuid"] != A2)
    assert {(r["namespace"], r["pod"], r["container"]) for r in rows if r["gpu_uuid"] == A1} == {(None, None, None)}
    mig = {(r["mig_instance"], r["namespace"], r["pod"]) for r in rows if r["gpu_uuid"] == B1}
    assert mig == {("1", "research", "notebook-0"), ("2", None, None)}


def test_a_time_sliced_gpu_splits_by_each_pods_measured_busy(lm: LabelMap) -> None:
    """Per-pod GPU_UTIL sums weigh the pods (dcgm-exporter's virtual GPUs); a pod that came in the
    middle of the hour weighs its samples only; no busy pod at all splits evenly; the exporter's own
    label set is no workload."""
    pod = {"UUID": "GPU-s", "gpu": "0", "namespace": "llm", "container": "vllm"}
    exporter = {"UUID": "GPU-s", "gpu": "0", "pod": "nvidia-dcgm-exporter-x7k2p", "namespace": "gpu-operator",
                "container": "nvidia-dcgm-exporter"}
    measures = {"busy": [Series({"UUID": "GPU-s"}, [(7200, 0.6), (10800, 0.0)])],
                "samples": [Series({"UUID": "GPU-s"}, [(7200, 60.0), (10800, 60.0)])],
                "energy_kwh": [Series({"UUID": "GPU-s"}, [(7200, 0.3), (10800, 0.1)])]}
    labels = [Series({**pod, "pod": "a", "team": "alpha"}, [(7200, 1800.0), (10800, 0.0)]),
              Series({**pod, "pod": "b", "team": "beta"}, [(7200, 600.0), (10800, 0.0)]),
              Series(exporter, [(7200, 0.0), (10800, 0.0)])]
    rows, quarantine = gpu_rows(measures, labels, lm, 3600)
    assert quarantine == []
    got = {(r["hour_start"].hour, r["pod"]): r for r in rows}
    assert set(got) == {(1, "a"), (1, "b"), (2, "a"), (2, "b")}
    assert (got[(1, "a")]["time_share"], got[(1, "b")]["time_share"]) == (0.75, 0.25)
    assert (got[(1, "a")]["team"], got[(1, "b")]["team"]) == ("alpha", "beta")
    assert got[(1, "a")]["energy_kwh"] == pytest.approx(0.225) and got[(1, "b")]["energy_kwh"] == pytest.approx(0.075)
    assert {r["busy"] for r in rows if r["hour_start"].hour == 1} == {0.6}
    assert (got[(2, "a")]["time_share"], got[(2, "b")]["time_share"]) == (0.5, 0.5)


def test_gpu_rows_quarantine_what_cannot_be_a_gpu_hour(lm: LabelMap) -> None:
    measures = {
        "busy": [Series({"UUID": "GPU-x"}, [(7200, 1.5), (10800, 0.5)]), Series({}, [(7200, 0.3)])],
        "samples": [Series({"UUID": "GPU-x"}, [(7200, 60.0), (10800, 60.0)])],
    }
    rows, quarantine = gpu_rows(measures, [], lm, 3600)
    assert [(r["hour_start"], r["busy"]) for r in rows] == [(datetime(1970, 1, 1, 2), 0.5)]
    reasons = sorted(q["reason"] for q in quarantine)
    assert reasons == ["GPU series without a UUID label", "busy fraction 1.5 is outside 0..1"]


def test_token_rows_sum_engines_round_counts_and_fall_back_to_model_name(lm: LabelMap) -> None:
    measures = {m: series(f"vllm_{m}") for m in TOKEN_MEASURES}
    rows, quarantine = token_rows(measures, lm, 3600, ("model_name",), "vllm")
    assert quarantine == []
    for m in TOKEN_MEASURES:
        want = Counter()
        for r in recorded(f"vllm_{m}"):
            for t, v in r["values"]:
                want[(r["metric"]["pod"], int(t))] += float(v)
        got = {(r["pod"], int(r["hour_start"].replace(tzinfo=UTC).timestamp()) + 3600): r[m] for r in rows}
        assert got == {k: round(v) for k, v in want.items()}
    llama = [r for r in rows if r["pod"] == "vllm-llama-0"]
    assert {(r["project"], r["team"], r["model_id"], r["resource_key"]) for r in llama} == \
        {("chatbot", "coreai", "meta-llama/llama-3.1-70b-instruct", "i-0abc1234567890def")}
    assert token_table(rows).num_rows == len(rows)


def test_v1_counters_are_zero_where_exposed_without_growth_and_unknown_where_not_exposed(lm: LabelMap) -> None:
    v1 = {"model_name": "m", "pod": "v1", "instance": "10.0.0.1:8000"}
    old = {"model_name": "m", "pod": "old", "instance": "10.0.0.2:8000"}
    measures = {
        "prompt_tokens": [Series(v1, [(7200, 10.0), (10800, 20.0)]), Series(old, [(7200, 5.0)])],
        "cached_prompt_tokens": [Series(v1, [(7200, 4.0)])],  # no row in the second hour: no growth there
        "asleep_hours": [Series(v1, [(7200, 0.25)])],
    }
    rows, _ = token_rows(measures, lm, 3600, ("model_name",), "vllm")
    got = {(r["pod"], r["hour_start"].hour): (r["cached_prompt_tokens"], r["asleep_hours"]) for r in rows}
    # A counter the server exposes grew by 0 in an hour PromQL left out; a gauge without a sample is
    # unknown; an older server without the series is unknown throughout.
    assert got == {("v1", 1): (4, 0.25), ("v1", 2): (0, None), ("old", 1): (None, None)}


def test_token_rows_quarantine_non_counts(lm: LabelMap) -> None:
    s = Series({"model_name": "m", "pod": "p"}, [(3600, float("nan")), (7200, 10.4)])
    rows, quarantine = token_rows({"prompt_tokens": [s]}, lm, 3600, ("model_name",), "vllm")
    assert [(r["prompt_tokens"], r["generation_tokens"]) for r in rows] == [(10, 0)]
    assert len(quarantine) == 1 and "not a count" in quarantine[0]["reason"]


def _row(hour: int, model: str, pod: str | None, team: str | None = None, n: int = 1) -> dict[str, Any]:
    return {"hour_start": datetime(2026, 1, 1, hour), "instance": f"{pod}:8000", "namespace": "ns", "pod": pod,
            "resource_id": f"i-{pod}", "resource_key": f"i-{pod}", "model_name": model, "project": None,
            "team": team, "environment": None, "model_id": model, "prompt_tokens": n, "generation_tokens": n,
            "requests": n}


def test_gateway_then_vllm_never_counts_both() -> None:
    vllm = [_row(0, "m", "a", n=100), _row(1, "m", "a", n=100), _row(1, "other", "c", n=7),
            _row(2, "m", "a", n=100), _row(2, "m", "b", n=100)]
    gateway = [_row(1, "m", None, "t1", 60), _row(1, "m", None, "t2", 30), _row(2, "m", None, "t1", 150)]
    rows = merge_token_sources(vllm, gateway, "gateway_then_vllm")
    by = {(r["hour_start"].hour, r["model_id"], r["team"]): r for r in rows}
    assert {k: r["prompt_tokens"] for k, r in by.items()} == {
        (0, "m", None): 100, (1, "other", None): 7, (1, "m", "t1"): 60, (1, "m", "t2"): 30, (2, "m", "t1"): 150}
    assert by[(1, "m", "t1")]["pod"] == "a" and by[(1, "m", "t1")]["resource_key"] == "i-a"
    assert by[(2, "m", "t1")]["pod"] is None  # two servers served m in hour 2: location unknown
    assert merge_token_sources(vllm, gateway, "vllm") == vllm
    assert merge_token_sources(vllm, gateway, "gateway") == gateway


def test_workload_labels_prefer_exported_and_ignore_the_exporter(lm: LabelMap) -> None:
    helm = {"pod": "dcgm-exporter-5f6b9", "namespace": "monitoring", "container": "dcgm-exporter"}
    assert lm.workload(helm) == {"namespace": None, "pod": None, "container": None}
    assert lm.workload({**helm, "exported_pod": "w", "exported_namespace": "n", "exported_container": "c"}) == \
        {"namespace": "n", "pod": "w", "container": "c"}
    assert lm.workload({**helm, "exported_pod": "w", "exported_namespace": "n"}) == \
        {"namespace": "n", "pod": "w", "container": None}
    assert lm.workload({"container": "nvidia-dcgm-exporter", "namespace": "gpu-operator"})["namespace"] is None
    assert lm.workload({"pod_name": "old", "pod_namespace": "ns"}) == {"namespace": "ns", "pod": "old",
                                                                       "container": None}


def test_dim_and_resource_labels_are_configuration(settings: Settings) -> None:
    cfg = PrometheusSettings(dim_labels={"team": ["owner", "team"], "model_id": ["served_model"]},
                             resource_labels=["node_id", "instance"])
    lm = LabelMap.from_settings(settings.model_copy(update={"prometheus": cfg}))
    labels = {"owner": " Platform ", "team": "x", "project": "N/A", "served_model": "Llama", "node_id": "VM-3",
              "instance": "10.0.0.1:9400"}
    assert lm.dims(labels) == {"project": None, "team": "platform", "environment": None, "model_id": "llama"}
    assert lm.resource(labels) == {"resource_id": "VM-3", "resource_key": "vm-3"}
    q = next(q for q in QUERIES if q.fact == "vllm")
    text = render(q, 3600, cfg.resource_labels, cfg.dim_labels)
    assert "served_model" in text and "node_id" in text and "[3600s]" in text and "$" not in text


def test_every_query_names_its_metric_through_the_metric_table() -> None:
    cfg = PrometheusSettings()
    texts = [render(q, 3600, cfg.resource_labels, cfg.dim_labels) for q in QUERIES]
    for metric in METRICS.values():
        assert any(metric in t for t in texts), metric
    with pytest.raises(ValueError, match="not a valid Prometheus label name"):
        render(QUERIES[-1], 3600, ["bad-label"], cfg.dim_labels)


def test_bad_label_settings_fail_the_run_with_a_clear_reason(store: Store, settings: Settings) -> None:
    cfg = PrometheusSettings(resource_labels=["instance id"])
    [result] = collect(store, settings.model_copy(update={"prometheus": cfg}), "prometheus",
                       Window(datetime(2026, 1, 1), datetime(2026, 1, 2)))
    assert result.status == "failed" and "'instance id' is not a valid Prometheus label name" in result.error


def test_chunks_cover_every_hour_once_and_respect_the_point_limit() -> None:
    window = Window(datetime(2026, 1, 1), datetime(2026, 1, 4))
    chunks = plan_chunks(window, 3600, 24)
    assert [(c.first, c.last) for c in chunks] == [
        (datetime(2026, 1, 1, 1), datetime(2026, 1, 2, 0)), (datetime(2026, 1, 2, 1), datetime(2026, 1, 3, 0)),
        (datetime(2026, 1, 3, 1), datetime(2026, 1, 4, 0))]
    for window, max_points in [(Window(datetime(2025, 1, 1), datetime(2026, 6, 1)), 11000),
                               (Window(datetime(2026, 1, 1, 0, 30), datetime(2026, 1, 1, 5, 10)), 2)]:
        chunks = plan_chunks(window, 3600, max_points)
        points = [c.first + timedelta(hours=i) for c in chunks for i in range(c.points(3600))]
        assert all(c.points(3600) <= max_points for c in chunks)
        assert len(points) == len(set(points))
        starts = [p - timedelta(hours=1) for p in points]
        assert all(window.start <= s < window.end for s in starts)
        assert starts[0] - timedelta(hours=1) < window.start and starts[-1] + timedelta(hours=1) >= window.end
    assert len(plan_chunks(Window(datetime(2025, 1, 1), datetime(2026, 6, 1)), 3600, 11000)) == 2
    with pytest.raises(ValueError, match="max_points_per_query"):
        plan_chunks(window, 3600, 0)
    # Only hours that have ended: at 10:20 the last is 09:00-10:00, evaluated at 10:00.
    today = Window(datetime(2026, 1, 5), datetime(2026, 1, 6))
    [chunk] = plan_chunks(today, 3600, 11000, now=datetime(2026, 1, 5, 10, 20))
    assert (chunk.first, chunk.last) == (datetime(2026, 1, 5, 1), datetime(2026, 1, 5, 10))
    assert plan_chunks(today, 3600, 11000, now=datetime(2026, 1, 5, 0, 59)) == []


def test_error_reason_extracts_prometheus_error_text() -> None:
    errors = json.loads((REC / "errors.json").read_text())
    assert error_reason(errors["too_many_points"]["message"]) == (
        "HTTP 400: bad_data: exceeded maximum resolution of 11,000 points per timeseries. "
        "Try decreasing the query resolution (?step=XX)")
    assert error_reason(errors["parse_error"]["message"]) == "HTTP 400: bad_data: 1:16: parse error: unclosed left parenthesis"
    assert error_reason("HTTP Status Code 502 (b'<html>bad gateway</html>')") == "HTTP 502: <html>bad gateway</html>"
    assert error_reason("HTTP Status Code 503 (b'')") == "HTTP 503"


def test_safe_url_drops_credentials_and_query() -> None:
    assert safe_url("https://u:secret@prom.example:9443/prom/?token=abc#x") == "https://prom.example:9443/prom/"


@pytest.fixture
def html_server() -> Iterator[str]:
    """A real HTTP server answering every request with a login page, as a misrouted proxy would."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = b"<html>please log in</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_an_answer_that_is_not_prometheus_fails_the_run(store: Store, settings: Settings, html_server: str) -> None:
    cfg = PrometheusSettings(url=html_server, max_retries=0)
    [result] = collect(store, settings.model_copy(update={"prometheus": cfg}), "prometheus",
                       Window(datetime(2026, 1, 1), datetime(2026, 1, 2)))
    assert result.status == "failed" and "not JSON" in result.error and result.requests == 1
