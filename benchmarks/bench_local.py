"""W1/W2/W3 through `akoflow run` on this machine, provenance on (median wall seconds).

W1: 1,000 independent no-op activities; W2: a chain of 200; W3: the WfCommons Montage trace
(619 activities) with no-op commands. Each run starts from a fresh AKOFLOW_HOME and includes
Python start-up, validation, registration, execution and the summary.
Usage: python benchmarks/bench_local.py [--repeat N] [--baseline PYTHON] [--no-make]

Beside each workload, in the same run and alternating with akoflow's runs, `make -j2` runs
the same DAG (a generated Makefile whose every target runs `true && touch $@`, as the peer
table did): each figure is printed with make's and the akoflow/make ratio, since absolute
seconds from another day are no comparison.

`--baseline` names the interpreter of another akoflow install (an earlier commit, say):
its runs alternate with this one's, run for run (and which goes first alternates), so both
see the same machine, and each figure is printed with the baseline's and their ratio
(this / baseline).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
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


def makefile(wf: Path, path: Path) -> Path:
    """The workflow's DAG as a Makefile: each activity a target that runs `true` and touches
    itself, after its parents."""
    from akoflow.port.names import ident
    from akoflow.spec import load_workflow

    spec = load_workflow(wf)
    lines = [".PHONY: all", "all: " + " ".join(ident(a.name) for a in spec.activities)]
    for a in spec.activities:
        lines.append(f"{ident(a.name)}: {' '.join(ident(d) for d in a.depends_on)}")
        lines.append("\ttrue && touch $@")
    path.write_text("\n".join(lines) + "\n")
    return path


def make_once(mk: Path) -> float:
    """Wall seconds of `make -j2` over the DAG, in a fresh directory."""
    work = fresh_home("make")
    os.sync()
    start = time.perf_counter()
    subprocess.run(["make", "-s", "-j2", "-f", str(mk), "all"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    cleanup(work)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", metavar="PYTHON",
                    help="interpreter of another akoflow install, measured alternately")
    ap.add_argument("--no-make", action="store_true", help="skip the make -j2 comparison")
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
            if args.no_make or shutil.which("make") is None:
                figure(f"{name}_wall_median", median_of(args.repeat, once))
                continue
            mk = makefile(wf, setup / f"{name}.mk")
            ours, made = [], []
            for i in range(args.repeat):  # alternate, and who goes first alternates too
                if i % 2:
                    made.append(make_once(mk))
                    ours.append(once())
                else:
                    ours.append(once())
                    made.append(make_once(mk))
            figure(f"{name}_wall_median", statistics.median(ours))
            figure(f"{name}_make_j2_wall_median", statistics.median(made))
            figure(f"{name}_akoflow_over_make", statistics.median(ours) /
                   statistics.median(made), "x")
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
