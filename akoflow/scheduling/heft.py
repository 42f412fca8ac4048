"""HEFT: the benchmark's baseline, and the offline planner behind AkôScore's fast plans.

Classic HEFT (Topcuoglu et al. 2002) adapted to nodes with many cpus and memory: tasks are
taken by decreasing upward rank (own mean run time over the node speeds + the largest rank of
a child; ties by workflow order, which keeps parents first), and each goes to the node where
it would finish earliest, starting at the first moment after its parents end when the node's
free cpu and memory cover it for its whole run (a step-function profile per node, so a task
may be slotted into an earlier gap). Data transfer times are not modelled (traces hold no
network figures), so communication costs are zero.

`heft(wl, nodes, slack)` with slack > 0 is the epsilon-constraint variant AkôScore plans with:
among the nodes whose finish time is within `slack` x the task's run time of the earliest,
the task takes the one where it adds the least memory waste (the node's memory for the part
of its run during which the node would otherwise be idle, minus what the task uses), ties
going to the earliest finish. slack = 0 is classic HEFT; slack = inf ignores time.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Sequence

from akoflow.port import Node
from akoflow.scheduling.simulator import Run, SimResult, SimulationError, metrics
from akoflow.scheduling.workload import SimTask, Workload


class _Profile:
    """Free cpu and memory of one node as a step function of time."""

    def __init__(self, node: Node) -> None:
        self.times = [0.0]
        self.cpu = [node.cpus]
        self.mem = [float(node.memory)]
        self.full_cpu, self.full_mem = node.cpus, float(node.memory)

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

    def idle_within(self, start: float, end: float) -> float:
        """Seconds of [start, end) during which nothing is reserved on the node."""
        i = bisect.bisect_right(self.times, start) - 1
        idle = 0.0
        while i < len(self.times) and self.times[i] < end:
            upto = self.times[i + 1] if i + 1 < len(self.times) else end
            if self.cpu[i] >= self.full_cpu - 1e-9 and self.mem[i] >= self.full_mem:
                idle += min(upto, end) - max(self.times[i], start)
            i += 1
        return idle

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


def heft(wl: Workload, nodes: Sequence[Node], slack: float = 0.0) -> SimResult:
    """The HEFT schedule (slack 0), or its memory-aware epsilon variant (module docstring)."""
    began = time.perf_counter()
    speeds = [n.speed if n.speed > 0 else 1.0 for n in nodes]
    rank = upward_ranks(wl.tasks, sum(speeds) / len(speeds))
    profiles = [_Profile(n) for n in nodes]
    finish: dict[str, float] = {}
    runs: list[Run] = []
    for i in sorted(range(len(wl.tasks)), key=lambda k: (-rank[k], k)):
        t = wl.tasks[i]
        ready = max((finish[p] for p in t.parents), default=0.0)
        options: list[tuple[float, float, int]] = []  # (finish, start, node index)
        for k, node in enumerate(nodes):
            if t.node_selector and not all(
                    node.labels.get(a) == b or b in node.features
                    for a, b in t.node_selector.items()):
                continue
            dur = t.runtime / speeds[k]
            start = profiles[k].earliest(ready, dur, t.cpu, t.memory)
            if start != float("inf"):
                options.append((start + dur, start, k))
        if not options:
            raise SimulationError(f"task {t.name} fits no node")
        end, start, k = min(options)
        if slack > 0 and len(options) > 1:
            bound = math.inf if math.isinf(slack) else end + slack * (end - start)
            end, start, k = min(
                (o for o in options if o[0] <= bound + 1e-9),
                key=lambda o: (_added_waste(profiles[o[2]], nodes[o[2]], o[1], o[0], t), o[0]))
        profiles[k].reserve(start, end, t.cpu, t.memory)
        finish[t.name] = end
        runs.append(Run(t.name, nodes[k].name, start, end, t.cpu, t.used_memory))
    makespan, waste, util = metrics(runs, nodes)
    label = "heft" if slack == 0 else f"heft-mem{slack:g}"
    return SimResult(label, makespan, waste, util, runs, time.perf_counter() - began)


def _added_waste(profile: _Profile, node: Node, start: float, end: float, t: SimTask) -> float:
    """Byte-seconds of waste the task adds on this node: memory of the node held only
    because of it, minus what it uses while it runs."""
    if end <= start:
        return 0.0
    return node.memory * profile.idle_within(start, end) - t.used_memory * (end - start)
