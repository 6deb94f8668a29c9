"""A key pasted into a URL never reaches the server's access log in clear; an alert channel's URL
(Slack and webhook URLs carry secrets) never reaches any log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from finops.alerts.channels import Notification, deliver
from finops.settings.alerts import SlackChannel, WebhookChannel
from finops.store.keys import RedactKeys

KEY = "fk_0123456789abcdef_" + "s3cr3t-" * 6


def test_access_log_line_with_a_key_in_the_query_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.uvicorn.access")
    logger.addFilter(RedactKeys())
    with caplog.at_level(logging.INFO, logger="test.uvicorn.access"):
        # uvicorn's access log formats the request line from its args, like this.
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    f"/v1/reports/weekly?api_key={KEY}", "1.1", 422)
        logger.info(f"raw message {KEY}")
    text = caplog.text
    assert KEY not in text and "s3cr3t" not in text
    assert text.count("fk_[redacted]") == 2
    assert "/v1/reports/weekly?api_key=fk_[redacted]" in text


@contextmanager
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP receiver on loopback: (base URL, the paths it was posted to); the first POST gets 500."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            paths.append(self.path)
            self.send_response(500 if len(paths) == 1 else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # its own log lines are not the service's
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


SECRET_PATH = "/services/T0SECRET1/B0SECRET2/xoxSECRET3"
SECRET_QUERY = "token=QSECRET4"


@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_channel_delivery_leaves_no_trace_of_its_url_in_logs(caplog: pytest.LogCaptureFixture, kind: str) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    caplog.set_level(logging.DEBUG, logger="httpx")  # whatever level the process gave httpx
    note = Notification("firing", "budget:coreai", "budget", "warning", "coreai is over budget", {"team": "coreai"},
                        "/v1/alerts", datetime(2026, 11, 3, 6), datetime(2026, 11, 3, 7), Decimal("12.50"), "USD")
    with receiver() as (base, paths):  # one 500 first: the retry is logged too
        url = f"{base}{SECRET_PATH}?{SECRET_QUERY}"
        channel = SlackChannel(name="team-chat", url=url) if kind == "slack" else \
            WebhookChannel(name="team-chat", url=url)
        delivery = deliver(channel, note, sleep=lambda _: None)
        assert delivery.status == "sent" and delivery.attempts == 2
        assert paths == [f"{SECRET_PATH}?{SECRET_QUERY}"] * 2  # the secret was used
        httpx.post(f"{base}/not-a-channel", json={})  # outside a delivery, logs are left alone
    records = [f"{r.name} {r.levelname} {r.msg} {r.args} {r.getMessage()}" for r in caplog.records]
    text = "\n".join(records)
    assert "SECRET" not in text, [line for line in records if "SECRET" in line]
    # The request lines are still logged, with the host and the channel's name instead of the URL.
    sent = [r.getMessage() for r in caplog.records if r.name == "httpx" and "channel team-chat" in r.getMessage()]
    assert sent == [f'HTTP Request: POST {base}/... (channel team-chat) "HTTP/1.1 500 Internal Server Error"',
                    f'HTTP Request: POST {base}/... (channel team-chat) "HTTP/1.1 200 OK"']
    assert f"POST {base}/not-a-channel" in text
