"""`finops --help` and a subcommand's `--help` import the CLI framework and nothing heavy.

The time this saves is measured by `benchmarks/cli_start.py`; this test holds the cause: the
modules a help screen imports (`python -X importtime` lists each one a process imports).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Libraries that each cost tens to hundreds of milliseconds and that no help screen needs.
HEAVY = ("pydantic", "duckdb", "sqlalchemy", "fastapi", "rich", "httpx", "openpyxl", "statsmodels", "boto3")


def imported(*args: str) -> set[str]:
    """The top-level packages `python -m finops ARGS` imports, and its standard output."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "finops", *args], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "100"}, check=True)
    assert "Usage:" in run.stdout
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines()
            if line.startswith("import time:")}


@pytest.mark.parametrize("args", [("--help",), ("report", "--help"), ("budgets", "set", "--help"),
                                  ("keys", "create", "--help"), ("simulate", "--help")])
def test_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported(*args)
    assert "typer" in modules  # the list is real: the framework itself is in it
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
