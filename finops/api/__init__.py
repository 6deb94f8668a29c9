"""The HTTP API (FastAPI): reports, sources, alerts, keys, health and metrics. See docs/api.md."""

from finops.api.app import create_app
from finops.settings.api import ApiSettings

__all__ = ["ApiSettings", "create_app"]
