"""Placement policies (AkôScore and baselines) and how a policy is found by name.

A policy is a function `policy(task, nodes, alpha, history) -> list[float | None]`: one score
per candidate node (every one already has room and matches the selector), higher is better,
None = unsuitable. `spec.schedule: NAME` names an entry point in the group `akoflow.policies`
(ours: akoscore, first-fit, round-robin, cost) or a `module:function` path.

AkôScore (the default) scores one task's candidates with two terms, each 1 for the best:
  speed  = this node's speed / the fastest candidate's (= fastest expected time / this one's)
  held   = max(node_memory * dominant_share, request) / speed   (memory held x run time;
           + 1 % of the leftover free memory, which only breaks ties: best fit)
  memory = (held_max - held) / (held_max - held_min)
  score  = alpha * memory + (1 - alpha) * speed
This per-task score is what online placement uses (a workflow too big to plan, activities
whose alpha differs from their workflow's plan, a plan's late activities), and the online
settings of the plan's family (`front.py`); the plan is what makes alpha a trade-off per
workflow. Rounds go by upward rank (HEFT's priority) when ranks are known.
Where this differs from AkôFlow's docs (seed 000), and why:
- The docs' memory fit is the node's free memory against the request, to avoid "both under-
  and over-utilization". A node with less free memory than the request is never a candidate
  here (feasibility comes first), so only over-provisioning is left to penalise. And what a
  placement wastes is not just the gap on one node: a task holds its dominant share of the
  node (one cpu of an 8-cpu, 128 GiB node ties up 16 GiB that no other task can use with that
  cpu) for as long as it runs there, which a slow node makes longer. So the memory term
  measures memory held x time, and the free-memory best fit only breaks ties.
- Both terms are normalised over the candidates (memory held from least to most, time by the
  fastest candidate), so alpha means the same trade-off on any cluster; raw seconds and bytes
  would let whichever unit is larger drown the other, and normalising memory by the largest
  node (as the issue sketches) squeezed the memory term so much that alpha = 0.5 placed
  exactly like alpha = 0 on every WfCommons trace.
- Without ranks (first fit, plugins) a round goes longest expected time first (LPT).
- Expected time comes from provenance (the same activity, by cache identity or name, in earlier
  runs, normalised to speed 1.0), then the declared `estimate`, then `timeLimit`, then 1 s;
  divided by the node's `speed`. With no knowledge at all only the speed ratio matters, which
  is exactly what the speed term needs, so the last fallback is harmless.
- Plugins are Python entry points or `module:function`, not Go `.so` files.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from akoflow.port import Node, plugins
from akoflow.scheduling.placement import History, Policy, Room, TaskView, first_positive

GROUP = "akoflow.policies"
DEFAULT_POLICY = "akoscore"
_loaded: dict[str, Policy] = {}
TIGHTNESS = 0.01  # weight of the free-memory best fit (it only breaks near-ties)


class PolicyError(Exception):
    """A policy that cannot be found, imported or run, or that returned garbage."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"placement policy {name!r}: {reason}")
        self.policy = name
        self.reason = reason


def expected_time(task: TaskView, history: History) -> float:
    """Seconds at speed 1.0: history, then the declared estimate, then timeLimit, then 1."""
    return first_positive(history.expected(task.name, task.identity), task.estimate,
                          task.time_limit)


def _speed(node: Node) -> float:
    return node.speed if node.speed > 0 else 1.0


def akoscore(task: TaskView, nodes: Sequence[Node], alpha: float,
             history: History) -> list[float | None]:
    """alpha * memory fit + (1 - alpha) * relative speed (see the module docstring)."""
    rooms = [Room(n, n.cpus_free, n.memory_free) for n in nodes]
    return [alpha * me + (1.0 - alpha) * sp for sp, me in akoscore_terms(task, rooms)]


def akoscore_terms(task: TaskView, rooms: Sequence[Room]) -> list[tuple[float, float]]:
    """(speed part, memory part) per candidate, both in [0, 1], 1 = best among them.

    speed = this node's speed / the fastest candidate's (= fastest expected time / this
    one's, since the task's run time divides by the node speed); memory = where the memory
    the task holds (`memory_held`) lies between the most (0) and the least (1) of the
    candidates. The run time at speed 1 cancels out of both, so it is not needed here."""
    speeds = [r.node.speed if r.node.speed > 0 else 1.0 for r in rooms]
    top = max(speeds, default=1.0)
    cpu, mem = task.cpu, task.memory
    held = []
    for r, sp in zip(rooms, speeds):
        n = r.node
        share = max(cpu / n.cpus if n.cpus > 0 else 1.0, mem / n.memory if n.memory > 0 else 1.0)
        hold = max(n.memory * min(1.0, share), float(mem))
        held.append((hold + TIGHTNESS * max(0, r.memory - mem)) / sp)
    least, most = min(held, default=0.0), max(held, default=0.0)
    span = most - least
    return [(sp / top, (most - h) / span if span > 0 else 1.0) for sp, h in zip(speeds, held)]


def first_fit(task: TaskView, nodes: Sequence[Node], alpha: float,
              history: History) -> list[float | None]:
    """The first candidate in inventory order."""
    return [-float(i) for i in range(len(nodes))]


def round_robin(task: TaskView, nodes: Sequence[Node], alpha: float,
                history: History) -> list[float | None]:
    """Spread by turn: task number `seq` prefers the `seq mod n`-th candidate, then the next."""
    n = len(nodes)
    turn = task.seq % n if n else 0
    return [-float((i - turn) % n) for i in range(n)]


def cost(task: TaskView, nodes: Sequence[Node], alpha: float,
         history: History) -> list[float | None]:
    """Cheapest run: minimise cost_per_hour x expected time (unpriced nodes cost 0)."""
    base = expected_time(task, history)
    out: list[float | None] = []
    for node in nodes:
        hours = base / _speed(node) / 3600.0
        # A tiny time term breaks ties between free nodes in favour of the faster one.
        out.append(-((node.cost_per_hour or 0.0) * hours) - hours * 1e-9)
    return out


def _resolve(name: str) -> Any:
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # any import-time failure of the plugin is its fault
            raise PolicyError(name, f"cannot import: {type(exc).__name__}: {exc}") from None
        return obj
    ep = plugins.find(GROUP, name)
    if ep is None:
        known = ", ".join(available_policies()) or "none"
        raise PolicyError(name, f"no such policy (known: {known}; or give module:function)")
    try:
        return ep.load()
    except Exception as exc:
        raise PolicyError(name, f"cannot import {ep.value}: {type(exc).__name__}: {exc}") from None


def load_policy(name: str | None) -> Policy:
    """The policy named `name` (None → the default), checked to be callable."""
    key = name or DEFAULT_POLICY
    fn = _loaded.get(key)
    if fn is None:
        obj = _resolve(key)
        if not callable(obj):
            raise PolicyError(key, f"{type(obj).__name__} object is not callable")
        fn = obj
        _loaded[key] = fn
    return fn


def available_policies() -> list[str]:
    return plugins.names(GROUP)


def call_policy(fn: Policy, name: str, task: TaskView, nodes: Sequence[Node],
                history: History) -> list[float | None]:
    """Run a policy and check its answer: one finite number or None per candidate."""
    try:
        raw = fn(task, nodes, task.alpha, history)
    except Exception as exc:
        raise PolicyError(name, f"raised {type(exc).__name__}: {exc} "
                                f"(placing {task.name})") from None
    try:
        scores = list(raw)
    except TypeError:
        raise PolicyError(name, f"returned {type(raw).__name__}, not a list of scores") from None
    if len(scores) != len(nodes):
        raise PolicyError(name, f"returned {len(scores)} scores for {len(nodes)} nodes")
    out: list[float | None] = []
    for s in scores:
        if s is None:
            out.append(None)
            continue
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise PolicyError(name, f"returned {s!r}; a score must be a finite number or None")
        out.append(float(s))
    return out
