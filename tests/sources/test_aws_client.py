"""Building AWS clients in one place: default chain, assumed role (moto's STS), endpoints, retries."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from finops.settings import AwsSettings
from finops.sources.aws.client import AwsSession, RequestCount, aws_spellings, client_config, failure
from tests.support import moto as doubles
from tests.support.moto import SECRET

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures


def test_assumed_role_credentials_are_used(moto: str, aws_env: None) -> None:
    aws = AwsSettings(endpoint_url=moto, role_arn="arn:aws:iam::123456789012:role/finops-reader")
    count = RequestCount()
    session = AwsSession(aws).session(count)
    creds = session.get_credentials().get_frozen_credentials()
    assert count.sent == 1                                     # one AssumeRole call
    assert creds.access_key != "AKIATESTINGFAKEKEY01" and creds.token
    s3 = AwsSession(aws).client("s3", count)
    s3.create_bucket(Bucket="finops-bucket")
    assert count.sent == 3 and [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["finops-bucket"]


def test_endpoints_regions_and_retries_come_from_settings(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AwsSettings(endpoint_url="http://127.0.0.1:1", endpoint_urls={"ce": "http://127.0.0.1:2"},
                      max_attempts=4, retry_mode="adaptive")
    session = AwsSession(aws)
    count = RequestCount()
    assert session.client("ce", count, region="us-east-1").meta.endpoint_url == "http://127.0.0.1:2"
    ec2 = session.client("ec2", count, region="eu-west-1")
    assert (ec2.meta.endpoint_url, ec2.meta.region_name) == ("http://127.0.0.1:1", "eu-west-1")
    assert client_config(aws).retries == {"mode": "adaptive", "total_max_attempts": 4}
    # Without overrides boto3's own configuration decides, e.g. AWS_ENDPOINT_URL_<SERVICE>.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:3")
    assert AwsSession(AwsSettings()).client("s3", count).meta.endpoint_url == "http://127.0.0.1:3"


def test_failures_name_the_problem_and_never_credentials() -> None:
    aws = AwsSettings(retry_mode="standard")
    err = ClientError({"Error": {"Code": "UnrecognizedClientException",
                                 "Message": "The security token AKIAABCDEFGHIJKLMNOP is invalid"},
                       "ResponseMetadata": {"RetryAttempts": 0}}, "GetCostAndUsage")
    msg = str(failure(err, "Cost Explorer", aws, RequestCount(3)))
    assert msg == "Cost Explorer: AWS answered UnrecognizedClientException: The security token <access-key-id> is invalid"
    throttled = ClientError({"Error": {"Code": "LimitExceededException", "Message": "Rate exceeded"},
                             "ResponseMetadata": {"RetryAttempts": 4}}, "GetCostAndUsage")
    f = failure(throttled, "Cost Explorer", aws, RequestCount(5))
    assert "after 5 attempt(s) in standard retry mode" in str(f) and f.requests == 5
    assert SECRET not in str(failure(NoCredentialsError(), "AWS session", aws, RequestCount()))


def test_aws_spellings_of_a_tag_key() -> None:
    assert aws_spellings("ModelID") == ["ModelID", "user:ModelID", "user_modelid", "user_model_i_d",
                                        "resourceTags/user:ModelID"]
    assert "user_cost_center" in aws_spellings("cost-center")
