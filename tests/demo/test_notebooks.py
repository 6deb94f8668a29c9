"""The analyst notebooks, executed top to bottom against the demo database: through the demo's
service (HTTP API) and, for the idle GPU hunt with its hourly view, from a read-only snapshot."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.demo.conftest import Demo, Served

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
KERNEL = "finops-tests"
# The inline backend renders PNGs headless (Agg underneath) and puts them in the cell outputs.
INLINE = "module://matplotlib_inline.backend_inline"


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec running this interpreter (the venv's), whatever kernels the machine has."""
    root = tmp_path_factory.mktemp("kernels")
    (root / KERNEL).mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "finops tests", "language": "python"}
    (root / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)], ensure_native_kernel=False)


def execute(path: Path, kernels: KernelSpecManager, workdir: Path, env: dict[str, str]) -> Any:
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": str(workdir)}})
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FINOPS_", "MPLBACKEND"))}
    # cleanup_kc: shut the kernel down afterwards (nbclient leaves a kernel it did not create running).
    client.execute(cleanup_kc=True, env=base | {"MPLBACKEND": INLINE, "JUPYTER_PLATFORM_DIRS": "1"} | env)
    return nb


def outputs(nb: Any, kind: str) -> list[Any]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
            if kind in o.get("data", {}) or o.get("output_type") == kind]


def text(nb: Any) -> str:
    return "".join(o.get("text", "") for o in outputs(nb, "stream"))


def test_there_are_three_notebooks_stored_without_outputs() -> None:
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and any(c.cell_type == "markdown" for c in nb.cells), path.name
        assert all(c.outputs == [] and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert "plt." in "".join(c.source for c in code), f"{path.name} draws no plot"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_through_the_api(path: Path, demo: Demo, served: Served, kernels: KernelSpecManager,
                                       tmp_path: Path) -> None:
    nb = execute(path, kernels, tmp_path, {"FINOPS_API_URL": served.url, "FINOPS_API_KEY": served.key})
    assert outputs(nb, "image/png"), f"{path.name} produced no plot"
    assert f"Reading the finops API at {served.url}" in text(nb)
    if "idle-gpu" in path.name:
        assert "Skipped: the API serves reports, not hourly GPU facts" in text(nb)


def test_idle_gpu_hunt_reads_a_snapshot_with_the_hourly_view(demo: Demo, kernels: KernelSpecManager,
                                                             tmp_path: Path) -> None:
    [path] = [p for p in NOTEBOOKS if "idle-gpu" in p.name]
    nb = execute(path, kernels, tmp_path, {"FINOPS_DB": str(demo.snapshot)})
    assert f"Reading a read-only snapshot of {demo.snapshot}" in text(nb)
    assert "Skipped" not in text(nb)
    titles = "".join(c.source for c in nb.cells if c.cell_type == "code")
    # Every plotting cell drew: ranking, host x day and host x hour-of-day heat maps.
    assert len(outputs(nb, "image/png")) == titles.count("plt.show()") == 3
