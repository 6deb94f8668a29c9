"""`finops collect aws --start --end` end to end against moto: inventory, Cost Explorer, exports."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.cli import common as cli_common
from finops.settings import AwsSettings, Settings
from finops.store import open_store
from tests.sources.test_aws_ce import SCENARIO, WINDOW, record
from tests.sources.test_aws_exports import BUCKET, DATA, META, NEW_ROWS, manifest, parquet
from tests.support import moto as doubles
from tests.support.clock import FixedClock
from tests.support.moto import FakeBill, queue_ce

pytestmark = pytest.mark.clock  # data and expectations are placed relative to the suite's clock

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures


def test_collect_aws_runs_inventory_and_one_cost_source(moto: str, aws_env: None, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto)
    ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1, InstanceType="g6.xlarge")
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto)
    s3.create_bucket(Bucket=BUCKET)
    data = f"{DATA}/BILLING_PERIOD=2026-11/cur2-00001.snappy.parquet"
    s3.put_object(Bucket=BUCKET, Key=data, Body=parquet(NEW_ROWS))
    s3.put_object(Bucket=BUCKET, Key=f"{META}/BILLING_PERIOD=2026-11/cur2-Manifest.json", Body=manifest([data]))
    queue_ce(moto, record(FakeBill(SCENARIO), Settings(db=tmp_path / "rec.duckdb", aws=AwsSettings()), WINDOW))

    db = tmp_path / "cli.duckdb"
    env = {"FINOPS_DB": str(db), "FINOPS_AWS_ENDPOINT_URL": moto, "FINOPS_AWS_EXPORT_BUCKET": BUCKET,
           "FINOPS_AWS_EXPORT_PREFIX": "exports", "FINOPS_AWS_MAX_ATTEMPTS": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(cli_common, "CLOCK", FixedClock())  # the CLI's clock is the suite's
    result = CliRunner().invoke(app, ["collect", "aws", "--start", "2026-11-02", "--end", "2026-11-05"])
    assert result.exit_code == 0, result.output

    # With an export bucket the exports are the cost source: Cost Explorer would count the same spend twice.
    store = open_store(db)
    try:
        runs = store.query("SELECT source, status FROM source_runs ORDER BY run_id")
        assert runs == [("aws_inventory", "succeeded"), ("aws_exports", "succeeded")]
        counts = dict(store.query("SELECT source, count(*) FROM cost_lines GROUP BY source"))
        assert counts == {"aws_exports": len(NEW_ROWS)}
        assert store.query("SELECT instance_type, gpu_count FROM inventory") == [("g6.xlarge", 1)]
    finally:
        store.close()

    monkeypatch.setenv("FINOPS_AWS_COST_SOURCE", "cost_explorer")
    ce_days = ["--start", f"{WINDOW.start:%Y-%m-%d}", "--end", f"{WINDOW.end:%Y-%m-%d}"]
    result = CliRunner().invoke(app, ["collect", "aws", *ce_days])
    assert result.exit_code == 0, result.output
    store = open_store(db)
    try:
        runs = store.query("SELECT source, status FROM source_runs WHERE run_id > 2 ORDER BY run_id")
        assert runs == [("aws_inventory", "succeeded"), ("aws_ce", "succeeded")]
        assert store.query("SELECT count(*) FROM cost_lines WHERE source = 'aws_ce'")[0][0] > 0
    finally:
        store.close()
