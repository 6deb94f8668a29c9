"""GPU identity under both dcgm-exporter namings, against a real Prometheus: `UUID` (default) and
`uuid` (`--use-old-namespace`), the profiling busy metric or, where it is off, GPU_UTIL / 100."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from finops.collect import collect
from finops.settings import PrometheusSettings, Settings
from finops.store import Store
from finops.timeutil import Window
from tests.support.prometheus import OMSeries, PrometheusServer

W = datetime(2026, 11, 10)
T0 = int(W.replace(tzinfo=UTC).timestamp())
# (identity label, uuid, metric, value every minute of the hour) -> expected busy fraction.
GPUS = [
    ("UUID", "GPU-new-prof", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0.25, 0.25),
    ("UUID", "GPU-new-util", "DCGM_FI_DEV_GPU_UTIL", 40.0, 0.40),
    ("uuid", "GPU-old-prof", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0.75, 0.75),
    ("uuid", "GPU-old-util", "DCGM_FI_DEV_GPU_UTIL", 10.0, 0.10),
]


def test_gpus_named_by_uuid_or_UUID_stay_apart_with_their_busy_fraction(tmp_path: Path, settings: Settings,
                                                                           store: Store) -> None:
    times = range(T0 - 3600 + 60, T0 + 3600 + 1, 60)
    series = [OMSeries(metric, {label: uuid, "gpu": str(i), "hostname": "node-1", "modelName": "NVIDIA H100"},
                       "gauge", [(t, value) for t in times])
              for i, (label, uuid, metric, value, _) in enumerate(GPUS)]
    with PrometheusServer.from_series(tmp_path, series) as prom:
        cfg = settings.model_copy(update={"prometheus": PrometheusSettings(url=prom.url, max_retries=0,
                                                                            timeout_seconds=10)})
        [result] = collect(store, cfg, "prometheus", Window(W, W + timedelta(hours=1)))
    assert result.status == "succeeded", result.error
    got = dict(store.query("SELECT gpu_uuid, busy FROM gpu_hours"))
    assert got == {uuid: busy for _, uuid, _, _, busy in GPUS}
    assert store.query("SELECT DISTINCT host FROM gpu_hours") == [("node-1",)]
