"""Alert channels: generic webhook (JSON), Slack incoming webhook (Block Kit), Alertmanager v2.

Payloads are built by pure functions (one per channel type, in `PAYLOADS`); `deliver` posts one
notification with retries and backoff on connection errors, 429 and 5xx. Errors name the channel
and the HTTP status, never the URL (Slack and webhook URLs carry secrets). Nor do logs: httpx logs
every request with its URL at INFO, and `HideChannelUrls` (on the `httpx` logger) replaces the URL
of a delivery with the URL's scheme and host and the channel's name, whatever the log level.
"""

from __future__ import annotations

import contextvars
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from finops.settings.alerts import Channel
from finops.timeutil import to_utc_naive


@dataclass(frozen=True)
class Notification:
    """What a channel is told: an alert instance firing (again) or resolved."""

    kind: Literal["firing", "resolved"]
    key: str
    rule: str
    severity: str
    summary: str
    dims: dict[str, str]
    link: str
    started_at: datetime
    # Alertmanager keeps a firing alert active until `ends_at`; for a resolved one it is the resolve time.
    ends_at: datetime
    amount: Decimal | None = None
    currency: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    status: Literal["sent", "failed"]
    attempts: int
    error: str | None = None


def _iso(ts: datetime) -> str:
    return to_utc_naive(ts).isoformat(timespec="seconds") + "Z"


def _money(n: Notification) -> str | None:
    if n.amount is None:
        return None
    return f"{n.amount.quantize(Decimal('0.01'))} {n.currency or ''}".strip()


def webhook_payload(n: Notification) -> dict[str, Any]:
    return {
        "status": n.kind, "key": n.key, "rule": n.rule, "severity": n.severity, "summary": n.summary,
        "dims": n.dims, "amount": None if n.amount is None else str(n.amount.quantize(Decimal("0.01"))),
        "currency": n.currency, "link": n.link, "started_at": _iso(n.started_at),
        "resolved_at": _iso(n.ends_at) if n.kind == "resolved" else None,
        "details": {k: _plain(v) for k, v in n.details.items()},
    }


def _plain(v: Any) -> Any:
    """JSON-safe: money and ratios as exact strings, times as ISO 8601."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return _iso(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


def _slack_link(link: str) -> str:
    # Slack only renders absolute links; a relative one is shown as code for the reader to open.
    return f"<{link}|Open the report>" if link.startswith(("http://", "https://")) else f"Report: `{link}`"


def slack_payload(n: Notification) -> dict[str, Any]:
    state = "FIRING" if n.kind == "firing" else "RESOLVED"
    title = f"[{state}] {n.rule} ({n.severity})"
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in n.dims.items()]
    money = _money(n)
    if money:
        fields.insert(0, {"type": "mrkdwn", "text": f"*amount*\n{money}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": n.summary[:3000]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})  # Slack allows at most 10 fields
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_link(n.link)}]})
    return {"text": f"{title}: {n.summary}"[:3000], "blocks": blocks}


def alertmanager_payload(n: Notification) -> list[dict[str, Any]]:
    """One alert of Alertmanager's v2 API. Labels are the stable identity; figures go in annotations."""
    labels = {k: v for k, v in {"alertname": n.rule, "severity": n.severity, "alert_key": n.key, **n.dims}.items()
              if v not in (None, "")}  # an empty label is no label to Alertmanager
    annotations = {"summary": n.summary, "link": n.link}
    money = _money(n)
    if money:
        annotations["amount"] = money
    return [{"labels": {k: str(v) for k, v in labels.items()}, "annotations": annotations,
             "startsAt": _iso(n.started_at), "endsAt": _iso(n.ends_at), "generatorURL": n.link}]


PAYLOADS: dict[str, Callable[[Notification], Any]] = {
    "webhook": webhook_payload, "slack": slack_payload, "alertmanager": alertmanager_payload,
}
PATHS = {"webhook": "", "slack": "", "alertmanager": "/api/v2/alerts"}
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _post(client: httpx.Client, url: str, body: Any, name: str) -> tuple[str, str]:
    """One attempt: ("sent", ""), or ("retry" | "failed", the error naming the channel, never its URL)."""
    try:
        resp = client.post(url, json=body)
    except httpx.HTTPError as exc:  # connection refused, timeout, protocol error: transient
        return "retry", f"{name}: {type(exc).__name__}"
    if resp.is_success:
        return "sent", ""
    return ("retry" if resp.status_code in RETRY_STATUS else "failed"), \
        f"{name}: HTTP {resp.status_code} {resp.reason_phrase}"


# The channel being delivered to on this thread (httpx logs from the thread that sends): the forms
# its URL may be logged in, and the text that replaces them.
_delivering: contextvars.ContextVar[tuple[tuple[str, ...], str] | None] = contextvars.ContextVar(
    "finops_channel_delivery", default=None)


class HideChannelUrls(logging.Filter):
    """Masks the URL of the channel being delivered to (its path and query carry secrets).

    On the `httpx` logger: while `deliver` posts, an httpx.URL argument becomes
    `<scheme>://<host>/... (channel <name>)`, and so does the URL wherever a message or a string
    argument holds it. Records outside a delivery pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _delivering.get()
        if current is None:
            return True
        forms, safe = current

        def mask(value: Any) -> Any:
            if isinstance(value, httpx.URL):
                return safe
            if isinstance(value, str):
                for form in forms:
                    value = value.replace(form, safe)
            return value

        if isinstance(record.args, tuple):
            record.args = tuple(mask(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: mask(v) for k, v in record.args.items()}
        record.msg = mask(record.msg)
        return True


def _masked(url: str, name: str) -> tuple[tuple[str, ...], str]:
    """The forms of `url` to look for (as configured, and as httpx writes it) and what replaces them."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return (url,), f"<url> (channel {name})"
    port = f":{parsed.port}" if parsed.port else ""
    forms = sorted({url, str(parsed)}, key=len, reverse=True)  # longest first: no partial leftovers
    return tuple(forms), f"{parsed.scheme}://{parsed.host}{port}/... (channel {name})"


def _install_log_filter() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, HideChannelUrls) for f in logger.filters):
        logger.addFilter(HideChannelUrls())


_install_log_filter()


def deliver(channel: Channel, n: Notification, sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST one notification, retrying transient failures with exponential backoff
    (`backoff_seconds`, then twice that, ... for up to `max_attempts` attempts)."""
    base, path = channel.url.get_secret_value(), PATHS[channel.type]
    url = base.rstrip("/") + path if path else base
    headers = {k: v.get_secret_value() for k, v in channel.headers.items()}
    verify = ssl.create_default_context(cafile=channel.verify_tls) if isinstance(channel.verify_tls, str) \
        else channel.verify_tls  # a CA bundle path
    retrying = Retrying(stop=stop_after_attempt(channel.max_attempts),
                        wait=wait_exponential(multiplier=channel.backoff_seconds),
                        retry=retry_if_result(lambda outcome: outcome[0] == "retry"), sleep=sleep,
                        retry_error_callback=lambda state: state.outcome.result() if state.outcome else ("failed", ""))
    token = _delivering.set(_masked(url, channel.name))
    try:
        with httpx.Client(timeout=channel.timeout_seconds, verify=verify, headers=headers) as client:
            status, error = retrying(_post, client, url, PAYLOADS[channel.type](n), channel.name)
    finally:
        _delivering.reset(token)
    attempts = int(retrying.statistics["attempt_number"])
    return Delivery("sent", attempts) if status == "sent" else Delivery("failed", attempts, error)
