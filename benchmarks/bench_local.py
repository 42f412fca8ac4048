"""W1/W2/W3 through `akoflow run` on this machine, provenance on (median wall seconds).

W1: 1,000 independent no-op activities; W2: a chain of 200; W3: the WfCommons Montage trace
(619 activities) with no-op commands. Each run starts from a fresh AKOFLOW_HOME and includes
Python start-up, validation, registration, execution and the summary.
Usage: python benchmarks/bench_local.py [--repeat N] [--baseline PYTHON]

`--baseline` names the interpreter of another akoflow install (an earlier commit, say):
its runs alternate with this one's, run for run (and which goes first alternates), so both
see the same machine, and each figure is printed with the baseline's and their ratio
(this / baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from _common import akoflow, cleanup, figure, fresh_home, median_of, precompile, trace


def w1(path: Path) -> Path:
    acts = "".join(f"    - {{name: t{i}, run: 'true'}}\n" for i in range(1000))
    path.write_text(f"name: w1\nspec:\n  activities:\n{acts}")
    return path


def w2(path: Path) -> Path:
    acts = "".join(
        f"    - {{name: t{i}, run: 'true'{f', dependsOn: [t{i - 1}]' if i else ''}}}\n"
        for i in range(200))
    path.write_text(f"name: w2\nspec:\n  activities:\n{acts}")
    return path


def w3(path: Path, home: Path) -> Path:
    akoflow("import", "wfformat", str(trace("montage-chameleon-2mass-025d-001.json")),
            "--noop", "-o", str(path), home=home)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", metavar="PYTHON",
                    help="interpreter of another akoflow install, measured alternately")
    args = ap.parse_args()
    precompile()
    setup = fresh_home("setup")
    files = {"W1_1000_independent": w1(setup / "w1.yaml"),
             "W2_chain_200": w2(setup / "w2.yaml"),
             "W3_montage_619": w3(setup / "w3.yaml", setup)}
    homes: list[Path] = []
    for name, wf in files.items():
        def once(wf: Path = wf, python: str | None = None) -> float:
            homes.append(fresh_home("run"))
            # Start every run with the disk quiet: the previous run's thousands of new
            # files are still being written back, which would slow this one down
            # (`hyperfine --prepare sync` does the same).
            os.sync()
            return akoflow("run", str(wf), "--quiet", home=homes[-1], python=python)
        if not args.baseline:
            figure(f"{name}_wall_median", median_of(args.repeat, once))
            continue
        ours, base = [], []
        for i in range(args.repeat):  # who goes first alternates too
            if i % 2:
                base.append(once(python=args.baseline))
                ours.append(once())
            else:
                ours.append(once())
                base.append(once(python=args.baseline))
        figure(f"{name}_wall_median", statistics.median(ours))
        figure(f"{name}_baseline_wall_median", statistics.median(base))
        figure(f"{name}_ratio", statistics.median(ours) / statistics.median(base), "x")
    # Deleting thousands of files makes this machine's disk slow for seconds afterwards:
    # clean up only once every run is measured.
    for home in [setup, *homes]:
        cleanup(home)


if __name__ == "__main__":
    main()
