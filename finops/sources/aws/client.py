"""AWS clients, built in one place: credentials, role, region, endpoint, retries and request counts.

Credentials come from boto3's default chain (environment, profiles, SSO, instance and container
roles), optionally from a named profile, then optionally an assumed role. Nothing here logs or
returns credentials; error messages carry AWS's error code and message only, with key ids masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from finops.batch import SourceFailed
from finops.settings import AwsSettings, Settings
from finops.tags import TagRules

# Error codes AWS uses for throttling; botocore's standard/adaptive modes retry them before we see them.
THROTTLING_CODES = frozenset({
    "LimitExceededException", "ThrottlingException", "Throttling", "ThrottledException",
    "RequestLimitExceeded", "TooManyRequestsException", "SlowDown",
})
_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")


@dataclass
class RequestCount:
    """HTTP requests sent by the clients of one task, retries included (each answered one may be billed)."""

    sent: int = 0

    def on_send(self, **_: Any) -> None:
        self.sent += 1


def client_config(aws: AwsSettings) -> Config:
    """Bounded retries in `standard` or `adaptive` mode (legacy mode would not retry throttling)."""
    return Config(
        retries={"mode": aws.retry_mode, "total_max_attempts": max(1, aws.max_attempts)},
        connect_timeout=aws.connect_timeout_seconds,
        read_timeout=aws.read_timeout_seconds,
        user_agent_extra="finops",
    )


def endpoint_for(aws: AwsSettings, service: str) -> str | None:
    """The configured endpoint of `service`; None lets boto3 resolve it (incl. AWS_ENDPOINT_URL*)."""
    return aws.endpoint_urls.get(service) or aws.endpoint_url


class AwsSession:
    """One boto3 session per collection (the role is assumed once, lazily); clients per task."""

    def __init__(self, aws: AwsSettings):
        self.aws = aws
        self._session: boto3.Session | None = None

    def _build(self, count: RequestCount) -> boto3.Session:
        base = boto3.Session(profile_name=self.aws.profile, region_name=self.aws.regions[0] if self.aws.regions else None)
        if not self.aws.role_arn:
            return base
        sts = base.client("sts", endpoint_url=endpoint_for(self.aws, "sts"), config=client_config(self.aws))
        sts.meta.events.register("before-send", count.on_send)
        args: dict[str, Any] = {"RoleArn": self.aws.role_arn, "RoleSessionName": self.aws.role_session_name}
        if self.aws.external_id:
            args["ExternalId"] = self.aws.external_id
        creds = sts.assume_role(**args)["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=base.region_name,
        )

    def session(self, count: RequestCount) -> boto3.Session:
        if self._session is None:
            try:
                self._session = self._build(count)
            except (ClientError, BotoCoreError) as exc:
                raise failure(exc, f"assuming role {self.aws.role_arn}" if self.aws.role_arn else "AWS session",
                              self.aws, count) from None
        return self._session

    def client(self, service: str, count: RequestCount, region: str | None = None) -> Any:
        """A client of `service` whose HTTP requests (retries included) are counted in `count`."""
        session = self.session(count)
        try:
            client = session.client(service, region_name=region or session.region_name or "us-east-1",
                                    endpoint_url=endpoint_for(self.aws, service), config=client_config(self.aws))
        except (ClientError, BotoCoreError) as exc:
            raise failure(exc, f"creating the {service} client", self.aws, count) from None
        client.meta.events.register("before-send", count.on_send)
        return client


def _mask(text: str) -> str:
    return _KEY_ID.sub("<access-key-id>", text)


def failure(exc: Exception, what: str, aws: AwsSettings, count: RequestCount) -> SourceFailed:
    """A user-safe SourceFailed for a boto error: the code and AWS's message, never credentials."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = _mask(str(err.get("Message", "")))
        attempts = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
        if code in THROTTLING_CODES:
            return SourceFailed(
                f"{what}: throttled by AWS ({code}) and still throttled after {attempts} attempt(s) in "
                f"{aws.retry_mode} retry mode: {message}", requests=count.sent)
        return SourceFailed(f"{what}: AWS answered {code}: {message}", requests=count.sent)
    return SourceFailed(f"{what}: {type(exc).__name__}: {_mask(str(exc))}", requests=count.sent)


def aws_spellings(key: str) -> list[str]:
    """How AWS exports may spell a user tag key: `ModelID`, `user:ModelID`, `user_modelid`, `user_model_i_d`."""
    plain = re.sub(r"[^0-9A-Za-z]+", "_", key).strip("_")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", plain).lower()
    return list(dict.fromkeys([key, f"user:{key}", f"user_{plain.lower()}", f"user_{snake}",
                               f"resourceTags/user:{key}"]))


def tag_rules(settings: Settings) -> TagRules:
    """TagRules from settings, plus the AWS spellings of the configured AWS tag keys as aliases."""
    extra: dict[str, list[str]] = {dim: list(settings.tag_aliases.get(dim, [])) for dim in settings.dims}
    for dim, key in settings.aws.tag_keys.items():
        if dim in extra:
            extra[dim] += aws_spellings(key)
    return TagRules.build(settings.dims, extra, settings.missing_values, settings.lowercase_values)
