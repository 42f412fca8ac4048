"""A placement plan made at registration, and the rule by which the dispatcher follows it.

AkôScore plans a workflow before it runs (`scheduling/front.py`): it simulates a small family
of settings, keeps the Pareto front of (makespan, memory waste), and alpha picks one point.
That point is either an online setting (a policy and its alpha: nothing to follow, the
dispatcher just scores with it) or an offline plan: a node and a planned start for every
activity (HEFT or its memory-aware variant).

An offline plan is followed, not enforced: when an activity is ready it goes to its planned
node, once that node has room and every activity planned before it on that node has started
(the plan's order per node). Followed this way, with run times as expected, no activity
starts later than planned, so the run is never slower than the plan (by induction over the
planned starts: parents end no later than planned, and the node holds no more than the plan
put there). When the run falls behind (an activity still waits `LATE_FACTOR` x its planned
start + `grace` after the workflow began), that activity is placed online by AkôScore and no
longer holds up the activities planned after it: a wrong estimate or a vanished node can
slow the run down, never stop it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LATE_FACTOR = 1.25  # the dispatcher's slack over the plan's clock (queues, overheads)


@dataclass(frozen=True)
class Plan:
    """One point of a workflow's front: how to place, and what the simulator measured."""

    label: str  # "heft", "heft-mem0.5", "akoscore a=0.25", "first-fit"
    policy: str | None  # the online policy to score with; None = follow node_of
    alpha: float  # the online setting's alpha (also the fallback's, for an offline plan)
    makespan: float
    waste_gbh: float
    node_of: Mapping[str, str] = field(default_factory=dict)
    start_of: Mapping[str, float] = field(default_factory=dict)
    rank_of: Mapping[str, float] = field(default_factory=dict)  # upward ranks (round order)
    front: tuple[tuple[str, float, float], ...] = ()  # every front point (label, s, GB*h)

    @property
    def offline(self) -> bool:
        return self.policy is None

    def summary(self) -> dict[str, Any]:
        """What `explain` and the simulator print about the plan (no per-task data)."""
        return {"label": self.label, "alpha": self.alpha, "makespan": round(self.makespan, 3),
                "memory_waste_gbh": round(self.waste_gbh, 6),
                "front": [{"label": lb, "makespan": round(m, 3),
                           "memory_waste_gbh": round(w, 6)} for lb, m, w in self.front]}

    def to_json(self) -> str:
        return json.dumps({"label": self.label, "policy": self.policy, "alpha": self.alpha,
                           "makespan": self.makespan, "waste_gbh": self.waste_gbh,
                           "node_of": dict(self.node_of), "start_of": dict(self.start_of),
                           "rank_of": dict(self.rank_of),
                           "front": [list(p) for p in self.front]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        d = json.loads(text)
        return cls(str(d["label"]), d.get("policy"), float(d["alpha"]), float(d["makespan"]),
                   float(d["waste_gbh"]), {str(k): str(v) for k, v in d["node_of"].items()},
                   {str(k): float(v) for k, v in d["start_of"].items()},
                   {str(k): float(v) for k, v in d.get("rank_of", {}).items()},
                   tuple((str(a), float(b), float(c)) for a, b, c in d.get("front", ())))

    def save(self, path: Path) -> None:
        """Write atomically (a dispatcher killed mid-write leaves the old file or none)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)

    def follower(self, unstarted: Iterable[str], clock: float = 0.0,
                 grace: float = 1e-6) -> PlanFollower:
        return PlanFollower(self, unstarted, clock, grace)


class PlanFollower:
    """The per-node order of an offline plan, during one placement round (see the module
    docstring). `clock` is seconds since the workflow began, on the plan's time scale."""

    def __init__(self, plan: Plan, unstarted: Iterable[str], clock: float,
                 grace: float) -> None:
        self.label = plan.label
        self.plan = plan
        self.clock = clock
        self.grace = grace
        self._waiting = set(unstarted)
        queues: dict[str, list[str]] = {}
        for name, node in plan.node_of.items():
            if name in self._waiting:
                queues.setdefault(node, []).append(name)
        start = plan.start_of
        self._queues = {n: sorted(q, key=lambda t: (start.get(t, math.inf), t))
                        for n, q in queues.items()}
        self._head = dict.fromkeys(self._queues, 0)

    def late(self, task: str) -> bool:
        return self.clock > LATE_FACTOR * self.plan.start_of.get(task, math.inf) + self.grace

    def planned(self, task: str) -> str | None:
        node = self.plan.node_of.get(task)
        return None if node is None or self.late(task) else node

    def start_of(self, task: str) -> float:
        return self.plan.start_of.get(task, math.inf)

    def may_start(self, task: str) -> bool:
        """True when no activity planned to start strictly earlier on the task's node is
        still waiting (ones planned for the same moment may go in any order)."""
        node = self.plan.node_of[task]
        queue, k = self._queues.get(node, []), self._head.get(node, 0)
        while k < len(queue) and (queue[k] not in self._waiting or self.late(queue[k])):
            k += 1
        self._head[node] = k
        start = self.plan.start_of
        return k >= len(queue) or start.get(task, math.inf) <= start.get(queue[k], 0.0) + 1e-9

    def started(self, task: str) -> None:
        self._waiting.discard(task)

    def advance(self, clock: float) -> None:
        """The simulator's clock moved on (the dispatcher builds a new follower instead)."""
        self.clock = clock
