"""Placement of ready activities on nodes: feasibility first, then a policy's scores.

An activity is a candidate for a node only if the node's free cpu and memory cover its
request and the node's labels/features satisfy its `nodeSelector`. Every candidate is scored
by the policy (higher is better, None = unsuitable); the best wins, ties going to the node
listed first, so a placement is reproducible. An activity no candidate accepts gets no node:
it stays READY and is reconsidered next cycle. With a plan (AkôScore, `plan.py`), a planned
task goes to its planned node when its turn there has come, else it waits. The dispatcher
and the simulator both call `place()`, so what the simulator measures is what the
dispatcher does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from akoflow.port import Node, Resources


@dataclass(frozen=True)
class TaskView:
    """What placement needs to know of one ready activity (a manifest row or a sim task)."""

    name: str
    cpu: float = 1.0
    memory: int = 0  # bytes requested
    identity: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    alpha: float = 0.5
    estimate: float | None = None  # declared run time at speed 1.0 (seconds)
    time_limit: float | None = None
    seq: int = 0  # position in the workflow (round-robin's turn)
    rank: float = 0.0  # upward rank (expected seconds to the workflow's end through it)


class History(Protocol):
    """Provenance of earlier runs: expected run time at node speed 1.0, or None if unseen."""

    def expected(self, name: str, identity: str | None) -> float | None: ...


class NoHistory:
    """No earlier runs are known (a first run, or the dispatcher without a manifest)."""

    def expected(self, name: str, identity: str | None) -> float | None:
        return None


NO_HISTORY = NoHistory()

# policy(task, candidate nodes, alpha, history) -> one score per candidate (None = unsuitable)
Policy = Callable[[TaskView, Sequence[Node], float, History], Sequence[float | None]]


class Follower(Protocol):
    """A placement plan being followed (`scheduling/plan.py`): the node it chose for a task
    (None = place it online), and whether the task's turn on that node has come."""

    label: str

    def planned(self, task: str) -> str | None: ...

    def start_of(self, task: str) -> float: ...

    def may_start(self, task: str) -> bool: ...

    def started(self, task: str) -> None: ...


@dataclass
class Room:
    """What is left on a node during one placement round."""

    node: Node
    cpus: float
    memory: int


@dataclass(frozen=True)
class Decision:
    """The outcome for one task: the chosen node (None = wait) and every candidate's score."""

    task: str
    node: str | None
    scores: dict[str, float | None]
    reason: str = ""
    policy: str = ""
    terms: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # speed, memory
    rank: float | None = None
    plan: Mapping[str, Any] | None = None  # the plan followed: its label and node

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form, stored on the attempt so `akoflow explain` can show the race."""
        out: dict[str, Any] = {"node": self.node, "scores": dict(self.scores),
                               "reason": self.reason, "policy": self.policy}
        if self.terms:
            out["terms"] = {n: {"speed": round(sp, 6), "memory": round(me, 6)}
                            for n, (sp, me) in self.terms.items()}
        if self.rank is not None:
            out["rank"] = round(self.rank, 3)
        if self.plan is not None:
            out["plan"] = dict(self.plan)
        return out


def request_of(resources: Resources) -> tuple[float, int]:
    """(cpus, bytes) as placement counts them: 1 cpu and no memory unless asked."""
    return float(resources.cpu or 1.0), int(resources.memory or 0)


def _limit(resources: Resources) -> float | None:
    return None if resources.time_limit is None else float(resources.time_limit)


def task_view(name: str, resources: Resources, *, alpha: float = 0.5,
              identity: str | None = None, estimate: float | None = None,
              seq: int = 0) -> TaskView:
    """A TaskView of an activity's resources."""
    cpu, mem = request_of(resources)
    return TaskView(name=name, cpu=cpu, memory=mem, identity=identity,
                    node_selector=dict(resources.node_selector), alpha=alpha,
                    estimate=estimate, time_limit=_limit(resources), seq=seq)


def selector_ok(node: Node, selector: Mapping[str, str]) -> bool:
    """Each selector entry matches a label exactly, or names a feature (`ssd`, `gpu=a100`)."""
    for key, value in selector.items():
        if node.labels.get(key) == value:
            continue
        if value in node.features or f"{key}={value}" in node.features:
            continue
        if key == "partition" and value in node.partitions:
            continue
        return False
    return True


def fits_task(room: Room, task: TaskView) -> bool:
    return (room.cpus + 1e-9 >= task.cpu and room.memory >= task.memory
            and selector_ok(room.node, task.node_selector))


def fits(room: Room, resources: Resources) -> bool:
    cpu, mem = request_of(resources)
    return (room.cpus + 1e-9 >= cpu and room.memory >= mem
            and selector_ok(room.node, resources.node_selector))


def _shape(task: TaskView) -> tuple[float, int, tuple[tuple[str, str], ...]]:
    sel = task.node_selector
    return task.cpu, task.memory, tuple(sorted(sel.items())) if sel else ()


def place(
    tasks: Sequence[TaskView],
    nodes: Sequence[Node],
    policy: str | Policy = "akoscore",
    history: History = NO_HISTORY,
    plan: Follower | None = None,
) -> list[Decision]:
    """Decide a node (or None = wait) for each task, deducting room as it goes; the answer
    is in the order given.

    Tasks are taken in plan order (planned start) when a plan is followed, else by upward
    rank when ranks are known, else longest expected time first. A task the plan placed goes
    to its planned node when its turn there has come and the node has room, else it waits;
    the rest are scored by `policy` (a name, `module:function`, or the function itself).
    Rooms only shrink within a call, so a request shape that found no candidate is not tried
    again: a long ready queue costs O(shapes), not O(queue x nodes).
    """
    from akoflow.scheduling.policies import akoscore, akoscore_terms, call_policy, load_policy
    from akoflow.scheduling.policies import first_fit as first_fit_policy

    if isinstance(policy, str):
        name, fn = policy, load_policy(policy)
    else:
        name, fn = str(getattr(policy, "__name__", policy)), policy
    builtin = fn is akoscore
    ranked = fn is first_fit_policy  # first fit: the first candidate, no views needed
    rooms = [Room(n, n.cpus_free, n.memory_free) for n in nodes]
    by_name = {r.node.name: r for r in rooms}
    hopeless: set[tuple[float, int, tuple[tuple[str, str], ...]]] = set()
    decided: dict[int, Decision] = {}
    for i in _order(tasks, history, plan):
        task = tasks[i]
        target = plan.planned(task.name) if plan is not None else None
        if target is not None and target not in by_name:
            target = None  # the planned node is gone from the inventory: place it online
        if target is not None and not (fits_task(by_name[target], task)
                                       and plan.may_start(task.name)):  # type: ignore[union-attr]
            decided[i] = Decision(task.name, None, {}, f"waiting for its planned node {target}"
                                  f" (plan {plan.label})", name, rank=task.rank)  # type: ignore[union-attr]
            continue
        shape = _shape(task)
        cands = [] if shape in hopeless else _candidates(rooms, task)
        if not cands:
            hopeless.add(shape)
            decided[i] = Decision(task.name, None, {}, _no_room(task))
            continue
        terms: list[tuple[float, float]] = []
        if builtin:
            terms = akoscore_terms(task, cands)
            a = task.alpha
            scores: list[float | None] = [a * me + (1.0 - a) * sp for sp, me in terms]
        elif ranked:
            scores = [-float(k) for k in range(len(cands))]
        else:  # a plugin sees each candidate as it is now, after this round's earlier picks
            views = [replace(r.node, cpus_free=r.cpus, memory_free=r.memory) for r in cands]
            scores = call_policy(fn, name, task, views, history)
        if target is not None:  # the plan's node wins: +1 over any score (all are <= 1)
            scores = [None if s is None else s + (1.0 if r.node.name == target else 0.0)
                      for r, s in zip(cands, scores)]
        best: Room | None = None
        best_score = 0.0
        for room, score in zip(cands, scores):
            if score is not None and (best is None or score > best_score):
                best, best_score = room, score
        named = {r.node.name: s for r, s in zip(cands, scores)}
        named_terms = {r.node.name: t for r, t in zip(cands, terms)}
        followed = None if target is None else {"label": plan.label, "node": target}  # type: ignore[union-attr]
        if best is None:
            decided[i] = Decision(task.name, None, named, "the policy accepted no candidate",
                                  name, named_terms, task.rank)
            continue
        best.cpus -= task.cpu
        best.memory -= task.memory
        if plan is not None:
            plan.started(task.name)
        decided[i] = Decision(task.name, best.node.name, named, policy=name, terms=named_terms,
                              rank=task.rank, plan=followed)
    return [decided[i] for i in range(len(tasks))]


def _candidates(rooms: list[Room], task: TaskView) -> list[Room]:
    """The rooms the task fits in now (the inner loop of every placement: kept lean)."""
    cpu, mem = task.cpu - 1e-9, task.memory
    fit = [r for r in rooms if r.cpus >= cpu and r.memory >= mem]
    if task.node_selector:
        fit = [r for r in fit if selector_ok(r.node, task.node_selector)]
    return fit


def _order(tasks: Sequence[TaskView], history: History,
           plan: Follower | None) -> list[int]:
    """Plan order when a plan is followed (unplanned tasks by rank after it), else upward
    rank when known, else longest expected time first; ties keep workflow order."""
    from akoflow.scheduling.policies import expected_time

    idx = range(len(tasks))
    if plan is not None:
        return sorted(idx, key=lambda i: (plan.start_of(tasks[i].name), -tasks[i].rank, i))
    if any(t.rank for t in tasks):
        return sorted(idx, key=lambda i: (-tasks[i].rank, i))
    base = [expected_time(t, history) for t in tasks]
    return sorted(idx, key=lambda i: (-base[i], i))


def _no_room(task: TaskView) -> str:
    sel = f", selector {dict(task.node_selector)}" if task.node_selector else ""
    return f"no node has {task.cpu:g} cpu and {task.memory} bytes free now{sel}"


def first_fit(
    requests: Sequence[Resources], nodes: Sequence[Node]
) -> list[str | None]:
    """Node name per request (in order), or None where nothing has room now.

    The same answer as `place(..., "first-fit")` (longest time limit first, then the first
    node with room), without building views and scores: the local dispatcher calls it every
    cycle with one node."""
    rooms = [Room(n, n.cpus_free, n.memory_free) for n in nodes]
    out: list[str | None] = [None] * len(requests)
    declared = [first_positive(_limit(r)) for r in requests]  # expected_time, no history
    for i in sorted(range(len(requests)), key=lambda i: -declared[i]):
        for room in rooms:
            if fits(room, requests[i]):
                cpu, mem = request_of(requests[i])
                room.cpus -= cpu
                room.memory -= mem
                out[i] = room.node.name
                break
    return out


def first_positive(*values: float | None) -> float:
    """The first finite positive value, else 1 (a run time nobody declared or saw)."""
    for value in values:
        if value is not None and math.isfinite(value) and value > 0:
            return float(value)
    return 1.0
