"""What attribution is asked: a window and the policy to apply, and the error a bad value raises.

Reports pass their `ReportParams`, which has these fields; attribution needs nothing else of them.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol


class ParamError(ValueError):
    """A bad parameter; `param` names it for the CLI and the API (422)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


class Query(Protocol):
    """The window `[start, end)` and the policy of one attribution."""

    @property
    def start(self) -> date: ...
    @property
    def end(self) -> date: ...
    @property
    def cost_basis(self) -> str: ...
    @property
    def shared_cost_key(self) -> str: ...
    @property
    def idle_threshold(self) -> float: ...
    @property
    def currency(self) -> str | None: ...
