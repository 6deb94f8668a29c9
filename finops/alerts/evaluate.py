"""Evaluate the rules at a point in time, keep alert state in the store, and notify the channels.

State: one `alerts` row per alert instance (key + start). A finding with no firing instance starts
one; an instance whose finding is gone is resolved (unless its rule could not be evaluated).
Dedupe is per channel, from `alert_deliveries`: a firing instance is sent to a channel once and
again only after `resend_after_minutes`; a resolved notice goes to every channel that got the
firing one, retried on later evaluations for `resolved_retry_hours` if it failed. Channels are
served in parallel, so one slow or broken receiver does not hold up the others.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from finops.alerts.channels import Delivery, Notification, deliver
from finops.alerts.checks import CHECKS
from finops.alerts.context import Context
from finops.alerts.rules import Finding
from finops.settings import Settings
from finops.settings.alerts import AlertSettings, Channel
from finops.store import Store
from finops.timeutil import Clock, to_utc_naive

log = logging.getLogger(__name__)

ACTIVE_SQL = ("SELECT alert_key, started_at, rule, severity, summary, dims, amount, currency, link "
              "FROM alerts WHERE status = 'firing'")
SENT_SQL = """
SELECT d.alert_key, d.started_at, d.channel, d.kind, max(d.delivered_at)
FROM alert_deliveries d JOIN alerts a USING (alert_key, started_at)
WHERE d.status = 'sent' AND (a.status = 'firing' OR a.resolved_at >= ?) GROUP BY ALL
"""
RESOLVED_SQL = ("SELECT alert_key, started_at, rule, severity, summary, dims, amount, currency, link, resolved_at "
                "FROM alerts WHERE status = 'resolved' AND NOT retired AND resolved_at >= ?")


@dataclass
class Evaluation:
    """What one evaluation found and did."""

    at: datetime
    findings: list[Finding] = field(default_factory=list)
    failed_rules: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # closed silently: their rule left the configuration
    deliveries: list[tuple[str, Notification, Delivery]] = field(default_factory=list)


class AlertEngine:
    """Evaluates `config.rules` against `store`; one evaluation at a time per engine."""

    def __init__(self, store: Store, settings: Settings, config: AlertSettings, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Clock | None = None,
                 watched_sources: list[str] | None = None):
        self.store, self.settings, self.config = store, settings, config
        self.sleep, self.clock = sleep, clock or store.clock
        self.watched = None if watched_sources is None else tuple(watched_sources)
        self.started_at = to_utc_naive(self.clock())
        self._lock = threading.Lock()

    def evaluate(self, now: datetime | None = None) -> Evaluation:
        with self._lock:
            now = to_utc_naive(now or self.clock())
            ev = Evaluation(now)
            ctx = Context(self.store, self.settings, now, self.config.exemptions, self.config.link_base,
                          self.watched, self.started_at)
            for rule in self.config.active_rules():
                try:
                    ev.findings += CHECKS[rule.kind](ctx, rule)
                except Exception as exc:  # one broken rule must not stop the others (nor resolve its alerts)
                    log.warning("alert rule %s could not be evaluated: %s", rule.name, exc)
                    ev.failed_rules[rule.name] = f"{type(exc).__name__}: {exc}"
            started = self._update_state(ev)
            if self.config.channels:
                outbox = self._outbox(ev, started)
                ev.deliveries = self._send(outbox)
                self._record(ev)
            return ev

    def _update_state(self, ev: Evaluation) -> dict[str, datetime]:
        """Start, refresh and resolve alert instances; returns key -> start of every firing instance."""
        now = ev.at
        with self.store.transaction() as cur:
            active = {r[0]: r for r in cur.execute(ACTIVE_SQL).fetchall()}
            started: dict[str, datetime] = {}
            for f in ev.findings:
                values = [f.rule, f.severity, f.summary, json.dumps(f.dims), f.amount, f.currency, f.link, now]
                if f.key in active:
                    started[f.key] = active[f.key][1]
                    cur.execute("UPDATE alerts SET rule = ?, severity = ?, summary = ?, dims = ?, amount = ?, "
                                "currency = ?, link = ?, last_seen_at = ? WHERE alert_key = ? AND started_at = ?",
                                [*values, f.key, started[f.key]]).fetchall()
                else:
                    started[f.key] = now
                    ev.started.append(f.key)
                    # Conflict only when an instance resolved at this very instant fires again: reopen it.
                    cur.execute("INSERT INTO alerts (rule, severity, summary, dims, amount, currency, link, "
                                "last_seen_at, alert_key, started_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                "'firing') ON CONFLICT (alert_key, started_at) DO UPDATE SET status = 'firing', "
                                "resolved_at = NULL, summary = excluded.summary, amount = excluded.amount",
                                [*values, f.key, now]).fetchall()
            configured = {r.name for r in self.config.active_rules()}
            for key, row in active.items():
                if key in started or row[2] in ev.failed_rules:
                    continue
                if row[2] not in configured:  # its rule left the configuration: no all-clear is true
                    cur.execute("UPDATE alerts SET status = 'resolved', retired = true, resolved_at = ? "
                                "WHERE alert_key = ? AND started_at = ?", [now, key, row[1]]).fetchall()
                    ev.retired.append(key)
                    continue
                cur.execute("UPDATE alerts SET status = 'resolved', resolved_at = ? "
                            "WHERE alert_key = ? AND started_at = ?", [now, key, row[1]]).fetchall()
                ev.resolved.append(key)
        return started

    def _outbox(self, ev: Evaluation, started: dict[str, datetime]) -> dict[str, list[Notification]]:
        """Per channel, the notifications due now."""
        cfg, now = self.config, ev.at
        horizon = now - timedelta(hours=cfg.resolved_retry_hours)
        sent: dict[tuple[str, datetime, str, str], datetime] = {
            (k, s, ch, kind): at for k, s, ch, kind, at in self.store.query(SENT_SQL, [horizon])}
        resend = timedelta(minutes=cfg.resend_after_minutes)
        keep_alive = now + resend + 2 * timedelta(minutes=cfg.evaluate_every_minutes)
        outbox: dict[str, list[Notification]] = {c.name: [] for c in cfg.channels}
        for f in ev.findings:
            n = Notification("firing", f.key, f.rule, f.severity, f.summary, f.dims, f.link, started[f.key],
                             keep_alive, f.amount, f.currency, f.details)
            for ch in cfg.channels:
                last = sent.get((f.key, started[f.key], ch.name, "firing"))
                if last is None or now - last >= resend:
                    outbox[ch.name].append(n)
        for key, start, rule, severity, summary, dims, amount, currency, link, resolved_at in \
                self.store.query(RESOLVED_SQL, [horizon]):
            n = Notification("resolved", key, rule, severity, summary, json.loads(dims or "{}"), link, start,
                             resolved_at, None if amount is None else Decimal(amount), currency)
            for ch in cfg.channels:
                if (key, start, ch.name, "firing") in sent and (key, start, ch.name, "resolved") not in sent:
                    outbox[ch.name].append(n)
        return outbox

    def _send(self, outbox: dict[str, list[Notification]]) -> list[tuple[str, Notification, Delivery]]:
        channels = {c.name: c for c in self.config.channels}

        def serve(ch: Channel) -> list[tuple[str, Notification, Delivery]]:
            out = []
            for n in outbox[ch.name]:
                try:
                    d = deliver(ch, n, self.sleep)
                except Exception as exc:  # a bug or bad config in one channel must not stop the others
                    d = Delivery("failed", 0, f"{ch.name}: {type(exc).__name__}")
                if d.status == "failed":
                    log.warning("alert %s (%s) not delivered: %s after %d attempts", n.key, n.kind, d.error, d.attempts)
                out.append((ch.name, n, d))
            return out

        busy = [channels[name] for name, items in outbox.items() if items]
        if not busy:
            return []
        with ThreadPoolExecutor(max_workers=len(busy), thread_name_prefix="alert-channel") as pool:
            return [x for batch in pool.map(serve, busy) for x in batch]

    def _record(self, ev: Evaluation) -> None:
        if not ev.deliveries:
            return
        rows: list[list[Any]] = [[n.key, n.started_at, ch, n.kind, d.status, d.attempts, d.error, ev.at]
                                 for ch, n, d in ev.deliveries]
        with self.store.transaction() as cur:
            cur.executemany("INSERT INTO alert_deliveries (alert_key, started_at, channel, kind, status, attempts, "
                            "error, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            for key, start in {(n.key, n.started_at) for _, n, d in ev.deliveries if d.status == "sent"}:
                cur.execute("UPDATE alerts SET last_sent_at = ? WHERE alert_key = ? AND started_at = ?",
                            [ev.at, key, start]).fetchall()
