"""Talking to the Azure Cost Management Query API: the one place the client is built, paging, throttling.

`make_client` builds the `CostManagementClient` (DefaultAzureCredential unless a credential is passed,
`base_url` and TLS verification from settings, HTTPS always enforced). `CostQueries.pages` runs one
query to its last page: the SDK does not follow `nextLink`, so the same body is re-POSTed to it; a 429
is waited out as the quota headers say, a bounded number of times; requests are spaced per tenant.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.policies._utils import parse_retry_after
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.costmanagement import CostManagementClient
from azure.mgmt.costmanagement.models import QueryDefinition
from tenacity import RetryCallState, Retrying, retry_if_result

from finops.batch import SourceFailed
from finops.settings import AzureSettings

log = logging.getLogger(__name__)

# Every header Cost Management uses to say how long to back off; the largest one wins.
THROTTLE_HEADERS = (
    "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after",
    "retry-after",
)
# A 429 without any header: start at the shortest quota window (10 s) and double.
DEFAULT_THROTTLE_WAIT = 10.0


class _ThrottlingLeftToCaller(RetryPolicy):
    """azure-core's retries for connection errors and 5xx, but never for 429.

    azure-core would retry a 429 by itself only when a plain Retry-After is present, sleeping outside
    our control and ignoring the Cost Management quota headers; the collector handles every 429.
    """

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        if response.http_response.status_code == 429:
            return False
        return bool(super().is_retry(settings, response))


class RequestCounter:
    """Counts every HTTP attempt the client makes (azure-core's own retries included)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: PipelineRequest[Any]) -> None:
        self.count += 1


def default_credential() -> TokenCredential:
    """DefaultAzureCredential: environment, workload or managed identity, Azure CLI, ..."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def check_base_url(azure: AzureSettings) -> str:
    """`azure.base_url` without a trailing slash; anything but https is refused."""
    base = azure.base_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme != "https" or not parts.netloc:
        # Bearer tokens must never travel in clear text: fail here rather than switch the guard off.
        raise ValueError(f"azure.base_url must be an https:// URL, got {azure.base_url!r}")
    return base


def make_client(azure: AzureSettings, credential: TokenCredential | None = None,
                on_request: Callable[[PipelineRequest[Any]], None] | None = None) -> CostManagementClient:
    """The Cost Management client for `azure.base_url` (https only), counting requests in `on_request`."""
    base = check_base_url(azure)
    if azure.verify_tls is False:
        log.warning("TLS certificate verification is off for %s (azure.verify_tls = false)", base)
    return CostManagementClient(
        credential if credential is not None else default_credential(),
        base_url=base,
        credential_scopes=[azure.credential_scope or f"{base}/.default"],
        connection_verify=azure.verify_tls,
        read_timeout=azure.timeout_seconds,
        retry_policy=_ThrottlingLeftToCaller(retry_total=azure.transport_retries),
        raw_request_hook=on_request,
    )


def throttle_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds Azure asks to wait after a 429: the largest of its quota headers; None if it says nothing."""
    lowered = {k.lower(): v for k, v in headers.items()}
    waits = []
    for name in THROTTLE_HEADERS:
        value = lowered.get(name)
        if value:
            try:
                waits.append(parse_retry_after(value.strip()))
            except (ValueError, TypeError):
                log.warning("ignoring unreadable %s header %r", name, value)
    waits = [w for w in waits if math.isfinite(w)]
    return max(waits) if waits else None


def default_wait(attempt: int, limit: float) -> float:
    """Our own guess after the `attempt`-th 429 without a header: 10 s doubling, at most `limit`."""
    return min(DEFAULT_THROTTLE_WAIT * 2 ** (attempt - 1), limit)


class Pacer:
    """Keeps at least `interval` seconds between requests (the quota is per tenant, so share one)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval, self._clock, self._sleep = interval, clock, sleep
        self._last: float | None = None

    def wait(self) -> None:
        if self._last is not None and self.interval > 0:
            gap = self._last + self.interval - self._clock()
            if gap > 0:
                self._sleep(gap)
        self._last = self._clock()


def _raw(pipeline_response: PipelineResponse[Any, Any], deserialized: Any, headers: Any) -> Any:
    # The same raw response as `send_request` gives, so both pages go through one reader.
    return pipeline_response.http_response


def _error_text(resp: HttpResponse) -> str:
    try:
        error = resp.json().get("error") or {}
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")[:300]
    except (ValueError, AttributeError):
        return (resp.text() or "")[:300]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


@dataclass(frozen=True)
class _Throttled:
    """A 429: why, and how long Azure said to wait (None: it did not say)."""

    reason: str
    told: float | None


class CostQueries:
    """Runs Cost Management queries on one client, with its throttling and paging rules."""

    def __init__(self, client: CostManagementClient, azure: AzureSettings, counter: RequestCounter,
                 pacer: Pacer, sleep: Callable[[float], None] = time.sleep):
        self._client, self._azure, self._counter, self._pacer, self._sleep = client, azure, counter, pacer, sleep
        self._host = urlsplit(azure.base_url.strip()).netloc.lower()

    @property
    def requests(self) -> int:
        return self._counter.count

    def pages(self, scope: str, query: QueryDefinition) -> Iterator[dict[str, Any]]:
        """Each page's `properties` ({"columns", "rows", "nextLink"}); nothing for a 204."""
        body = query.as_dict()
        what = f"{body['type']} query on {scope}"
        first = partial(self._client.query.usage, scope=scope, parameters=query, cls=_raw)
        resp = self._send(cast(Callable[[], HttpResponse], first), what)
        seen: set[str] = set()
        while resp is not None:
            props = self._properties(resp, what)
            yield props
            link = props.get("nextLink")
            if not link:
                return
            self._check_link(str(link), seen, what)
            resp = self._send(partial(self._client.send_request, HttpRequest("POST", str(link), json=body)), what)

    def _check_link(self, link: str, seen: set[str], what: str) -> None:
        parts = urlsplit(link)
        if parts.scheme != "https" or parts.netloc.lower() != self._host:
            # The client would attach our token to any https URL: only follow links to our endpoint.
            raise SourceFailed(f"{what}: nextLink points outside {self._azure.base_url}", self.requests)
        if link in seen:
            raise SourceFailed(f"{what}: nextLink repeats an earlier page", self.requests)
        seen.add(link)

    def _properties(self, resp: HttpResponse, what: str) -> dict[str, Any]:
        try:
            props = resp.json()["properties"]
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            raise SourceFailed(f"{what}: the answer is not a query result: {resp.text()[:200]!r}",
                               self.requests) from None
        if not isinstance(props, dict):
            raise SourceFailed(f"{what}: the answer's properties are not an object", self.requests)
        return props

    def _send(self, call: Callable[[], HttpResponse], what: str) -> HttpResponse | None:
        """One request, repeated while throttled (tenacity: wait as Azure says, at most `max_attempts`
        tries); the 200 response, None for 204, else SourceFailed."""
        azure = self._azure

        def throttled(state: RetryCallState) -> _Throttled:
            assert state.outcome is not None  # tenacity asks only after an attempt
            return cast(_Throttled, state.outcome.result())

        def wait(state: RetryCallState) -> float:
            told = throttled(state).told
            return default_wait(state.attempt_number, azure.max_wait_seconds) if told is None else told

        def stop(state: RetryCallState) -> bool:  # out of tries, or told to wait beyond our limit
            return state.attempt_number >= azure.max_attempts or wait(state) > azure.max_wait_seconds

        def give_up(state: RetryCallState) -> None:
            reason, waited = throttled(state).reason, wait(state)
            if waited > azure.max_wait_seconds:
                raise SourceFailed(f"{reason}; Azure asks to wait {waited:g} s, more than "
                                   f"azure.max_wait_seconds = {azure.max_wait_seconds:g}", self.requests)
            raise SourceFailed(f"{reason} on all {state.attempt_number} attempts (azure.max_attempts); try later",
                               self.requests)

        def before_sleep(state: RetryCallState) -> None:
            log.info("%s; waiting %.3g s as told (attempt %d of %d)", throttled(state).reason, wait(state),
                     state.attempt_number, azure.max_attempts)

        retrying = Retrying(retry=retry_if_result(lambda r: isinstance(r, _Throttled)), wait=wait,
                            stop=stop, sleep=self._sleep,
                            before_sleep=before_sleep, retry_error_callback=give_up)
        result = retrying(self._attempt, call, what)
        return cast(HttpResponse | None, result)

    def _attempt(self, call: Callable[[], HttpResponse], what: str) -> HttpResponse | _Throttled | None:
        """One paced request: the response (200), None (204), a `_Throttled` (429), else SourceFailed."""
        self._pacer.wait()
        try:
            resp = call()
        except ClientAuthenticationError as exc:
            if exc.response is None:
                raise SourceFailed(f"Azure authentication failed: {_first_line(exc)}", self.requests) from None
            resp = cast(HttpResponse, exc.response)
        except HttpResponseError as exc:
            if exc.response is None:
                raise SourceFailed(f"{what} failed: {_first_line(exc)}", self.requests) from None
            resp = cast(HttpResponse, exc.response)
        except AzureError as exc:
            raise SourceFailed(f"{what}: cannot reach {self._azure.base_url}: {_first_line(exc)}",
                               self.requests) from None
        if resp.status_code == 200:
            return resp
        if resp.status_code == 204:
            return None
        if resp.status_code != 429:
            raise SourceFailed(f"{what} failed: HTTP {resp.status_code} {_error_text(resp)}", self.requests)
        return _Throttled(f"{what}: throttled by Azure (HTTP 429 {_error_text(resp)})", throttle_wait(resp.headers))
