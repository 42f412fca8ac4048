"""Lineage against ground truth: every WfCommons trace, turned into a workflow whose tasks do
the trace's I/O (`import wfformat --data`), run with default settings; the `used` and
`generated` edges `akoflow files --json` reports are compared with the trace's own
inputFiles/outputFiles, task by task. Prints precision and recall of each, per trace, and
the worst over all traces.

Usage: python benchmarks/bench_lineage.py [TRACE.json ...] [--scale S] [--snapshots]
                                        [--site SITE]
                                        [--generate N]
(no TRACE: every trace in ../shared/data/wfcommons; pass held-out traces to check those, or
`--generate N` for N instances of each of WfCommons' ten recipes, made with its generator
from seeds never used elsewhere (needs `pip install 'akoflow[bench]'`);
`--snapshots` turns syscall tracing off, to see what the fallback gives; `--site slurm` runs
each task as a Slurm job, traced by its `akoflow worker`.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import TRACES, cleanup, fresh_home

from akoflow.port import akoflow_argv
from akoflow.spec.wfformat import trace_io

Edges = set[tuple[str, str]]


def run(trace: Path, scale: float, snapshots: bool, site: str | None
        ) -> tuple[Edges, Edges, Edges, Edges, float]:
    home = fresh_home("lineage")
    env = {**os.environ, "AKOFLOW_HOME": str(home)}
    if snapshots:
        env["AKOFLOW_TRACE"] = "0"
    wf, data = home / "wf.yaml", home / "data"

    def ak(*args: str) -> str:
        proc = subprocess.run([*akoflow_argv(), *args], env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise SystemExit(f"akoflow {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
        return proc.stdout

    try:
        ak("import", "wfformat", str(trace), "-o", str(wf), "--data", str(data),
           "--scale", str(scale))
        start = time.perf_counter()
        ak("run", str(wf), "--quiet", *(["--site", site] if site else []))
        wall = time.perf_counter() - start
        rows = json.loads(ak("files", "1", "--json"))
    finally:
        cleanup(home)
    want_used: Edges = set()
    want_gen: Edges = set()
    for name, (ins, outs) in trace_io(trace).items():
        want_used |= {(name, f) for f in ins}
        want_gen |= {(name, f) for f in outs}
    got_used = {(r["activity"], r["path"]) for r in rows if r["role"] in ("used",
                                                                          "pre-existing")}
    got_gen = {(r["activity"], r["path"]) for r in rows if r["role"] == "generated"}
    return want_used, got_used, want_gen, got_gen, wall


def pr(want: Edges, got: Edges) -> tuple[float, float]:
    tp = len(want & got)
    return (tp / len(got) if got else 1.0), (tp / len(want) if want else 1.0)


def generated(per_recipe: int, directory: Path) -> list[Path]:
    """Held-out instances: `per_recipe` of each WfCommons recipe, sizes from the recipe's
    smallest to twice that, written as WfFormat JSON."""
    import random

    import numpy
    from wfcommons.wfchef import recipes
    from wfcommons.wfgen.generator import WorkflowGenerator

    from akoflow.scheduling.synthetic import RECIPES, SMALLEST

    out = []
    for recipe, cls_name in RECIPES.items():
        for j in range(per_recipe):
            seed = 7_000_003 + 101 * j
            random.seed(seed)
            numpy.random.seed(seed)
            size = random.Random(f"lineage:{recipe}:{j}").randint(
                SMALLEST[recipe], 2 * SMALLEST[recipe])
            wf = WorkflowGenerator(getattr(recipes, cls_name).from_num_tasks(size)
                                   ).build_workflow(f"{recipe}-{size}-{seed}")
            path = directory / f"gen-{recipe}-{size}-{seed}.json"
            wf.write_json(path)
            out.append(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("traces", nargs="*", type=Path)
    ap.add_argument("--scale", type=float, default=0.0001,
                    help="trace runtimes x this = each task's sleep (default 0.0001)")
    ap.add_argument("--snapshots", action="store_true", help="no syscall tracing")
    ap.add_argument("--site", help="site profile to run on (default: the spec's, local)")
    ap.add_argument("--generate", type=int, default=0, metavar="N",
                    help="check N generated instances of each WfCommons recipe instead")
    args = ap.parse_args()
    gen_dir = fresh_home("lineage-generated") if args.generate else None
    traces = args.traces or (generated(args.generate, gen_dir) if gen_dir else
                             sorted(TRACES.glob("*.json")))
    if not traces:
        sys.exit(f"error: no traces in {TRACES} (set AKOFLOW_WFCOMMONS)")
    worst = [1.0, 1.0, 1.0, 1.0]
    print(f"{'trace':42} {'tasks':>5} {'used P':>7} {'used R':>7} {'gen P':>7} {'gen R':>7}"
          f" {'wall s':>7}")
    for t in traces:
        wu, gu, wg, gg, wall = run(t, args.scale, args.snapshots, args.site)
        figs = [*pr(wu, gu), *pr(wg, gg)]
        worst = [min(a, b) for a, b in zip(worst, figs)]
        tasks = len(trace_io(t))
        print(f"{t.name[:42]:42} {tasks:5d} " + " ".join(f"{x:7.3f}" for x in figs)
              + f" {wall:7.2f}")
        for label, want, got in (("used", wu, gu), ("generated", wg, gg)):
            for what, edges in (("missed", want - got), ("extra", got - want)):
                if edges:
                    print(f"    {label} {what}: {len(edges)}, e.g. {sorted(edges)[:3]}")
    print(f"{'worst over all traces':42} {'':5} " + " ".join(f"{x:7.3f}" for x in worst))
    if gen_dir is not None:
        cleanup(gen_dir)


if __name__ == "__main__":
    main()
