"""FOCUS files into the store: one run per file, the file's rows replaced as a whole."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from finops.batch import Batch, SourceFailed, Task
from finops.collect import RunResult, run_tasks
from finops.sources.focus import FOCUS, FileSpec, FocusFileError, parse_focus_file
from finops.store.db import Store
from finops.tags import TagRules

SOURCE = "focus"


def file_task(rules: TagRules, path: Path, scope: str | None = None, spec: FileSpec = FOCUS) -> Task:
    """A task that reads one file; its scope is the file, so re-ingesting replaces, never doubles."""
    path = Path(path)

    def fetch() -> Batch:
        try:
            parsed = parse_focus_file(path, rules, spec)
        except (FocusFileError, OSError) as exc:
            raise SourceFailed(str(exc)) from None
        return Batch(facts={"cost_lines": parsed.rows}, quarantine=parsed.quarantine,
                     details={"file": str(path), "rows_in_file": parsed.total})

    return Task(scope=scope or str(path.resolve()), window=None, fetch=fetch)


def ingest_focus(store: Store, rules: TagRules, paths: Iterable[Path]) -> list[RunResult]:
    return run_tasks(store, SOURCE, [file_task(rules, p) for p in paths])
