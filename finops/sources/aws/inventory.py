"""EC2 accelerator hosts (p*, g*, inf*, trn*, dl*) into the inventory, one task per region.

The inventory lets attribution rule 2 map telemetry hosts (private DNS names, short host names,
private IPs) to the billed instance id. DescribeInstances is read in full and filtered here by
instance-type pattern: server-side wildcards are not honoured by every endpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from finops.batch import Batch, Progress, SourceFailed, Task
from finops.resources import resource_key
from finops.settings import Settings
from finops.sources.aws.client import AwsSession, RequestCount, failure, tag_rules
from finops.tags import DIMS, TagRules
from finops.timeutil import Window, to_utc_naive

SOURCE = "aws_inventory"
# Accelerators per instance type where DescribeInstanceTypes has neither GpuInfo nor NeuronInfo
# (Habana Gaudi and Qualcomm AI 100 hosts), from the EC2 instance-type pages.
KNOWN_ACCELERATORS: dict[str, int] = {"dl1.24xlarge": 8, "dl2q.24xlarge": 8}
# "User initiated (2026-11-02 10:00:00 GMT)": when a stopped/terminated instance stopped.
_STOPPED_AT = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) GMT\)")
_ENDED = {"stopped", "terminated", "shutting-down", "stopping"}

INVENTORY_SCHEMA = pa.schema([
    ("observed_at", pa.timestamp("us")), ("provider_name", pa.string()), ("resource_id", pa.string()),
    ("resource_key", pa.string()), ("instance_type", pa.string()), ("gpu_count", pa.int32()),
    ("host_names", pa.list_(pa.string())), ("region_id", pa.string()), ("tags", pa.string()),
    ("project", pa.string()), ("team", pa.string()), ("environment", pa.string()), ("model_id", pa.string()),
    ("valid_from", pa.timestamp("us")), ("valid_to", pa.timestamp("us")),
])


def is_accelerated(instance_type: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(instance_type, p) for p in patterns)


def accelerator_count(info: dict[str, Any]) -> int | None:
    """GPUs (GpuInfo), else Neuron devices (Inferentia/Trainium), else inference accelerators."""
    for section, items in (("GpuInfo", "Gpus"), ("NeuronInfo", "NeuronDevices"),
                           ("InferenceAcceleratorInfo", "Accelerators")):
        devices = (info.get(section) or {}).get(items) or []
        if devices:
            return sum(int(d.get("Count", 0)) for d in devices)
    return KNOWN_ACCELERATORS.get(info.get("InstanceType", ""))


def host_names(instance: dict[str, Any]) -> list[str]:
    """Names telemetry may use for the host: private DNS names, their first label, private IPs."""
    names: list[str] = []
    dns = [instance.get("PrivateDnsName")]
    ips = [instance.get("PrivateIpAddress")]
    for nic in instance.get("NetworkInterfaces") or []:
        dns.append(nic.get("PrivateDnsName"))
        ips.append(nic.get("PrivateIpAddress"))
        for addr in nic.get("PrivateIpAddresses") or []:
            dns.append(addr.get("PrivateDnsName"))
            ips.append(addr.get("PrivateIpAddress"))
    for name in dns:
        if name:
            names += [name.lower(), name.split(".")[0].lower()]
    names += [ip for ip in ips if ip]
    return list(dict.fromkeys(names))


def _valid_to(instance: dict[str, Any]) -> datetime | None:
    if (instance.get("State") or {}).get("Name") not in _ENDED:
        return None
    m = _STOPPED_AT.search(instance.get("StateTransitionReason") or "")
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S") if m else None


def parse_instances(pages: Iterable[dict[str, Any]], patterns: Sequence[str]) -> list[dict[str, Any]]:
    """The accelerator instances of DescribeInstances pages."""
    return [i for page in pages for res in page.get("Reservations", []) for i in res.get("Instances", [])
            if is_accelerated(i.get("InstanceType", ""), patterns)]


def to_rows(instances: Sequence[dict[str, Any]], counts: dict[str, int | None], region: str,
            observed_at: datetime, rules: TagRules) -> pa.Table:
    """Inventory rows: id, key, type, accelerators, host names, tags (raw JSON and dims), validity."""
    rows = []
    for inst in sorted(instances, key=lambda i: i["InstanceId"]):
        tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags") or []}
        dims = rules.dims_from_tags(tags)
        launched = inst.get("LaunchTime")
        rows.append({
            "observed_at": observed_at, "provider_name": "AWS", "resource_id": inst["InstanceId"],
            "resource_key": resource_key(inst["InstanceId"]), "instance_type": inst.get("InstanceType"),
            "gpu_count": counts.get(inst.get("InstanceType", "")), "host_names": host_names(inst),
            "region_id": region, "tags": json.dumps(tags, sort_keys=True) if tags else None,
            **{d: dims.get(d) for d in DIMS},
            "valid_from": to_utc_naive(launched) if isinstance(launched, datetime) else None,
            "valid_to": _valid_to(inst),
        })
    return pa.Table.from_pylist(rows, schema=INVENTORY_SCHEMA)


def observed_time(window: Window, now: datetime) -> datetime:
    """Now, clamped into the window: the snapshot must fall inside the window it replaces."""
    return min(max(now, window.start), window.end - timedelta(microseconds=1))


def _gpu_counts(ec2: Any, types: Sequence[str], what: str, fail: Any) -> dict[str, int | None]:
    counts: dict[str, int | None] = {t: KNOWN_ACCELERATORS.get(t) for t in types}
    pending = [list(types)] if types else []
    while pending:
        batch = pending.pop()
        try:
            for page in ec2.get_paginator("describe_instance_types").paginate(InstanceTypes=batch):
                for info in page.get("InstanceTypes", []):
                    counts[info["InstanceType"]] = accelerator_count(info)
        except ClientError as exc:
            # A type unknown to this endpoint fails the whole call: ask for the others one by one.
            if exc.response.get("Error", {}).get("Code") == "InvalidInstanceType" and len(batch) > 1:
                pending += [[t] for t in batch]
            elif exc.response.get("Error", {}).get("Code") != "InvalidInstanceType":
                raise fail(exc, f"{what} DescribeInstanceTypes") from None
        except BotoCoreError as exc:
            raise fail(exc, f"{what} DescribeInstanceTypes") from None
    return counts


def collect_region(ec2: Any, settings: Settings, region: str, window: Window, count: RequestCount,
                   now: datetime) -> Batch:
    aws = settings.aws
    what = f"EC2 {region}"

    def fail(exc: Exception, op: str) -> SourceFailed:
        return failure(exc, op, aws, count)

    try:
        pages = list(ec2.get_paginator("describe_instances").paginate())
    except (ClientError, BotoCoreError) as exc:
        raise fail(exc, f"{what} DescribeInstances") from None
    instances = parse_instances(pages, aws.gpu_instance_patterns)
    types = sorted({i["InstanceType"] for i in instances})
    counts = _gpu_counts(ec2, types, what, fail)
    observed = observed_time(window, now)
    table = to_rows(instances, counts, region, observed, tag_rules(settings))
    return Batch(facts={"inventory": table}, requests=count.sent,
                 details={"region": region, "instances": len(instances), "instance_types": types})


def tasks(settings: Settings, window: Window, progress: Progress | None = None, *,
          now: datetime) -> list[Task]:
    """One task per configured region; scope `ec2:<region>` so a failing region leaves others as they were."""
    session = AwsSession(settings.aws)
    regions = list(dict.fromkeys(settings.aws.regions))

    def make(i: int, region: str) -> Task:
        def fetch() -> Batch:
            count = RequestCount()
            batch = collect_region(session.client("ec2", count, region=region), settings, region, window, count,
                                   now)
            if progress:
                progress(i + 1, len(regions))
            return batch
        return Task(scope=f"ec2:{region}", window=window, fetch=fetch)

    return [make(i, r) for i, r in enumerate(regions)]

