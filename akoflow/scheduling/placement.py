"""Placement of ready activities on nodes: feasibility first, then a policy's scores.

An activity is a candidate for a node only if the node's free cpu and memory cover its
request and the node's labels/features satisfy its `nodeSelector`. Every candidate is scored
by the policy (higher is better, None = unsuitable); the best wins, ties going to the node
listed first, so a placement is reproducible. An activity no candidate accepts gets no node:
it stays READY and is reconsidered next cycle. The dispatcher and the simulator both call
`place()`, so what the simulator measures is what the dispatcher does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from akoflow.executor import Node


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

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form, stored on the attempt so `akoflow explain` can show the race."""
        return {"node": self.node, "scores": dict(self.scores), "reason": self.reason,
                "policy": self.policy}


def request_of(resources: Mapping[str, Any]) -> tuple[float, int]:
    return float(resources.get("cpu") or 1.0), int(resources.get("memory") or 0)


def _limit(resources: Mapping[str, Any]) -> float | None:
    limit = resources.get("time_limit")
    return None if limit is None else float(limit)


def task_view(name: str, resources: Mapping[str, Any], *, alpha: float = 0.5,
              identity: str | None = None, estimate: float | None = None,
              seq: int = 0) -> TaskView:
    """A TaskView from a resources mapping as the manifest stores it."""
    cpu, mem = request_of(resources)
    return TaskView(name=name, cpu=cpu, memory=mem, identity=identity,
                    node_selector=dict(resources.get("node_selector") or {}), alpha=alpha,
                    estimate=estimate, time_limit=_limit(resources),
                    seq=seq)


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


def fits(room: Room, resources: Mapping[str, Any]) -> bool:
    cpu, mem = request_of(resources)
    return (room.cpus + 1e-9 >= cpu and room.memory >= mem
            and selector_ok(room.node, resources.get("node_selector") or {}))


def _shape(task: TaskView) -> tuple[float, int, tuple[tuple[str, str], ...]]:
    return task.cpu, task.memory, tuple(sorted(task.node_selector.items()))


def place(
    tasks: Sequence[TaskView],
    nodes: Sequence[Node],
    policy: str | Policy = "akoscore",
    history: History = NO_HISTORY,
) -> list[Decision]:
    """Decide a node (or None = wait) for each task, deducting room as it goes; tasks are
    taken longest expected time first, the answer is in the order given.

    `policy` is a name or `module:function` (resolved by `policies.load_policy`) or the
    policy function itself. Rooms only shrink within a call, so a request shape that found
    no candidate is not tried again: a long ready queue costs O(shapes), not O(queue x nodes).
    """
    from akoflow.scheduling.policies import call_policy, expected_time, load_policy

    if isinstance(policy, str):
        name, fn = policy, load_policy(policy)
    else:
        name, fn = str(getattr(policy, "__name__", policy)), policy
    rooms = [Room(n, n.cpus_free, n.memory_free) for n in nodes]
    hopeless: set[tuple[float, int, tuple[tuple[str, str], ...]]] = set()
    decided: dict[int, Decision] = {}
    # Longest expected time first (LPT; ties keep workflow order): long tasks get the pick
    # of the nodes, and short ones fill in what is left.
    order = sorted(range(len(tasks)), key=lambda i: -expected_time(tasks[i], history))
    for i in order:
        task = tasks[i]
        shape = _shape(task)
        cands = [] if shape in hopeless else [r for r in rooms if fits_task(r, task)]
        if not cands:
            hopeless.add(shape)
            decided[i] = Decision(task.name, None, {}, _no_room(task))
            continue
        # The policy sees each candidate as it is now, after this round's earlier picks.
        views = [replace(r.node, cpus_free=r.cpus, memory_free=r.memory) for r in cands]
        scores = call_policy(fn, name, task, views, history)
        best: Room | None = None
        best_score = 0.0
        for room, score in zip(cands, scores):
            if score is not None and (best is None or score > best_score):
                best, best_score = room, score
        named = {r.node.name: s for r, s in zip(cands, scores)}
        if best is None:
            decided[i] = Decision(task.name, None, named, "the policy accepted no candidate",
                                  name)
            continue
        best.cpus -= task.cpu
        best.memory -= task.memory
        decided[i] = Decision(task.name, best.node.name, named, policy=name)
    return [decided[i] for i in range(len(tasks))]


def _no_room(task: TaskView) -> str:
    sel = f", selector {dict(task.node_selector)}" if task.node_selector else ""
    return f"no node has {task.cpu:g} cpu and {task.memory} bytes free now{sel}"


def first_fit(
    requests: Sequence[Mapping[str, Any]], nodes: Sequence[Node]
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
