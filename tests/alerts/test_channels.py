"""Delivery: a receiver answering 500 is retried with backoff; a broken channel does not stop the
others; failures are recorded and retried on the next evaluation; errors carry no URL."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path

from finops.alerts.channels import Notification, deliver
from finops.alerts.evaluate import AlertEngine
from finops.settings import Settings
from finops.settings.alerts import (
    AlertmanagerChannel,
    AlertSettings,
    SlackChannel,
    UntaggedSpendRule,
    WebhookChannel,
)
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a
from tests.support.receivers import Receiver

NOW = datetime(2026, 11, 3, 6, 0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_500_is_retried_and_other_channels_still_get_theirs(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    waits: list[float] = []
    with Receiver(fail_first=2) as flaky, Receiver(always_fail=True) as broken, Receiver() as am:
        config = AlertSettings(
            replace_default_rules=True, rules=[UntaggedSpendRule()],
            channels=[
                WebhookChannel(name="flaky", url=flaky.url, max_attempts=4, backoff_seconds=0.5),
                SlackChannel(name="broken", url=f"{broken.url}/services/T000/B000/XXXSECRET", max_attempts=3,
                             backoff_seconds=1.0),
                WebhookChannel(name="refused", url=f"http://127.0.0.1:{closed_port()}/hook", max_attempts=2,
                               backoff_seconds=0.25),
                AlertmanagerChannel(name="am", url=am.url),
            ])
        eng = AlertEngine(store, settings, config, sleep=waits.append)
        ev = eng.evaluate(NOW)

        outcome = {ch: (d.status, d.attempts, d.error) for ch, _, d in ev.deliveries}
        assert outcome["flaky"] == ("sent", 3, None)
        assert [r.answered for r in flaky.received] == [500, 500, 200]
        assert outcome["broken"] == ("failed", 3, "broken: HTTP 500 Internal Server Error")
        assert len(broken.received) == 3
        assert outcome["refused"] == ("failed", 2, "refused: ConnectError")
        assert outcome["am"] == ("sent", 1, None)
        assert len(am.ok()) == 1
        # Exponential backoff per channel: 0.5, 1.0 (flaky); 1.0, 2.0 (broken); 0.25 (refused).
        assert sorted(waits) == sorted([0.5, 1.0, 1.0, 2.0, 0.25])
        assert not any("SECRET" in (d.error or "") for _, _, d in ev.deliveries)

        rows = store.query("SELECT channel, kind, status, attempts FROM alert_deliveries ORDER BY channel")
        assert rows == [("am", "firing", "sent", 1), ("broken", "firing", "failed", 3),
                        ("flaky", "firing", "sent", 3), ("refused", "firing", "failed", 2)]

        # Next evaluation within the resend interval: only the channels that failed are tried again.
        broken.always_fail = False
        ev = eng.evaluate(NOW + timedelta(minutes=15))
        assert sorted((ch, d.status) for ch, _, d in ev.deliveries) == [("broken", "sent"), ("refused", "failed")]
        assert len(flaky.received) == 3 and len(am.received) == 1 and len(broken.ok()) == 1


def test_client_errors_are_not_retried() -> None:
    n = Notification("firing", "k", "r", "warning", "s", {}, "/v1/x", NOW, NOW + timedelta(hours=1))
    waits: list[float] = []
    with Receiver(always_fail=True, fail_status=404) as gone:
        d = deliver(WebhookChannel(name="gone", url=gone.url), n, waits.append)
    assert (d.status, d.attempts, waits) == ("failed", 1, [])
    assert d.error == "gone: HTTP 404 Not Found"
