"""A CPU simulator of NVIDIA's dcgm-exporter (`finops simulate dcgm`).

Each simulated GPU is rendered with dcgm-exporter's metric names, HELP/TYPE lines and label set
(`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`, `DCGM_FI_DRIVER_VERSION`, in that
order). A GPU may be bound to a (simulated or real) vLLM server: every `interval` seconds the exporter
reads that server's `vllm:num_requests_running` and derives the busy fraction from it, as a real GPU is
busy exactly while its server has requests in flight. An unbound GPU, or one whose server has no
requests, is idle. Memory, power and the energy counter (mJ) follow from the busy fraction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, Response
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

H100 = "NVIDIA H100 80GB HBM3"


@dataclass(frozen=True)
class GpuSpec:
    """One simulated GPU. `server_url` is the vLLM server whose load drives it (None: always idle)."""

    index: int
    uuid: str
    pci_bus_id: str
    model_name: str = H100
    fb_total_mib: int = 81559
    fb_reserved_mib: int = 596
    idle_watts: float = 68.0
    max_watts: float = 700.0
    server_url: str | None = None

    @property
    def device(self) -> str:
        return f"nvidia{self.index}"


@dataclass
class GpuState:
    """What the exporter last sampled for one GPU."""

    busy: float = 0.0
    server_up: bool = False  # the bound server answered: its KV cache holds memory on this GPU
    energy_mj: float = 0.0


@dataclass(frozen=True)
class DcgmSimConfig:
    hostname: str
    gpus: tuple[GpuSpec, ...]
    driver_version: str = "580.105.08"
    interval: float = 1.0  # seconds between samples (DCGM_EXPORTER_INTERVAL, 30 s by default in reality)
    saturation: float = 4.0  # requests in flight at which the GPU counts as fully busy
    gpu_memory_utilization: float = 0.9  # share of memory a bound vLLM preallocates


def make_gpus(count: int, hostname: str, bindings: Mapping[int, str], model_name: str = H100) -> tuple[GpuSpec, ...]:
    """`count` GPUs with stable, realistic identities derived from the host name."""
    unknown = sorted(set(bindings) - set(range(count)))
    if unknown:
        raise ValueError(f"bound GPU index {unknown[0]} does not exist (GPUs are 0..{count - 1})")
    return tuple(
        GpuSpec(index=i, uuid=f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{hostname}/gpu{i}')}",
                pci_bus_id=f"00000000:{0x53 + 0x11 * i:02X}:00.0", model_name=model_name,
                server_url=bindings.get(i))
        for i in range(count)
    )


def running_requests(metrics_text: str) -> float:
    """Requests in flight on a vLLM server: `vllm:num_requests_running` summed over engines and models."""
    return sum(s.value for fam in text_string_to_metric_families(metrics_text) for s in fam.samples
               if s.name == "vllm:num_requests_running")


def busy_fraction(running: float, saturation: float) -> float:
    return max(0.0, min(1.0, running / saturation))


def power_watts(gpu: GpuSpec, busy: float) -> float:
    return gpu.idle_watts + (gpu.max_watts - gpu.idle_watts) * busy


def fb_used_mib(gpu: GpuSpec, state: GpuState, cfg: DcgmSimConfig) -> int:
    return int(gpu.fb_total_mib * cfg.gpu_memory_utilization) if state.server_up else 0


Value = Callable[[GpuSpec, GpuState, DcgmSimConfig], str]

# dcgm-exporter's default counters we simulate: (name, type, help, value). Integer fields render as
# integers and float fields with six decimals, as the exporter does.
FIELDS: tuple[tuple[str, str, str, Value], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).",
     lambda g, s, c: str(345 + round(1635 * s.busy))),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).",
     lambda g, s, c: str(26 + round(40 * s.busy))),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).",
     lambda g, s, c: f"{power_watts(g, s.busy):f}"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
     lambda g, s, c: str(int(s.energy_mj))),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).",
     lambda g, s, c: str(round(100 * s.busy))),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).",
     lambda g, s, c: str(round(60 * s.busy))),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
     lambda g, s, c: str(g.fb_total_mib - g.fb_reserved_mib - fb_used_mib(g, s, c))),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
     lambda g, s, c: str(fb_used_mib(g, s, c))),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).",
     lambda g, s, c: str(g.fb_reserved_mib)),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.",
     lambda g, s, c: "0"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
     lambda g, s, c: f"{s.busy:f}"),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
     lambda g, s, c: f"{0.35 * s.busy:f}"),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
     "Ratio of cycles the device memory interface is active sending or receiving data.",
     lambda g, s, c: f"{0.8 * s.busy:f}"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(cfg: DcgmSimConfig, states: Mapping[int, GpuState]) -> str:
    """The exporter's `/metrics` body for the current samples."""
    lines: list[str] = []
    for name, kind, doc, value in FIELDS:
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]
        for g in cfg.gpus:
            labels = {"gpu": str(g.index), "UUID": g.uuid, "pci_bus_id": g.pci_bus_id, "device": g.device,
                      "modelName": g.model_name, "Hostname": cfg.hostname,
                      "DCGM_FI_DRIVER_VERSION": cfg.driver_version}
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {value(g, states[g.index], cfg)}")
    return "\n".join(lines) + "\n"


@dataclass
class Sampler:
    """Samples every GPU each `interval`: reads its bound server's load and integrates energy."""

    cfg: DcgmSimConfig
    states: dict[int, GpuState] = field(default_factory=dict)
    _last: float = field(default_factory=time.monotonic)
    _warned: dict[int, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Energy since "boot": start from a plausible, stable non-zero reading per GPU.
        for g in self.cfg.gpus:
            self.states[g.index] = GpuState(energy_mj=float(3_600_000_000 + 1_000_000 * g.index))

    async def sample(self, client: httpx.AsyncClient) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        for g in self.cfg.gpus:
            state = self.states[g.index]
            # Energy for the interval just ended, at the power drawn during it.
            state.energy_mj += power_watts(g, state.busy) * elapsed * 1000.0
            state.busy, state.server_up = await self._read_load(client, g)

    async def _read_load(self, client: httpx.AsyncClient, g: GpuSpec) -> tuple[float, bool]:
        if g.server_url is None:
            return 0.0, False
        try:
            resp = await client.get(f"{g.server_url.rstrip('/')}/metrics")
            resp.raise_for_status()
            running = running_requests(resp.text)
        except (httpx.HTTPError, ValueError) as exc:
            # A server that does not answer holds no memory and does no work on this GPU.
            if self.states[g.index].server_up or not self._warned.get(g.index):
                log.warning("GPU %s: cannot read %s/metrics: %s", g.index, g.server_url, type(exc).__name__)
            self._warned[g.index] = True
            return 0.0, False
        self._warned[g.index] = False
        return busy_fraction(running, self.cfg.saturation), True


def create_app(cfg: DcgmSimConfig) -> FastAPI:
    """A FastAPI app serving `/metrics` and `/health`, sampling in the background while it runs."""
    sampler = Sampler(cfg)

    async def loop() -> None:
        async with httpx.AsyncClient(timeout=max(0.2, cfg.interval)) as client:
            while True:
                await sampler.sample(client)
                await asyncio.sleep(cfg.interval)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="dcgm-exporter simulator", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.sampler = sampler

    @app.get("/health")
    async def health() -> Response:
        return Response("OK", media_type="text/plain")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render(cfg, sampler.states), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
