"""The Prometheus HTTP client (built in one place from settings) and range-query chunking.

`run_range` turns every way a query can fail into `QueryFailed` with a reason that is safe to show:
no headers, no credentials from the URL.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from finops.settings import PrometheusSettings
from finops.timeutil import Window

# Prometheus refuses a range query with more than 11,000 points per series.
PROMETHEUS_MAX_POINTS = 11000


class QueryFailed(Exception):
    """A range query failed; the message is safe to show."""


def build_client(cfg: PrometheusSettings) -> PrometheusConnect:
    """A PrometheusConnect for the configured URL, headers, TLS verification, timeout and retries."""
    session = requests.Session()
    session.verify = cfg.verify_tls  # True, False, or a CA bundle path
    retry = Retry(
        total=cfg.max_retries,
        backoff_factor=cfg.retry_backoff_seconds,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=("GET",),
        # Hand the last error response back, so its Prometheus error text reaches the reason.
        raise_on_status=False,
    )
    return PrometheusConnect(
        url=cfg.url.rstrip("/"),
        headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
        retry=retry,
        session=session,
        timeout=cfg.timeout_seconds,
    )


def safe_url(url: str) -> str:
    """`url` without user info, query or fragment, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_BODY = re.compile(r"\((b'.*'|b\".*\")\)\s*$", re.S)


def error_reason(message: str) -> str:
    """The Prometheus error text inside a PrometheusApiClientException message, else the message.

    The client renders a non-200 answer as `HTTP Status Code 400 (b'{"status":"error",...}')`.
    """
    status = re.match(r"HTTP Status Code (\d+)", message)
    prefix = f"HTTP {status.group(1)}" if status else "error"
    body = _BODY.search(message)
    if body:
        try:
            raw: bytes = ast.literal_eval(body.group(1))
            text = raw.decode("utf-8", "replace").strip()
        except (ValueError, SyntaxError):
            text = body.group(1)
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("error"):
            return f"{prefix}: {doc.get('errorType', 'error')}: {doc['error']}"
        return f"{prefix}: {text[:300]}" if text else prefix
    return message[:300]


def run_range(client: PrometheusConnect, expr: str, start: datetime, end: datetime,
              step_seconds: int) -> list[dict[str, Any]]:
    """One `query_range` from `start` to `end` (naive UTC, both evaluated), raw `result` list."""
    return _run(client, lambda: client.custom_query_range(
        expr,
        start_time=start.replace(tzinfo=UTC),  # the client calls .timestamp(): never local time
        end_time=end.replace(tzinfo=UTC),
        step=str(step_seconds),
    ))


def run_instant(client: PrometheusConnect, expr: str, at: int) -> list[dict[str, Any]]:
    """One instant `query` evaluated at Unix second `at`, raw `result` list (a range-vector
    selector such as `c[2h]` answers its raw samples)."""
    return _run(client, lambda: client.custom_query(expr, params={"time": str(at)}))


def _run(client: PrometheusConnect, call: Callable[[], Any]) -> list[dict[str, Any]]:
    try:
        result = call()
    except PrometheusApiClientException as exc:
        raise QueryFailed(error_reason(str(exc))) from None
    except requests.exceptions.JSONDecodeError:
        raise QueryFailed(f"{safe_url(client.url)} answered with something that is not JSON") from None
    except requests.Timeout:
        raise QueryFailed(f"{safe_url(client.url)} did not answer in time") from None
    except requests.RequestException as exc:
        if _timed_out(exc):
            raise QueryFailed(f"{safe_url(client.url)} did not answer in time") from None
        raise QueryFailed(f"{safe_url(client.url)} is unreachable ({type(exc).__name__})") from None
    except (KeyError, TypeError):
        raise QueryFailed(f"{safe_url(client.url)} answered without data.result") from None
    if not isinstance(result, list):
        raise QueryFailed(f"{safe_url(client.url)} answered with a result that is not a list")
    return result


def _timed_out(exc: requests.RequestException) -> bool:
    """A read timeout that exhausted urllib3's retries: requests reports it as a ConnectionError."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)


@dataclass(frozen=True)
class Chunk:
    """Evaluation times `first`..`last` (inclusive, every step): the hours starting first - step."""

    first: datetime
    last: datetime

    def points(self, step_seconds: int) -> int:
        return int((self.last - self.first).total_seconds()) // step_seconds + 1


def plan_chunks(window: Window, step_seconds: int, max_points: int, now: datetime | None = None) -> list[Chunk]:
    """Chunks covering every step-aligned period that starts in `window` (and, given `now`, has
    ended by then), at most `max_points` each.

    The point stamped T describes `[T - step, T)`, so a period starting at s is evaluated at s + step.
    Consecutive chunks never share a point.
    """
    if step_seconds < 1:
        raise ValueError(f"step_seconds must be at least 1, got {step_seconds}")
    if max_points < 1:
        raise ValueError(f"max_points_per_query must be at least 1, got {max_points}")
    step = timedelta(seconds=step_seconds)
    epoch = datetime(1970, 1, 1)
    offset = (window.start - epoch) % step
    first_start = window.start if not offset else window.start - offset + step
    periods = max(0, -(-(window.end - first_start) // step))  # ceil division of timedeltas
    if now is not None:
        periods = min(periods, max(0, (now - first_start) // step))  # only periods that have ended
    chunks = []
    for i in range(0, periods, max_points):
        n = min(max_points, periods - i)
        first = first_start + (i + 1) * step
        chunks.append(Chunk(first, first + (n - 1) * step))
    return chunks
