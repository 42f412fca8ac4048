"""HEFT baseline for the benchmark (never used by the dispatcher).

Classic HEFT (Topcuoglu et al. 2002) adapted to nodes with many cpus and memory: tasks are
taken by decreasing upward rank (own mean run time over the node speeds + the largest rank of
a child; ties by workflow order, which keeps parents first), and each goes to the node where
it would finish earliest, starting at the first moment after its parents end when the node's
free cpu and memory cover it for its whole run (a step-function profile per node, so a task
may be slotted into an earlier gap). Data transfer times are not modelled (traces hold no
network figures), so communication costs are zero.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence

from akoflow.executor import Node
from akoflow.scheduling.simulator import Run, SimResult, SimulationError, metrics
from akoflow.scheduling.workload import SimTask, Workload


class _Profile:
    """Free cpu and memory of one node as a step function of time."""

    def __init__(self, node: Node) -> None:
        self.times = [0.0]
        self.cpu = [node.cpus]
        self.mem = [float(node.memory)]

    def _split(self, t: float) -> int:
        i = bisect.bisect_right(self.times, t) - 1
        if self.times[i] != t:
            self.times.insert(i + 1, t)
            self.cpu.insert(i + 1, self.cpu[i])
            self.mem.insert(i + 1, self.mem[i])
            i += 1
        return i

    def earliest(self, ready: float, dur: float, cpu: float, mem: int) -> float:
        """First start >= ready with room for [start, start + dur)."""
        i = bisect.bisect_right(self.times, ready) - 1
        start = ready
        while True:
            j, ok = i, True
            while j < len(self.times) and self.times[j] < start + dur:
                if self.cpu[j] + 1e-9 < cpu or self.mem[j] < mem:
                    ok = False
                    break
                j += 1
            if ok:
                return start
            i = j + 1
            if i >= len(self.times):
                return float("inf")
            start = self.times[i]

    def reserve(self, start: float, end: float, cpu: float, mem: int) -> None:
        a = self._split(start)
        b = self._split(end) if end > start else a
        for k in range(a, b):
            self.cpu[k] -= cpu
            self.mem[k] -= mem


def upward_ranks(tasks: Sequence[SimTask], mean_speed: float) -> list[float]:
    index = {t.name: i for i, t in enumerate(tasks)}
    children: list[list[int]] = [[] for _ in tasks]
    for i, t in enumerate(tasks):
        for p in t.parents:
            children[index[p]].append(i)
    order: list[int] = []  # reverse topological order by an explicit DFS (no recursion limit)
    seen = [False] * len(tasks)
    for root in range(len(tasks)):
        if seen[root]:
            continue
        stack = [(root, 0)]
        seen[root] = True
        while stack:
            node, k = stack.pop()
            if k < len(children[node]):
                stack.append((node, k + 1))
                c = children[node][k]
                if not seen[c]:
                    seen[c] = True
                    stack.append((c, 0))
            else:
                order.append(node)
    rank = [0.0] * len(tasks)
    for i in order:
        rank[i] = tasks[i].runtime / mean_speed + max((rank[c] for c in children[i]),
                                                       default=0.0)
    return rank


def heft(wl: Workload, nodes: Sequence[Node]) -> SimResult:
    began = time.perf_counter()
    speeds = [n.speed if n.speed > 0 else 1.0 for n in nodes]
    rank = upward_ranks(wl.tasks, sum(speeds) / len(speeds))
    profiles = [_Profile(n) for n in nodes]
    finish: dict[str, float] = {}
    runs: list[Run] = []
    for i in sorted(range(len(wl.tasks)), key=lambda k: (-rank[k], k)):
        t = wl.tasks[i]
        ready = max((finish[p] for p in t.parents), default=0.0)
        best: tuple[float, float, int] | None = None
        for k, node in enumerate(nodes):
            if t.node_selector and not all(
                    node.labels.get(a) == b or b in node.features
                    for a, b in t.node_selector.items()):
                continue
            dur = t.runtime / speeds[k]
            start = profiles[k].earliest(ready, dur, t.cpu, t.memory)
            if best is None or start + dur < best[0]:
                best = (start + dur, start, k)
        if best is None or best[0] == float("inf"):
            raise SimulationError(f"task {t.name} fits no node")
        end, start, k = best
        profiles[k].reserve(start, end, t.cpu, t.memory)
        finish[t.name] = end
        runs.append(Run(t.name, nodes[k].name, start, end, t.cpu, t.used_memory))
    makespan, waste, util = metrics(runs, nodes)
    return SimResult("heft", makespan, waste, util, runs, time.perf_counter() - began)
