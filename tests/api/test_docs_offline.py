"""/docs works without the internet: the page loads Swagger UI from the service itself."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.api.conftest import Api


def test_docs_page_loads_its_assets_from_the_service(start_api: Callable[..., Api]) -> None:
    api = start_api()
    page = api.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources  # nothing from another host
    for asset in sources:
        got = api.get(asset)
        assert got.status_code == 200, asset
    bundle = api.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"] and len(bundle.content) > 100_000
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    assert api.get("/openapi.json").json()["paths"]  # the document the page renders
