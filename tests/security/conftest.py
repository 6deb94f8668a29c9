"""The security suite runs against the API's own test set-up: example A, keys of every role, real uvicorn."""

from tests.api.conftest import api, api_settings, data, keys, prometheus, start_api

__all__ = ["api", "api_settings", "data", "keys", "prometheus", "start_api"]
