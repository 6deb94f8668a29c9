"""How long the `finops` command takes before it does anything, against the CLI framework's own start.

Alternates, in one run on one machine state, `python -c "import typer"` (the bound) with
`finops --help` and `finops report --help`, each in a fresh process, and prints the median of each and
its ratio to the bound. Goal: within 2x. For reference it also times a bare two-command typer app
(plain help, as ours): its `--help`, and its subcommand's `--help`, where typer itself builds each
parameter's pydantic adapter (it imports pydantic), the framework's floor for `finops report --help`.

    .venv/bin/python benchmarks/cli_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

# A two-command typer app with plain help (as ours): the framework's own floor for rendering help.
BARE_APP = ("import typer\napp = typer.Typer(rich_markup_mode=None)\n@app.command()\ndef a(x: int = 1) -> None: ...\n"
            "@app.command()\ndef b(x: int = 1) -> None: ...\napp()\n")
COMMANDS = {
    "bound: import typer": [sys.executable, "-c", "import typer"],
    "bare typer app --help": [sys.executable, "-c", BARE_APP, "--help"],
    "bare typer app b --help": [sys.executable, "-c", BARE_APP, "b", "--help"],
    "finops --help": [sys.executable, "-m", "finops", "--help"],
    "finops report --help": [sys.executable, "-m", "finops", "report", "--help"],
}
GOAL = 2.0


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={"COLUMNS": "100", "PATH": ""})
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():
        timed(cmd)  # warm the file cache
    for _ in range(args.runs):
        for name, cmd in COMMANDS.items():
            samples[name].append(timed(cmd))
    bound = statistics.median(samples["bound: import typer"])
    print(f"{'command':<24} {'median s':>9} {'ratio':>6}  goal <= {GOAL:g}x")
    for name, values in samples.items():
        median = statistics.median(values)
        ratio = median / bound
        verdict = "" if name.startswith("bound") else ("pass" if ratio <= GOAL else "MISSED")
        print(f"{name:<24} {median:>9.3f} {ratio:>6.2f}  {verdict}")


if __name__ == "__main__":
    main()
