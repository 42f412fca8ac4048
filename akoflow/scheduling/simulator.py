"""Discrete-event simulation of a workflow on a node set, with the dispatcher's own placement.

The rules are the dispatcher's: an activity becomes READY when its count of unfinished parents
reaches 0 (failures are not modelled); at every moment something changes, the READY ones are
offered to the same `place()` (longest expected first) with the same policy code; what gets no node
waits for the next change. A task holds its cpu and memory request on its node for
runtime / node.speed seconds. The simulator assumes the workflow ran before: its history
holds each task's run time at speed 1.0 (that is what AkôScore's speed term is fed in a rerun).

With AkôScore (the default) the simulator does what the dispatcher does at registration: it
plans (`front.py`: a family of settings, each simulated here, their Pareto front, alpha's
point on it) and then runs the chosen point, following an offline plan's node choices and
per-node order (`plan.py`). That run reproduces the point's figures exactly, which is what
makes alpha's front monotone by construction.

Metrics: makespan; memory waste = the memory of every node while it runs at least one task
(a node you hold) minus the memory the running tasks actually use, in GB*h; and per-node cpu
utilisation (busy cpu-seconds / cpus / makespan).
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from akoflow.port import Node
from akoflow.scheduling.history import RunHistory
from akoflow.scheduling.placement import History, Policy, TaskView, place
from akoflow.scheduling.plan import Plan, PlanFollower
from akoflow.scheduling.policies import load_policy
from akoflow.scheduling.workload import Workload

GB = 1e9


class SimulationError(RuntimeError):
    """The workflow cannot finish on these nodes (a task fits none of them)."""


@dataclass(frozen=True)
class Run:
    task: str
    node: str
    start: float
    end: float
    cpu: float
    used_memory: int


@dataclass
class SimResult:
    policy: str
    makespan: float
    memory_waste_gbh: float
    utilisation: dict[str, float]
    runs: list[Run] = field(default_factory=list)
    wall_seconds: float = 0.0
    plan: Plan | None = None  # AkôScore: the point of the front that was run

    def tasks_per_node(self) -> dict[str, int]:
        return {n: sum(1 for r in self.runs if r.node == n) for n in self.utilisation}

    def summary(self) -> dict[str, object]:
        return {"policy": self.policy, "makespan": round(self.makespan, 3),
                "memory_waste_gbh": round(self.memory_waste_gbh, 6),
                "utilisation": {k: round(v, 4) for k, v in self.utilisation.items()},
                "tasks": len(self.runs), "wall_seconds": round(self.wall_seconds, 3),
                **({"plan": self.plan.summary()} if self.plan is not None else {})}


def _busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of intervals."""
    total, cur_s, cur_e = 0.0, None, 0.0
    for s, e in sorted(intervals):
        if cur_s is None or s > cur_e:
            if cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_s is not None:
        total += cur_e - cur_s
    return total


def metrics(runs: Sequence[Run], nodes: Sequence[Node]) -> tuple[float, float, dict[str, float]]:
    """(makespan, memory waste in GB*h, cpu utilisation per node) of a finished schedule."""
    makespan = max((r.end for r in runs), default=0.0)
    by_node: dict[str, list[Run]] = {n.name: [] for n in nodes}
    for r in runs:
        by_node[r.node].append(r)
    waste, util = 0.0, {}
    for n in nodes:
        rs = by_node[n.name]
        held = n.memory * _busy_time([(r.start, r.end) for r in rs])
        used = sum(r.used_memory * (r.end - r.start) for r in rs)
        waste += held - used
        busy = sum(r.cpu * (r.end - r.start) for r in rs)
        util[n.name] = busy / (n.cpus * makespan) if makespan > 0 and n.cpus > 0 else 0.0
    return makespan, waste / GB / 3600.0, util


def task_views(wl: Workload, alpha: float | None,
               ranks: Sequence[float] | None = None) -> list[TaskView]:
    return [TaskView(name=t.name, cpu=t.cpu, memory=t.memory, node_selector=t.node_selector,
                     alpha=alpha if alpha is not None else (
                         t.alpha if t.alpha is not None else wl.alpha),
                     estimate=t.estimate, seq=i, rank=ranks[i] if ranks else 0.0)
            for i, t in enumerate(wl.tasks)]


def simulate(wl: Workload, nodes: Sequence[Node], policy: str | Policy = "akoscore",
             alpha: float | None = None, history: History | None = None,
             plan: Plan | None = None) -> SimResult:
    """Run `wl` on `nodes` (all idle at t=0) and measure it.

    AkôScore first plans (unless `plan` is given: a point of a front made earlier, as the
    benchmark does to plan once for several alphas) and then runs the plan's point."""
    hist = history or RunHistory.from_runtimes((t.name, t.runtime) for t in wl.tasks)
    if plan is None and policy == "akoscore":
        from akoflow.scheduling.front import plan_for

        plan = plan_for(wl, nodes, hist, wl.alpha if alpha is None else alpha)
    if plan is None:
        return run_policy(wl, nodes, policy, alpha, hist)
    result = run_plan(wl, nodes, plan, hist)
    result.policy = "akoscore"
    result.plan = plan
    return result


def run_plan(wl: Workload, nodes: Sequence[Node], plan: Plan, history: History) -> SimResult:
    """Run one point of a front: its online setting, or its offline plan followed."""
    if not plan.offline:
        return run_policy(wl, nodes, str(plan.policy), plan.alpha, history)
    views = task_views(wl, plan.alpha, wl_ranks(wl, nodes))
    return _run(wl, nodes, "akoscore", views, history, plan.follower(t.name for t in wl.tasks))


def wl_ranks(wl: Workload, nodes: Sequence[Node]) -> list[float]:
    """Upward ranks at the nodes' mean speed (HEFT's priority)."""
    from akoflow.scheduling.heft import upward_ranks

    speeds = [n.speed if n.speed > 0 else 1.0 for n in nodes]
    return upward_ranks(wl.tasks, sum(speeds) / max(1, len(speeds)))


def run_policy(wl: Workload, nodes: Sequence[Node], policy: str | Policy,
               alpha: float | None, history: History) -> SimResult:
    """Greedy online placement with one policy; AkôScore's rounds go by upward rank."""
    ranks = wl_ranks(wl, nodes) if policy == "akoscore" else None
    return _run(wl, nodes, policy, task_views(wl, alpha, ranks), history, None)


def _run(wl: Workload, nodes: Sequence[Node], policy: str | Policy, views: list[TaskView],
         hist: History, follower: PlanFollower | None) -> SimResult:
    began = time.perf_counter()
    fn = load_policy(policy) if isinstance(policy, str) else policy
    label = policy if isinstance(policy, str) else str(getattr(policy, "__name__", policy))
    index = {t.name: i for i, t in enumerate(wl.tasks)}
    children: list[list[int]] = [[] for _ in wl.tasks]
    waiting = [0] * len(wl.tasks)
    for i, t in enumerate(wl.tasks):
        for p in t.parents:
            children[index[p]].append(i)
        waiting[i] = len(t.parents)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    node_ix = {n.name: k for k, n in enumerate(nodes)}
    cpus = [n.cpus for n in nodes]
    mem = [n.memory for n in nodes]
    speed = [n.speed if n.speed > 0 else 1.0 for n in nodes]
    min_cpu = min((v.cpu for v in views), default=1.0)
    heap: list[tuple[float, int, int]] = []
    runs: list[Run] = []
    now = 0.0
    while ready or heap:
        if ready and max(cpus, default=0.0) + 1e-9 >= min_cpu:
            free = [replace(n, cpus_free=cpus[k], memory_free=mem[k])
                    for k, n in enumerate(nodes)]
            if follower is not None and follower.clock < math.inf:
                follower.advance(now)
            decisions = place([views[i] for i in ready], free, fn, hist, follower)
            left = []
            for i, d in zip(ready, decisions):
                if d.node is None:
                    left.append(i)
                    continue
                k, t = node_ix[d.node], wl.tasks[i]
                cpus[k] -= t.cpu
                mem[k] -= t.memory
                end = now + t.runtime / speed[k]
                heapq.heappush(heap, (end, i, k))
                runs.append(Run(t.name, d.node, now, end, t.cpu, t.used_memory))
            ready = left
        if not heap and follower is not None and follower.clock < math.inf:
            follower.advance(math.inf)  # nothing runs that could end: the plan lets go
            continue
        if not heap:
            stuck = wl.tasks[ready[0]]
            sel = f", selector {dict(stuck.node_selector)}" if stuck.node_selector else ""
            raise SimulationError(f"task {stuck.name} ({stuck.cpu:g} cpu, {stuck.memory} "
                                  f"bytes{sel}) fits no node")
        now = heap[0][0]
        while heap and heap[0][0] <= now:
            _, i, k = heapq.heappop(heap)
            cpus[k] += wl.tasks[i].cpu
            mem[k] += wl.tasks[i].memory
            for c in children[i]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    bisect.insort(ready, c)
    makespan, waste, util = metrics(runs, nodes)
    return SimResult(label, makespan, waste, util, runs, time.perf_counter() - began)
