"""The package stands on its own: a wheel installed into a new venv (no checkout on the path)
upgrades a database, ingests a FOCUS file and reports, with the migrations it ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FIXTURES

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installed_in_a_new_venv_upgrades_ingests_and_reports(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # The wheel of this checkout only; its dependencies come from the running environment, which has them.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path)
    [wheel] = wheels.glob("finops-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from this environment's site-packages (no network). A path line in a .pth
    # file adds the directory without running its own .pth files, so this checkout's editable
    # install does not come along: `finops` can only be the wheel's.
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(purelib), "-q", str(wheel)],
                   check=True, cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINOPS_", "PYTHONPATH"))}
    env["FINOPS_DB"] = str(work / "finops.duckdb")
    finops = [str(python), "-m", "finops"]

    def run(*args: str) -> str:
        done = subprocess.run([*finops, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    located = subprocess.run([python, "-c", "import finops.store.migrate as m; print(m.MIGRATIONS)"],
                             cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert str(env_dir) in located and not located.startswith(str(REPO)), located

    assert "upgraded empty -> " in run("db", "upgrade")
    assert "already at revision" in run("db", "upgrade")
    sample = FIXTURES / "focus" / "focus-1.0-sample.csv"
    assert "1000 accepted, 0 quarantined" in run("ingest", "focus", str(sample))
    report = json.loads(run("report", "untagged-spend", "--start", "2024-09-01", "--end", "2024-10-01",
                            "--format", "json"))
    # The sample's own EffectiveCost total (the default basis), summed exactly by DuckDB.
    expected = duckdb.sql(f"SELECT sum(CAST(EffectiveCost AS DECIMAL(38,12))) FROM read_csv('{sample}', "
                          "all_varchar=true, nullstr='NULL')").fetchall()[0][0]
    assert Decimal(str(report["totals"]["total_cost"])) == expected > 0
