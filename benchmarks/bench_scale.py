"""Scale figures: registration of big workflows, and one dispatch cycle at 100,000 activities.

- `register_montage_6448_s`: the 6,448-activity AkôFlow Montage shape, validated YAML →
  manifest (`akoflow submit`'s registration step, in-process).
- `register_100000_s`: 1,000 chains of 100 activities.
- The dispatch cycle runs in a FRESH process (as `akoflow dispatch` would) against that
  100,000-activity workflow, 1,000 of them ready:
  * `dispatch_cycle_100000_local_s`: on the default local site (2 cpus): the cycle claims
    only what has room, so its cost does not grow with what is ready;
  * `dispatch_cycle_100000_claim_1000_s`: on a local site sized for 1,000 tasks, so the cycle
    claims all 1,000: intents, 1,000 attempt directories, 1,000 processes started;
  * `dispatcher_peak_rss_mb`: peak RSS of that dispatcher process.
- Placement alone, 1,000 ready activities of mixed shapes on 100 heterogeneous nodes, the
  best of 5 (what one cycle of a placed site pays, in-process): `place_1000_on_100_ms` for
  online AkôScore (an unplanned workflow, or an online point of the front), and
  `place_1000_on_100_plan_ms` following an offline plan (the plan's per-node order rebuilt
  as every cycle does), each with its ratio to first fit timed beside it.
Usage: python benchmarks/bench_scale.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import cleanup, figure, fresh_home
from gen_montage import montage_shape

CHILD = r"""
import json, os, sys, time
from akoflow import service
from akoflow.dispatch.cycle import Dispatcher
from akoflow.sites import SiteResolver
wf_id, cpus = int(sys.argv[1]), sys.argv[2]
m = service.open_manifest()
overrides = {"local": {"cpus": int(cpus)}} if cpus != "default" else {}
d = Dispatcher(m, wf_id, SiteResolver(overrides=overrides), service.dispatch_config())
start = time.perf_counter()
report = d.cycle(force_poll=True)
elapsed = time.perf_counter() - start
# VmHWM, not ru_maxrss: the latter keeps the parent's size from before exec.
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"s": elapsed, "submitted": report.submitted, "rss_mb": rss}))
d.close()
"""


def _cycle(home: Path, wf_id: int, cpus: str) -> dict[str, float]:
    env = {**os.environ, "AKOFLOW_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(wf_id), cpus], env=env, cwd=home,
                         capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _best_ms(fn: Callable[[], object], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def placement_figures() -> None:
    """Time one placement round of 1,000 ready activities on 100 nodes."""
    from akoflow.port import Node
    from akoflow.scheduling.history import RunHistory
    from akoflow.scheduling.placement import TaskView, place
    from akoflow.scheduling.plan import Plan

    gib = 1 << 30
    rng = random.Random(16)
    shapes = [(8, 32, 1.0), (16, 32, 1.6), (8, 128, 1.2), (4, 8, 0.8)]
    nodes = []
    for k in range(100):
        cpus, mem, speed = rng.choice(shapes)
        nodes.append(Node(f"n{k}", cpus, cpus, mem * gib, mem * gib, speed=speed))
    tasks = [TaskView(f"t{i}", cpu=rng.choice([1, 1, 2, 4]), memory=rng.choice([1, 2, 4, 8, 16])
                      * gib // 2, estimate=rng.uniform(1, 600), rank=rng.uniform(1, 5000))
             for i in range(1000)]
    history = RunHistory()
    plan = Plan("bench", None, 0.5, 0.0, 0.0, {t.name: rng.choice(nodes).name for t in tasks},
                {t.name: rng.uniform(0, 100) for t in tasks})
    ff = _best_ms(lambda: place(tasks, nodes, "first-fit", history))
    ako = _best_ms(lambda: place(tasks, nodes, "akoscore", history))
    planned = _best_ms(lambda: place(tasks, nodes, "akoscore", history,
                                     plan.follower([t.name for t in tasks])))
    figure("place_1000_on_100_first_fit_ms", ff, "ms")
    figure("place_1000_on_100_ms", ako, f"ms ({ako / ff:.2f}x first fit)")
    figure("place_1000_on_100_plan_ms", planned, f"ms ({planned / ff:.2f}x first fit)")


def main() -> None:
    placement_figures()
    home = fresh_home("scale")
    os.environ["AKOFLOW_HOME"] = str(home)
    from akoflow import service
    from akoflow.spec import ActivitySpec, WorkflowSpec, dump_yaml, load_workflow

    m = service.open_manifest()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(dump_yaml(montage_shape()))
    spec = load_workflow(fh.name)
    start = time.perf_counter()
    service.register(m, spec)
    figure("register_montage_6448_s", time.perf_counter() - start)
    Path(fh.name).unlink()

    acts = [ActivitySpec(name=f"c{c}-{i}", run="true", depends_on=[f"c{c}-{i - 1}"] if i else [])
            for c in range(1000) for i in range(100)]
    big = WorkflowSpec(name="scale", activities=acts)
    start = time.perf_counter()
    wf = m.register_workflow(big, run_root=str(home / "runs"))
    figure("register_100000_s", time.perf_counter() - start)
    del acts, big

    first = _cycle(home, wf.id, "default")
    figure("dispatch_cycle_100000_local_s", first["s"])
    service.cancel(m, wf.id)
    wf2 = m.register_workflow(
        WorkflowSpec(name="scale2", activities=[
            ActivitySpec(name=f"c{c}-{i}", run="true",
                         depends_on=[f"c{c}-{i - 1}"] if i else [])
            for c in range(1000) for i in range(100)]),
        run_root=str(home / "runs"))
    second = _cycle(home, wf2.id, "1000")
    assert second["submitted"] == 1000, second
    figure("dispatch_cycle_100000_claim_1000_s", second["s"])
    figure("dispatcher_peak_rss_mb", max(first["rss_mb"], second["rss_mb"]), "MB")
    time.sleep(1)
    service.cancel(m, wf2.id)
    cleanup(home)


if __name__ == "__main__":
    main()
