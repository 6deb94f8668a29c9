"""`finops demo`, the work: a fresh demo database fed through the real ingestion paths.

1. The fleet of `finops.demo.fleet` over the days ending today (UTC midnight).
2. Its FOCUS bills (AWS and Azure) written to files and ingested by the FOCUS ingest.
3. Its metrics collected by the Prometheus collector: the most recent days from a real Prometheus
   (promtool backfill) when `prometheus` and `promtool` are installed, the rest from recorded query
   responses (`finops.demo.recorded`); all of them from recorded responses without the binaries.
4. A summary computed by the reports (`finops.demo.summary`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from finops.collect import RunResult, collect, ingest_focus
from finops.demo import DEFAULT_DB, telemetry
from finops.demo.fleet import Fleet
from finops.demo.prometheus import PROMETHEUS, PROMTOOL, PrometheusServer, backfill_series
from finops.demo.recorded import RecordedPrometheus
from finops.demo.summary import Summary, summarize
from finops.settings import PrometheusSettings, Settings
from finops.store import Store, open_store
from finops.store.ledger import scopes
from finops.tags import TagRules
from finops.timeutil import Window, utcnow

FOCUS_PREFIX = "demo-focus-"
Say = Callable[[str], None]


class DemoFailed(RuntimeError):
    """A step of the demo failed; the message says which and why."""


@dataclass(frozen=True)
class DemoConfig:
    db: Path = DEFAULT_DB
    seed: int = 7
    days: int = 35
    end: date | None = None  # exclusive; default today (UTC)
    prometheus_days: int = 7  # the most recent days go through a real Prometheus, when installed
    use_prometheus: bool | None = None  # None: when the binaries are installed

    @property
    def files_dir(self) -> Path:
        """Where the demo writes its FOCUS files and summary: `<db name>-files` beside the database."""
        return self.db.with_name(self.db.stem + "-files")


@dataclass
class MetricsPart:
    window: Window
    path: str  # "prometheus" or "recorded"
    result: RunResult


@dataclass
class DemoResult:
    config: DemoConfig
    fleet: Fleet
    focus_files: list[Path]
    metrics: list[MetricsPart]
    summary: Summary
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def prometheus_installed() -> bool:
    return all(shutil.which(b) or Path(b).is_file() for b in (PROMETHEUS, PROMTOOL))


def is_demo_db(path: Path, settings: Settings) -> bool:
    """True when every run recorded in the database at `path` is one the demo makes."""
    store = open_store(path, settings.duckdb, read_only=True)
    try:
        runs = scopes(store)
    except Exception:  # not our schema at all
        return False
    finally:
        store.close()
    return all(src == "prometheus" or (src == "focus" and Path(scope).name.startswith(FOCUS_PREFIX))
               for src, scope in runs)


def fresh_db(path: Path, settings: Settings) -> None:
    """Remove a previous demo database at `path`; refuse to touch anything else, or a database in use."""
    if not path.exists():
        return
    try:
        ours = is_demo_db(path, settings)
    except Exception as exc:  # e.g. held by a running `finops serve`
        raise DemoFailed(f"{path} cannot be opened ({type(exc).__name__}); is a service using it?") from None
    if not ours:
        raise DemoFailed(f"{path} holds data the demo did not create; give another --db (the demo "
                         f"always builds a fresh database)")
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def write_focus(fleet: Fleet, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for provider in fleet.providers:
        p = folder / f"{FOCUS_PREFIX}{provider.lower()}.csv"
        p.write_text(fleet.focus_csv(provider), encoding="utf-8")
        paths.append(p)
    return paths


def with_prometheus(settings: Settings, url: str) -> Settings:
    """The demo's collector settings: default label mapping (the fleet's labels), this URL."""
    cfg = PrometheusSettings(url=url, max_retries=0, timeout_seconds=60, token_source="gateway_then_vllm")
    return settings.model_copy(update={"prometheus": cfg})


def _checked(results: list[RunResult], what: str) -> RunResult:
    bad = [r for r in results if r.status != "succeeded"]
    if bad or not results:
        raise DemoFailed(f"{what} failed: {bad[0].error if bad else 'no run'}")
    return results[0]


def from_recorded(store: Store, settings: Settings, fleet: Fleet, window: Window) -> RunResult:
    with RecordedPrometheus(fleet, with_prometheus(settings, "http://127.0.0.1"), window) as endpoint:
        return _checked(collect(store, with_prometheus(settings, endpoint.url), "prometheus", window),
                        "collecting recorded responses")


class PrometheusHistory:
    """The fleet's telemetry in `window` as a Prometheus TSDB under `workdir`, backfilled on a
    background thread from construction on (promtool mostly waits, so this overlaps other steps)."""

    def __init__(self, fleet: Fleet, window: Window, workdir: Path, pool: ThreadPoolExecutor):
        self.window, self.tsdb = window, workdir / "data"
        self._done = pool.submit(backfill_series, telemetry.series(fleet, window.start, window.end), self.tsdb,
                                 workdir)

    def collect(self, store: Store, settings: Settings) -> RunResult:
        """Wait for the backfill, serve it with a real Prometheus and run the collector against it."""
        self._done.result()
        with PrometheusServer(self.tsdb) as prom:
            return _checked(collect(store, with_prometheus(settings, prom.url), "prometheus", self.window),
                            "collecting from Prometheus")


def metric_windows(cfg: DemoConfig, fleet: Fleet, real: bool) -> list[tuple[Window, str]]:
    """(window, path) pairs covering the fleet's days: the most recent through Prometheus when `real`."""
    whole = Window.from_dates(fleet.start, fleet.end)
    if not real:
        return [(whole, "recorded")]
    split = max(fleet.start, fleet.end - timedelta(days=cfg.prometheus_days))
    parts = [(Window.from_dates(split, fleet.end), "prometheus")]
    if split > fleet.start:
        parts.insert(0, (Window.from_dates(fleet.start, split), "recorded"))
    return parts


def ingest_bills(store: Store, settings: Settings, fleet: Fleet, folder: Path, say: Say) -> list[Path]:
    files = write_focus(fleet, folder)
    for r in ingest_focus(store, TagRules.from_settings(settings), files):
        _checked([r], "FOCUS ingest")
    say(f"FOCUS bills: {', '.join(str(f) for f in files)} ingested through the FOCUS ingest "
        f"({fleet.days} days, {len(fleet.resources)} resources)")
    return files


RECORDED = ("the Prometheus collector on recorded query responses (Prometheus-shaped JSON computed from the "
            "fleet, served on 127.0.0.1)")


def collect_metrics(store: Store, settings: Settings, fleet: Fleet, windows: list[tuple[Window, str]],
                    history: PrometheusHistory | None, say: Say) -> list[MetricsPart]:
    """Each window through its path; a Prometheus that fails hands its days to the recorded responses."""
    parts = []
    for window, path in windows:
        how = RECORDED
        if history is not None and path == "prometheus":
            try:
                result = history.collect(store, settings)
                how = f"a real Prometheus at {result.details.get('url')} (promtool backfill, the collector's PromQL)"
            except (DemoFailed, RuntimeError, OSError) as exc:
                say(f"Prometheus failed ({exc}); these days go through recorded responses instead")
                path = "recorded"
        if path == "recorded":
            result = from_recorded(store, settings, fleet, window)
        parts.append(MetricsPart(window, path, result))
        say(f"Metrics {window.start:%Y-%m-%d} .. {window.end:%Y-%m-%d} ({len(window.days())} days) through "
            f"{how}: {result.details.get('gpu_hours')} GPU-hours, {result.details.get('token_hours')} "
            f"token-hours, {result.requests} queries")
    return parts


# A monthly budget per team, as a share of the month at the team's recent daily spend: coreai's is
# set below its pace, so its forecast crosses the budget before its actual does.
BUDGET_PACE = {"coreai": Decimal("0.9"), "platform": Decimal("1.3"), "research": Decimal("1.3")}


def set_budgets(store: Store, settings: Settings, fleet: Fleet, say: Say) -> None:
    """A monthly budget per team, sized from the team's last two weeks (so any end date shows the story)."""
    from finops import reports
    from finops.reports.budgets import period_of
    from finops.reports.params import build_params
    from finops.store.budgets import BudgetSpec, save_budget

    params = build_params(start=fleet.end - timedelta(days=14), end=fleet.end, group_by="team",
                          shared_cost_key=settings.shared_cost_key)
    spend = {r["team"]: r["cost"] for r in reports.get("unit-economics")(store, settings, params).rows}
    start, end = period_of("month", fleet.end - timedelta(days=1))
    for team, pace in BUDGET_PACE.items():
        amount = (spend.get(team, Decimal(0)) / 14 * (end - start).days * pace).quantize(Decimal(100))
        if amount > 0:
            save_budget(store, f"{team} monthly", BudgetSpec(filters={"team": team}, amount=amount,
                                                             max_cost_per_1k_generated_tokens=None),
                        datetime.combine(fleet.end, datetime.min.time()))
    say(f"Budgets: one a month per team ({', '.join(BUDGET_PACE)}), sized from the last two weeks' spend")


def run_demo(cfg: DemoConfig, settings: Settings, say: Say = lambda _: None) -> DemoResult:
    """Build the demo database at `cfg.db` (replacing a previous demo database) and summarise it."""
    began = time.monotonic()
    timings: dict[str, float] = {}
    settings = settings.model_copy(update={"db": cfg.db})
    fleet = Fleet(end=cfg.end or utcnow().date(), days=cfg.days, seed=cfg.seed)
    fresh_db(cfg.db, settings)
    real = prometheus_installed() if cfg.use_prometheus is None else cfg.use_prometheus
    if not real:
        say("Metrics: `prometheus`/`promtool` are not installed, so all of them go through the Prometheus "
            "collector's parsers on recorded query responses (Prometheus-shaped JSON computed from the fleet). "
            "Install Debian's `prometheus` package to send the recent days through a real Prometheus.")
    windows = metric_windows(cfg, fleet, real)
    with ExitStack() as stack:
        history = None
        if real:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="finops-demo-prometheus-")))
            history = PrometheusHistory(fleet, windows[-1][0], workdir, stack.enter_context(ThreadPoolExecutor(1)))
        store = open_store(cfg.db, settings.duckdb)
        stack.callback(store.close)
        t = time.monotonic()
        files = ingest_bills(store, settings, fleet, cfg.files_dir, say)
        timings["bills"], t = time.monotonic() - t, time.monotonic()
        parts = collect_metrics(store, settings, fleet, windows, history, say)
        set_budgets(store, settings, fleet, say)
        timings["metrics"], t = time.monotonic() - t, time.monotonic()
        summary = summarize(store, settings, fleet)
        timings["summary"] = time.monotonic() - t
    (cfg.files_dir / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    return DemoResult(cfg, fleet, files, parts, summary, time.monotonic() - began, timings)


def last_full_week(end: date) -> date:
    """Monday of the last complete ISO week before `end` (exclusive)."""
    return end - timedelta(days=end.weekday() + 7)
