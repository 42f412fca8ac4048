"""Placement policies compared in the simulator on every WfCommons trace and benchmarks/nodes4.yaml.

For each trace: makespan (s) and memory waste (GB*h: memory of nodes held while they run
something, minus what the tasks use) for AkôScore at alpha 0, 0.5 and 1, first-fit,
round-robin, cost and HEFT. Then times the simulation of the 6,448-activity Montage shape
(benchmarks/gen_montage.py). Checks printed at the end: the default (alpha 0.5) is never more
than 5 % slower than first-fit, and memory waste does not rise as alpha rises.

Usage: python benchmarks/bench_policies.py [TRACE_DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TRACES
from gen_montage import montage_shape

from akoflow.scheduling.heft import heft
from akoflow.scheduling.inventory import load_nodes_file
from akoflow.scheduling.simulator import SimResult, simulate
from akoflow.scheduling.workload import Workload, from_spec, from_trace

NODES = Path(__file__).resolve().parent / "nodes4.yaml"
COLUMNS = [("a=0", "akoscore", 0.0), ("a=0.5", "akoscore", 0.5), ("a=1", "akoscore", 1.0),
           ("first-fit", "first-fit", None), ("round-robin", "round-robin", None),
           ("cost", "cost", None), ("heft", "heft", None)]


def run_all(wl: Workload) -> dict[str, SimResult]:
    nodes = load_nodes_file(NODES)
    return {label: heft(wl, nodes) if pol == "heft" else simulate(wl, nodes, pol, alpha)
            for label, pol, alpha in COLUMNS}


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else TRACES
    traces = sorted(p for p in folder.glob("*.json"))
    head = f"{'trace':28} {'n':>4} " + " ".join(f"{c[0]:>16}" for c in COLUMNS)
    print("makespan s / memory waste GB*h  (nodes: benchmarks/nodes4.yaml)")
    print(head)
    problems: list[str] = []
    for path in traces:
        wl = from_trace(path)
        res = run_all(wl)
        cells = " ".join(f"{r.makespan:8.1f}/{r.memory_waste_gbh:7.3f}" for r in res.values())
        print(f"{path.stem[:28]:28} {len(wl.tasks):>4} {cells}")
        ff, default = res["first-fit"].makespan, res["a=0.5"].makespan
        if default > ff * 1.05:
            problems.append(f"{path.stem}: alpha 0.5 makespan {default:.1f} > 1.05 x "
                            f"first-fit {ff:.1f}")
        w = [res[k].memory_waste_gbh for k in ("a=0", "a=0.5", "a=1")]
        if not (w[0] >= w[1] - 1e-9 and w[1] >= w[2] - 1e-9):
            problems.append(f"{path.stem}: waste does not fall with alpha: "
                            + ", ".join(f"{x:.3f}" for x in w))
    wl = from_spec(montage_shape())
    nodes = load_nodes_file(NODES)
    start = time.perf_counter()
    r = simulate(wl, nodes, "akoscore")
    secs = time.perf_counter() - start
    print(f"\nmontage {len(wl.tasks)} activities, akoscore: simulated in {secs:.2f} s "
          f"(makespan {r.makespan:.0f} s, waste {r.memory_waste_gbh:.1f} GB*h)")
    if secs > 10:
        problems.append(f"montage simulation took {secs:.1f} s > 10 s")
    print("\nchecks: " + ("all passed" if not problems else ""))
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
