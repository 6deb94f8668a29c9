"""`RouteTable`: every path template of the app with its methods, as one flat list.

FastAPI keeps an included router as one nested entry of `app.router.routes`, so walking that list
finds no API paths. The table is built from the OpenAPI document (every operation) and the
top-level routes (the docs pages) once the routers are included, and answers which template a raw
path belongs to (for request metrics of requests answered before routing) and which methods it
allows (for the `Allow` header of a 405).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route, compile_path


class RouteTable:
    """Filled by `load(app)` after the app's routers are included; empty (matches nothing) before."""

    def __init__(self) -> None:
        self._entries: list[tuple[re.Pattern[str], str, frozenset[str]]] = []

    def load(self, app: FastAPI, spec: dict[str, Any]) -> None:
        entries = []
        for path, item in spec.get("paths", {}).items():
            methods = {m.upper() for m in item}
            if "GET" in methods:
                methods.add("HEAD")
            entries.append((compile_path(path)[0], path, frozenset(methods)))
        for route in app.router.routes:
            if isinstance(route, Route) and route.methods:
                entries.append((route.path_regex, route.path, frozenset(route.methods)))
        self._entries = entries

    def template(self, path: str) -> str | None:
        """The first template matching `path`, or None."""
        return next((template for regex, template, _ in self._entries if regex.match(path)), None)

    def methods(self, path: str) -> list[str]:
        """The methods of every template matching `path`, sorted."""
        return sorted({m for regex, _, methods in self._entries if regex.match(path) for m in methods})
