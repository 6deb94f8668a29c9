"""EC2 GPU inventory against moto's EC2: accelerator hosts with tags, types, GPU counts and host names."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import boto3

from finops.collect import collect
from finops.settings import AwsSettings, Settings
from finops.sources.aws import inventory as aws_inventory
from finops.store import Store
from finops.timeutil import Window
from tests.support import moto as doubles

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures
WINDOW = Window.from_dates(date(2026, 11, 2), date(2026, 11, 3))
TAGS = {"Project": "Chatbot", "Team": "coreai", "Environment": "prod", "ModelID": "llama-70b", "Name": "gpu-1"}


def ec2(url: str, region: str) -> Any:
    return boto3.client("ec2", region_name=region, endpoint_url=url)


def launch(client: Any, instance_type: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    image = "ami-0123456789abcdef0"  # moto launches from any image id (default AMIs are not loaded)
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type,
                                TagSpecifications=spec)["Instances"][0]


def test_gpu_hosts_map_to_tags_type_and_host_names(moto: str, aws_env: None, settings: Settings, store: Store) -> None:
    east, west = ec2(moto, "us-east-1"), ec2(moto, "us-west-2")
    gpu = launch(east, "g5.xlarge", TAGS)
    launch(east, "m5.large", {"Project": "web"})          # not an accelerator host: left out
    big = launch(west, "p4d.24xlarge")                     # untagged, other region
    trn = launch(west, "trn1.2xlarge", {"user:Project": "train"})
    s = settings.model_copy(update={"aws": AwsSettings(endpoint_url=moto, regions=["us-east-1", "us-west-2"])})

    results = collect(store, s, "aws_inventory", WINDOW)
    assert [(r.status, r.rows) for r in results] == [("succeeded", 1), ("succeeded", 2)]

    # A telemetry host name (the short private DNS name) finds the billed instance and its tags.
    short = gpu["PrivateDnsName"].split(".")[0]
    rows = store.query(
        "SELECT resource_id, resource_key, instance_type, gpu_count, region_id, tags, project, team, environment, "
        "model_id, host_names, observed_at, scope FROM inventory WHERE list_contains(host_names, ?)", [short])
    assert len(rows) == 1
    rid, key, itype, gpus, region, tags, *dims, hosts, observed, scope = rows[0]
    assert (rid, key, itype, gpus, region, scope) == (gpu["InstanceId"], gpu["InstanceId"].lower(), "g5.xlarge", 1,
                                                      "us-east-1", "ec2:us-east-1")
    assert json.loads(tags) == TAGS
    assert dims == ["chatbot", "coreai", "prod", "llama-70b"]
    assert gpu["PrivateDnsName"] in hosts and gpu["PrivateIpAddress"] in hosts
    assert WINDOW.start <= observed < WINDOW.end

    west_rows = dict(store.query("SELECT resource_id, gpu_count FROM inventory WHERE region_id = 'us-west-2'"))
    assert west_rows == {big["InstanceId"]: 8, trn["InstanceId"]: 1}
    assert store.query("SELECT project FROM inventory WHERE resource_id = ?", [trn["InstanceId"]]) == [("train",)]

    # Collecting the same window again replaces the snapshot, it does not add to it.
    collect(store, s, "aws_inventory", WINDOW)
    assert store.query("SELECT count(*) FROM inventory")[0][0] == 3


def test_parse_helpers_on_a_recorded_instance() -> None:
    inst = {
        "InstanceId": "i-0ABC", "InstanceType": "p5.48xlarge", "PrivateDnsName": "ip-10-0-0-5.ec2.internal",
        "PrivateIpAddress": "10.0.0.5", "LaunchTime": datetime(2026, 11, 1, 8, 0),
        "State": {"Name": "stopped"}, "StateTransitionReason": "User initiated (2026-11-02 10:00:00 GMT)",
        "NetworkInterfaces": [{"PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.5"},
                                                      {"PrivateIpAddress": "10.0.1.9",
                                                       "PrivateDnsName": "ip-10-0-1-9.ec2.internal"}]}],
        "Tags": [{"Key": "project", "Value": " Search "}],
    }
    pages = [{"Reservations": [{"Instances": [inst, {**inst, "InstanceId": "i-1", "InstanceType": "c7g.large"}]}]}]
    found = aws_inventory.parse_instances(pages, AwsSettings().gpu_instance_patterns)
    assert [i["InstanceId"] for i in found] == ["i-0ABC"]
    assert aws_inventory.host_names(inst) == ["ip-10-0-0-5.ec2.internal", "ip-10-0-0-5", "ip-10-0-1-9.ec2.internal",
                                              "ip-10-0-1-9", "10.0.0.5", "10.0.1.9"]
    from finops.sources.aws.client import tag_rules
    table = aws_inventory.to_rows(found, {"p5.48xlarge": 8}, "eu-west-1", datetime(2026, 11, 2, 12),
                                  tag_rules(Settings()))
    row = table.to_pylist()[0]
    assert (row["resource_key"], row["project"], row["gpu_count"]) == ("i-0abc", "search", 8)
    assert (row["valid_from"], row["valid_to"]) == (datetime(2026, 11, 1, 8), datetime(2026, 11, 2, 10))
    assert aws_inventory.accelerator_count({"InstanceType": "dl1.24xlarge"}) == 8
    assert aws_inventory.accelerator_count({"InferenceAcceleratorInfo": {"Accelerators": [{"Count": 2}]}}) == 2


def test_observed_time_stays_inside_the_window() -> None:
    past = Window.from_dates(date(2026, 1, 1), date(2026, 1, 2))
    assert aws_inventory.observed_time(past, datetime(2026, 11, 23)) < past.end
    assert aws_inventory.observed_time(past, datetime(2025, 1, 1)) == past.start
    now = datetime(2026, 1, 1, 13)
    assert aws_inventory.observed_time(past, now) == now
