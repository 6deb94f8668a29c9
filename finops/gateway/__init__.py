"""OpenAI-compatible metering gateway: attributes every token served by a shared vLLM to its caller's tags."""

from finops.gateway.app import create_app
from finops.settings.gateway import CallerTags, GatewaySettings

__all__ = ["CallerTags", "GatewaySettings", "create_app"]
