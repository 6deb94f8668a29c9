"""A deterministic synthetic fleet: GPU instances on AWS and Azure, their bills and their telemetry.

The fleet is described as data (`RESOURCES`); `Fleet` turns it into daily FOCUS bills (CSV text) and
hourly telemetry facts: the busy fraction of every GPU, the tokens every vLLM server generated and,
for the shared server, the tokens each calling team sent through the metering gateway.
`finops.demo.telemetry` renders those facts as dcgm-exporter / vLLM / gateway series and as
Prometheus query answers. Every number follows from `seed`; money is Decimal.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

HOURS_PER_DAY = 24
# Generated tokens per GPU-hour at 100% busy, per model (vLLM throughput of that model on that GPU).
THROUGHPUT: dict[str, int] = {"llama-70b": 1_100_000, "mistral-7b": 9_000_000, "qwen-7b": 3_600_000,
                              "llama-8b": 3_400_000}
PROMPT_PER_GENERATED = 3  # prompt tokens per generated token
# vLLM V1's signals, per model: the share of prompt tokens served from the prefix cache (chat keeps
# long system prompts), and the engine's milliseconds per 1k prompt tokens prefilled and per 1k
# generated tokens decoded (prefill reads a prompt in batched passes; decode runs a pass a token).
CACHE_HIT: dict[str, float] = {"llama-70b": 0.35, "mistral-7b": 0.1, "qwen-7b": 0.2, "llama-8b": 0.25}
PREFILL_MS_PER_1K: dict[str, int] = {"llama-70b": 90, "mistral-7b": 12, "qwen-7b": 12, "llama-8b": 14}
DECODE_MS_PER_1K: dict[str, int] = {"llama-70b": 900, "mistral-7b": 110, "qwen-7b": 110, "llama-8b": 120}
GENERATED_PER_REQUEST = 300
GPU_MEMORY_MIB = {"NVIDIA A100-SXM4-40GB": 40960, "NVIDIA A100 80GB PCIe": 81920, "NVIDIA A10G": 23028,
                  "Tesla V100-SXM2-16GB": 16384}
PRICE_CHANGE = (Decimal("0.80"), "p4d", 1)  # from the second week on, p4d instances bill 20% less
ABANDONED_AFTER_DAYS = 9  # the training box's job ends; the instance keeps running, idle


@dataclass(frozen=True)
class Injected:
    """A change the anomalies report should find: `factor` on a resource's bill (cost) or its vLLM
    server's tokens (tokens), on the days [`from_end`, `until_end`) counted back from the fleet's end."""

    what: str  # "cost" | "tokens"
    rid_part: str  # in the resource id of each resource it hits
    factor: Decimal
    from_end: int
    until_end: int = 0
    story: str = ""


INJECTED: tuple[Injected, ...] = (
    Injected("cost", "i-0rag01", Decimal(3), 5, 4,
             "a runaway node group: the RAG box's autoscaler launched two more instances for a day, left idle"),
    Injected("cost", "vm-search-01", Decimal("1.5"), 3, 0,
             "a price change that stays: the search VM moved to a 50% dearer plan for its last three days"),
    Injected("tokens", "i-0chat0", Decimal("0.2"), 6, 5,
             "a token drop: a bad deploy of the chat model cut both its servers to 20% of their tokens for a day, "
             "their GPUs billed as usual"),
)


@dataclass(frozen=True)
class Caller:
    """A team calling a shared model through the metering gateway, with its share of the traffic."""

    project: str
    team: str
    environment: str
    share: Decimal


@dataclass(frozen=True)
class Resource:
    rid: str  # the ResourceId on the bill
    provider: str  # FOCUS ProviderName
    service: str
    instance_type: str
    hourly: Decimal  # on-demand price per hour
    gpus: int = 0
    gpu_model: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # vLLM --served-model-name, if it serves one
    pattern: str = "steady"  # steady | office (idle nights and weekends) | abandoned | idle
    sub_account: str = "111111111111"
    region: str = "us-east-1"
    callers: tuple[Caller, ...] = ()  # teams reaching `model` through the gateway (a shared server)
    v1: bool = True  # its vLLM exposes the V1 signals (cached prompt tokens, prefill and decode time)
    # MIG profiles its one GPU is cut into: `gpus` counts the instances, each a GPU identity of its
    # own; the model server runs on the first, the others are allocated to nothing (idle).
    mig: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The id telemetry uses: an EC2 instance id or an Azure VM name."""
        return self.rid.rsplit("/", 1)[-1]

    def slices(self, gpu: int) -> int:
        """Compute slices of a MIG instance (its profile's leading `<n>g`, of the A100's 7); 7 for a whole GPU."""
        return int(self.mig[gpu].split("g", 1)[0]) if self.mig else 7

    @property
    def host(self) -> str:
        """The host name its exporters report (readable, for the demo's charts)."""
        return "gpu-" + self.key.removeprefix("i-0").removeprefix("vm-")


A100_40, A100_80, A10G, V100 = "NVIDIA A100-SXM4-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A10G", "Tesla V100-SXM2-16GB"
AZ = "/subscriptions/5f1c0000-0000-0000-0000-00000000abcd/resourceGroups/rg-search/providers/Microsoft.Compute/virtualMachines/"
EC2, EBS, S3 = "Amazon Elastic Compute Cloud", "Amazon Elastic Block Store", "Amazon Simple Storage Service"
CHATBOT = {"Project": "chatbot", "Team": "coreai", "Environment": "prod", "ModelID": "llama-70b"}
RESOURCES: tuple[Resource, ...] = (
    Resource("i-0chat01", "AWS", EC2, "p4d.24xlarge", Decimal("32.7726"), 8, A100_40, CHATBOT, "llama-70b"),
    # Same service, tagged by another pipeline: lower-case keys, mixed-case values, no ModelID.
    Resource("i-0chat02", "AWS", EC2, "p4d.24xlarge", Decimal("32.7726"), 8, A100_40,
             {"project": "ChatBot", "team": "CoreAI", "environment": "prod"}, "llama-70b", v1=False),  # older vLLM
    Resource(AZ + "vm-search-01", "Microsoft", "Virtual Machines", "Standard_NC24ads_A100_v4", Decimal("3.673"), 1,
             A100_80, {"Project": "search", "Team": "platform", "Environment": "prod", "ModelID": "mistral-7b"},
             "mistral-7b", sub_account="5f1c0000-0000-0000-0000-00000000abcd", region="eastus"),
    Resource("i-0rag01", "AWS", EC2, "g5.12xlarge", Decimal("5.672"), 4, A10G,
             {"Project": "rag", "Team": "research", "Environment": "dev", "ModelID": "qwen-7b"}, "qwen-7b", "office"),
    # One model server shared by two teams through the gateway; the bill knows only the environment.
    Resource("i-0shared01", "AWS", EC2, "g5.12xlarge", Decimal("5.672"), 4, A10G, {"Environment": "prod"},
             "llama-8b", callers=(Caller("chatbot", "coreai", "prod", Decimal("0.6")),
                                  Caller("search", "platform", "prod", Decimal("0.4")))),
    # One A100 cut into two MIG instances: a 4g serves qwen (the model comes from telemetry), a 3g
    # is allocated to nothing; each costs its slices of the VM (docs/definitions.md 6.2).
    Resource(AZ.replace("rg-search", "rg-labs") + "vm-mig-01", "Microsoft", "Virtual Machines",
             "Standard_NC24ads_A100_v4", Decimal("3.673"), 2, A100_80,
             {"Project": "assistant", "Team": "labs", "Environment": "prod"}, "qwen-7b",
             sub_account="5f1c0000-0000-0000-0000-00000000abcd", region="eastus", mig=("4g.40gb", "3g.40gb")),
    # A training box nobody tagged: busy for a while, then left running idle.
    Resource("i-0train01", "AWS", EC2, "p3.8xlarge", Decimal("12.24"), 4, V100, {}, None, "abandoned"),
    Resource("vol-0coreai01", "AWS", EBS, "gp3", Decimal("0.11"), tags={"Team": "coreai"}),
    Resource("logs-bucket", "AWS", S3, "bucket", Decimal("0.55")),
    Resource("chat-data", "AWS", S3, "bucket", Decimal("0.21"), tags=CHATBOT),
)


@dataclass(frozen=True)
class TokenHour:
    prompt: int
    generation: int
    requests: int


@dataclass
class Fleet:
    """The fleet over `days` days ending (exclusive) at `end`, with randomness from `seed`."""

    end: date
    days: int = 35
    seed: int = 7
    resources: tuple[Resource, ...] = RESOURCES
    injections: tuple[Injected, ...] = INJECTED

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.days)

    def hours(self) -> Iterator[datetime]:
        t = datetime.combine(self.start, datetime.min.time())
        for _ in range(self.days * HOURS_PER_DAY):
            yield t
            t += timedelta(hours=1)

    def _rng(self, *key: object) -> random.Random:
        return random.Random(f"{self.seed}:" + ":".join(map(str, key)))

    def _busy(self, r: Resource, gpu: int, hour: datetime) -> float:
        if r.pattern == "idle" or (r.mig and gpu > 0):
            return 0.0
        rng = self._rng(r.rid, gpu, hour)
        if r.pattern == "abandoned":
            in_job = (hour.date() - self.start).days < ABANDONED_AFTER_DAYS
            return round(rng.uniform(0.86, 0.97), 4) if in_job else 0.0
        if r.pattern == "office" and not (9 <= hour.hour < 18 and hour.weekday() < 5):
            return round(rng.uniform(0.0, 0.02), 4)
        diurnal = 0.55 + 0.3 * math.sin((hour.hour - 9) / 24 * 2 * math.pi)
        return round(min(0.98, max(0.02, diurnal + rng.uniform(-0.08, 0.08))), 4)

    @cached_property
    def gpu_busy(self) -> dict[tuple[str, int], list[float]]:
        """(resource id, GPU index) -> busy fraction of every hour, in order."""
        hours = list(self.hours())
        return {(r.rid, g): [self._busy(r, g, h) for h in hours] for r in self.resources for g in range(r.gpus)}

    def busy(self, r: Resource, gpu: int, hour: datetime) -> float:
        """Mean busy fraction of one GPU in one hour."""
        return self.gpu_busy[(r.rid, gpu)][self._index(hour)]

    def _index(self, hour: datetime) -> int:
        i = int((hour - datetime.combine(self.start, datetime.min.time())).total_seconds()) // 3600
        if not 0 <= i < self.days * HOURS_PER_DAY:
            raise ValueError(f"{hour} is outside the fleet's {self.days} days from {self.start}")
        return i

    @cached_property
    def server_tokens(self) -> dict[str, list[TokenHour]]:
        """Resource id -> tokens its vLLM server handled in every hour (servers only)."""
        out = {}
        for r in self.resources:
            if r.model is None:
                continue
            series = []
            for i in range(self.days * HOURS_PER_DAY):
                drop = self.injected("tokens", r, self.start + timedelta(days=i // HOURS_PER_DAY))
                if r.mig:  # the server's instance does its slices' part of a whole GPU's work
                    busy = self.gpu_busy[(r.rid, 0)][i]
                    gen = int(THROUGHPUT[r.model] * r.slices(0) / 7 * busy * float(drop)) if busy > 0.05 else 0
                else:
                    busy = sum(self.gpu_busy[(r.rid, g)][i] for g in range(r.gpus)) / r.gpus
                    gen = int(THROUGHPUT[r.model] * r.gpus * busy * float(drop)) if busy > 0.05 else 0
                series.append(TokenHour(gen * PROMPT_PER_GENERATED, gen, gen // GENERATED_PER_REQUEST))
            out[r.rid] = series
        return out

    def v1_signals(self, r: Resource) -> dict[str, list[int]]:
        """A V1 server's cached prompt tokens and prefill and decode milliseconds of every hour ({} for
        a server without them)."""
        if r.model is None or not r.v1:
            return {}
        tokens = self.server_tokens[r.rid]
        return {"cached_prompt_tokens": [int(t.prompt * CACHE_HIT[r.model]) for t in tokens],
                "prefill_ms": [(t.prompt - int(t.prompt * CACHE_HIT[r.model])) * PREFILL_MS_PER_1K[r.model] // 1000
                               for t in tokens],
                "decode_ms": [t.generation * DECODE_MS_PER_1K[r.model] // 1000 for t in tokens]}

    def tokens(self, r: Resource, hour: datetime) -> TokenHour:
        """Tokens served by `r` in one hour (zero for a resource that serves no model)."""
        if r.model is None:
            return TokenHour(0, 0, 0)
        return self.server_tokens[r.rid][self._index(hour)]

    def caller_tokens(self, r: Resource, hour: datetime) -> list[tuple[Caller, TokenHour]]:
        """A shared server's tokens of one hour split over its callers (the last takes the remainder)."""
        total = self.tokens(r, hour)
        out, left = [], total
        for i, c in enumerate(r.callers):
            if i == len(r.callers) - 1:
                part = left
            else:
                part = TokenHour(*(int(v * c.share) for v in (total.prompt, total.generation, total.requests)))
                left = TokenHour(left.prompt - part.prompt, left.generation - part.generation,
                                 left.requests - part.requests)
            out.append((c, part))
        return out

    def injected(self, what: str, r: Resource, day: date) -> Decimal:
        """The factor the `INJECTED` changes put on `what` of `r` on `day` (1 when none applies)."""
        back = (self.end - day).days  # 1 for the last day
        out = Decimal(1)
        for i in self.injections:
            if i.what == what and i.rid_part in r.rid and i.until_end < back <= i.from_end:
                out *= i.factor
        return out

    def day_cost(self, r: Resource, day: date) -> Decimal:
        price = r.hourly
        factor, family, from_week = PRICE_CHANGE
        if (day - self.start).days // 7 >= from_week and r.instance_type.startswith(family):
            price *= factor
        return (price * HOURS_PER_DAY * self.injected("cost", r, day)).quantize(Decimal("0.0001"))

    def total_cost(self) -> Decimal:
        """The bill: every resource's cost over every day, exactly."""
        return sum((self.day_cost(r, self.start + timedelta(days=d)) for r in self.resources
                    for d in range(self.days)), Decimal(0))

    def focus_csv(self, provider: str) -> str:
        """Daily FOCUS 1.0 rows for one provider's resources."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["BilledCost", "EffectiveCost", "ListCost", "BillingCurrency", "ChargePeriodStart",
                    "ChargePeriodEnd", "ChargeCategory", "ServiceName", "ServiceCategory", "BillingAccountId",
                    "SubAccountId", "ProviderName", "RegionId", "ResourceId", "ResourceType", "PricingCategory",
                    "Tags"])
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            for r in self.resources:
                if r.provider != provider:
                    continue
                cost = self.day_cost(r, day)
                w.writerow([cost, cost, (r.hourly * HOURS_PER_DAY).quantize(Decimal("0.0001")), "USD",
                            f"{day}T00:00:00Z", f"{day + timedelta(days=1)}T00:00:00Z", "Usage", r.service,
                            "Compute" if r.gpus else "Storage", "payer-001", r.sub_account, provider, r.region,
                            r.rid, r.instance_type, "Standard", json.dumps(r.tags) if r.tags else "NULL"])
        return out.getvalue()

    @property
    def providers(self) -> list[str]:
        return sorted({r.provider for r in self.resources})
