"""AkôScore against first fit and HEFT on generated workflows, then on the shared traces.

Instances come from WfCommons recipes (`akoflow/scheduling/synthetic.py`; needs
`pip install 'akoflow[bench]'`): 10 recipes x N instances, each simulated on three node sets
(`nodes4.yaml`: speed and memory heterogeneous; `nodes_bigmem1.yaml`: one big-memory node;
`nodes_speedskew.yaml`: fast nodes are fat, lean ones slow). Two disjoint sets:
- tuning (`--set tuning`): seeds 0.., sizes up to 250 tasks: what design choices were tried on;
- evaluation (default): seeds 1000.., sizes up to 500 tasks: what the figures are reported on.
For each alpha in 0, 0.25, 0.5, 0.75, 1 it prints the median and worst ratios of makespan and
memory waste to first fit and to HEFT, then checks, per instance:
- alpha 0: makespan <= 1.03 x HEFT's;
- alpha 0 -> 1: waste never rises and makespan never falls;
- alpha 0.5: neither first fit nor HEFT is better on both makespan and waste by more than 2 %;
- the run of alpha's point reproduces the planned figures exactly.
The same checks then run on the WfCommons traces in ../shared/data/wfcommons (held out: never
looked at while choosing the design), and the 6,448-activity Montage shape is planned and run.

Usage: python benchmarks/bench_policies.py [--set eval|tuning] [--per-recipe N] [TRACE_DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TRACES
from gen_montage import montage_shape

from akoflow.port import Node
from akoflow.scheduling.front import build_front
from akoflow.scheduling.heft import heft
from akoflow.scheduling.history import RunHistory
from akoflow.scheduling.inventory import load_nodes_file
from akoflow.scheduling.simulator import SimResult, simulate
from akoflow.scheduling.synthetic import RECIPES, SMALLEST, generate
from akoflow.scheduling.workload import Workload, from_spec, from_trace

HERE = Path(__file__).resolve().parent
NODE_SETS = {"nodes4": HERE / "nodes4.yaml", "bigmem1": HERE / "nodes_bigmem1.yaml",
             "speedskew": HERE / "nodes_speedskew.yaml"}
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
SETS = {"tuning": (0, 250), "eval": (1000, 500)}  # first seed, largest size


def instances(which: str, per_recipe: int) -> Iterator[Workload]:
    first, largest = SETS[which]
    for recipe in RECIPES:
        for j in range(per_recipe):
            seed = first + j
            size = random.Random(f"{which}:{recipe}:{j}").randint(SMALLEST[recipe], largest)
            yield generate(recipe, size, seed)


def evaluate(wl: Workload, nodes: list[Node], where: str, rows: list[dict[str, float]],
             problems: list[str]) -> None:
    """Plan once, run every alpha's point, compare with first fit and HEFT, check."""
    hist = RunHistory.from_runtimes((t.name, t.runtime) for t in wl.tasks)
    ff, hf = simulate(wl, nodes, "first-fit", history=hist), heft(wl, nodes)
    front = build_front(wl, nodes, hist)
    runs: list[SimResult] = []
    for a in ALPHAS:
        plan = front.choose(a)
        r = simulate(wl, nodes, "akoscore", a, hist, plan=plan)
        if abs(r.makespan - plan.makespan) > 1e-6 or abs(r.memory_waste_gbh
                                                          - plan.waste_gbh) > 1e-9:
            problems.append(f"{where}: alpha {a} ran {r.makespan:.2f}/{r.memory_waste_gbh:.4f}"
                            f", planned {plan.makespan:.2f}/{plan.waste_gbh:.4f}")
        runs.append(r)
        rows.append({"alpha": a, "m_ff": _ratio(r.makespan, ff.makespan),
                     "w_ff": _ratio(r.memory_waste_gbh, ff.memory_waste_gbh),
                     "m_heft": _ratio(r.makespan, hf.makespan),
                     "w_heft": _ratio(r.memory_waste_gbh, hf.memory_waste_gbh)})
    if runs[0].makespan > 1.03 * hf.makespan + 1e-9:
        problems.append(f"{where}: alpha 0 makespan {runs[0].makespan:.2f} > 1.03 x HEFT "
                        f"{hf.makespan:.2f}")
    for lo, hi, a in zip(runs, runs[1:], ALPHAS[1:]):
        if hi.memory_waste_gbh > lo.memory_waste_gbh + 1e-9 or hi.makespan < lo.makespan - 1e-9:
            problems.append(f"{where}: not a front at alpha {a}: {lo.makespan:.2f}/"
                            f"{lo.memory_waste_gbh:.4f} -> {hi.makespan:.2f}/"
                            f"{hi.memory_waste_gbh:.4f}")
    mid = runs[ALPHAS.index(0.5)]
    for name, other in (("first-fit", ff), ("HEFT", hf)):
        if (other.makespan < 0.98 * mid.makespan
                and other.memory_waste_gbh < 0.98 * mid.memory_waste_gbh):
            problems.append(f"{where}: {name} beats alpha 0.5 on both: {other.makespan:.2f}/"
                            f"{other.memory_waste_gbh:.4f} vs {mid.makespan:.2f}/"
                            f"{mid.memory_waste_gbh:.4f}")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (1.0 if a <= 0 else float("inf"))


def report(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}: ratios to first fit and to HEFT, median / worst (max) over "
          f"{len(rows) // len(ALPHAS)} cases")
    print(f"{'alpha':>5}  {'makespan/FF':>15}  {'waste/FF':>15}  {'makespan/HEFT':>15}  "
          f"{'waste/HEFT':>15}")
    for a in ALPHAS:
        sel = [r for r in rows if r["alpha"] == a]
        cells = [f"{statistics.median(r[k] for r in sel):6.3f} / {max(r[k] for r in sel):6.3f}"
                 for k in ("m_ff", "w_ff", "m_heft", "w_heft")]
        print(f"{a:5.2f}  " + "  ".join(f"{c:>15}" for c in cells))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), default="eval")
    ap.add_argument("--per-recipe", type=int, default=11)
    ap.add_argument("traces", nargs="?", type=Path, default=TRACES)
    args = ap.parse_args(argv[1:])
    node_sets = {k: load_nodes_file(p) for k, p in NODE_SETS.items()}
    problems: list[str] = []
    rows: list[dict[str, float]] = []
    began, count = time.perf_counter(), 0
    for wl in instances(args.set, args.per_recipe):
        for ns, nodes in node_sets.items():
            evaluate(wl, nodes, f"{wl.name} ({len(wl.tasks)} tasks) on {ns}", rows, problems)
            count += 1
    print(f"{args.set} set: {count // len(node_sets)} generated instances over {len(RECIPES)} "
          f"recipes x {len(node_sets)} node sets = {count} cases "
          f"({time.perf_counter() - began:.0f} s)")
    report(f"generated ({args.set})", rows)
    held: list[dict[str, float]] = []
    traces = sorted(args.traces.glob("*.json"))
    for path in traces:
        wl = from_trace(path)
        for ns, nodes in node_sets.items():
            evaluate(wl, nodes, f"trace {path.stem} on {ns}", held, problems)
    if held:
        report(f"held-out traces ({len(traces)} in {args.traces})", held)
    else:
        problems.append(f"no traces found in {args.traces} (set AKOFLOW_WFCOMMONS)")
    wl = from_spec(montage_shape())
    nodes = node_sets["nodes4"]
    start = time.perf_counter()
    r = simulate(wl, nodes, "akoscore")
    secs = time.perf_counter() - start
    print(f"\nmontage {len(wl.tasks)} activities (over the plan limit: online AkôScore): "
          f"simulated in {secs:.1f} s (plan "
          f"{r.plan.label if r.plan else '-'}, makespan {r.makespan:.0f} s, waste "
          f"{r.memory_waste_gbh:.1f} GB*h)")
    print("\nchecks: " + ("all passed" if not problems else f"{len(problems)} failed"))
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
