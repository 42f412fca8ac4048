"""The activity graph: ordering, cycle detection and graph queries, all O(V+E).

Nodes are kept as integer indices in spec order so 100k-activity workflows stay cheap and every
traversal is deterministic.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from akoflow.port.names import ident
from akoflow.spec.models import WorkflowSpec

_MAX_SUGGESTIONS = 20  # did-you-mean is O(V) per unknown name; cap it for huge broken specs


class Dag:
    """Parents/children adjacency of a workflow; edges point from parent to child."""

    def __init__(self, parents: Mapping[str, Sequence[str]]) -> None:
        """Build from `name -> parents`; every parent must itself be a key (else KeyError)."""
        self._names: list[str] = list(parents)
        self._index: dict[str, int] = {n: i for i, n in enumerate(self._names)}
        self._parents: list[list[int]] = []
        self._children: list[list[int]] = [[] for _ in self._names]
        for i, name in enumerate(self._names):
            seen: set[int] = set()
            plist: list[int] = []
            for p in parents[name]:
                j = self._index.get(p)
                if j is None:
                    raise KeyError(f"activity {name!r} depends on unknown activity {p!r}")
                if j not in seen:
                    seen.add(j)
                    plist.append(j)
                    self._children[j].append(i)
            self._parents.append(plist)

    @classmethod
    def from_spec(cls, spec: WorkflowSpec) -> Dag:
        return cls({a.name: a.depends_on for a in spec.activities})

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def _idx(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown activity {name!r}") from None

    def parents(self, name: str) -> list[str]:
        return [self._names[j] for j in self._parents[self._idx(name)]]

    def children(self, name: str) -> list[str]:
        return [self._names[j] for j in self._children[self._idx(name)]]

    def roots(self) -> list[str]:
        return [n for i, n in enumerate(self._names) if not self._parents[i]]

    def leaves(self) -> list[str]:
        return [n for i, n in enumerate(self._names) if not self._children[i]]

    def _reach(self, start: int, edges: list[list[int]]) -> list[str]:
        seen = {start}
        queue = deque([start])
        out: list[int] = []
        while queue:
            for j in edges[queue.popleft()]:
                if j not in seen:
                    seen.add(j)
                    out.append(j)
                    queue.append(j)
        return [self._names[j] for j in sorted(out)]

    def descendants(self, name: str) -> list[str]:
        """Everything downstream of `name` (spec order); what a failure must skip."""
        return self._reach(self._idx(name), self._children)

    def ancestors(self, name: str) -> list[str]:
        """Everything upstream of `name` (spec order)."""
        return self._reach(self._idx(name), self._parents)

    def _topo(self) -> list[int]:
        indeg = [len(p) for p in self._parents]
        queue = deque(i for i, d in enumerate(indeg) if d == 0)
        order: list[int] = []
        while queue:
            i = queue.popleft()
            order.append(i)
            for c in self._children[i]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    queue.append(c)
        return order

    def topological_order(self) -> list[str]:
        """Kahn's algorithm, ties broken by spec order; ValueError on a cycle."""
        order = self._topo()
        if len(order) != len(self._names):
            cycle = self.find_cycle() or []
            raise ValueError("cycle: " + format_cycle(cycle))
        return [self._names[i] for i in order]

    def find_cycle(self) -> list[str] | None:
        """One cycle as `[a, b, c]` meaning a -> b -> c -> a (parent to child), or None."""
        white, grey, black = 0, 1, 2
        color = [white] * len(self._names)
        for start in range(len(self._names)):
            if color[start] != white:
                continue
            color[start] = grey
            path = [start]
            stack = [iter(self._children[start])]
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    stack.pop()
                    color[path.pop()] = black
                elif color[nxt] == grey:
                    return [self._names[j] for j in path[path.index(nxt) :]]
                elif color[nxt] == white:
                    color[nxt] = grey
                    path.append(nxt)
                    stack.append(iter(self._children[nxt]))
        return None

    def critical_path(self, weights: Mapping[str, float]) -> tuple[float, list[str]]:
        """Heaviest root-to-leaf chain by node weight (missing weights count as 0)."""
        order = self._topo()
        if len(order) != len(self._names):
            raise ValueError("cycle: " + format_cycle(self.find_cycle() or []))
        if not order:
            return 0.0, []
        w = [float(weights.get(n, 0.0)) for n in self._names]
        best = [0.0] * len(self._names)
        prev: list[int | None] = [None] * len(self._names)
        for i in order:
            top: int | None = None
            for p in self._parents[i]:
                if top is None or best[p] > best[top]:
                    top = p
            best[i] = w[i] + (best[top] if top is not None else 0.0)
            prev[i] = top
        end = max(order, key=lambda i: best[i])
        path: list[int] = []
        cur: int | None = end
        while cur is not None:
            path.append(cur)
            cur = prev[cur]
        return best[end], [self._names[j] for j in reversed(path)]


def format_cycle(cycle: Sequence[str]) -> str:
    return " -> ".join([*cycle, cycle[0]]) if cycle else "?"


@dataclass(frozen=True)
class GraphProblem:
    """A graph defect located by activity index (and index within its dependsOn list)."""

    kind: Literal["duplicate", "self", "unknown", "cycle"]
    index: int
    dep_index: int | None
    message: str


def graph_problems(names: Sequence[str], deps: Sequence[Sequence[str]]) -> list[GraphProblem]:
    """Every duplicate name, self-dependency and unknown dependency, then one cycle if any.

    Shared by the YAML loader, the Python API and importers so all report the same way; callers
    turn indices into file/line/path.
    """
    problems: list[GraphProblem] = []
    first: dict[str, int] = {}
    idents: dict[str, str] = {}
    for i, name in enumerate(names):
        if name in first:
            problems.append(GraphProblem("duplicate", i, None, f"duplicate activity name {name!r}"))
            continue
        first[name] = i
        other = idents.setdefault(ident(name), name)
        if other != name:  # a written name equal to another's derived identifier
            problems.append(GraphProblem(
                "duplicate", i, None,
                f"activity names {other!r} and {name!r} map to the same identifier "
                f"{ident(name)!r} (used for paths and job names); rename one"))
    suggestions = 0
    names_list = list(first)
    edges: dict[str, list[str]] = {n: [] for n in first}
    for i, (name, dlist) in enumerate(zip(names, deps, strict=True)):
        for k, dep in enumerate(dlist):
            if dep == name:
                problems.append(GraphProblem("self", i, k, f"activity {name!r} depends on itself"))
            elif dep not in first:
                msg = f"unknown activity {dep!r} in dependsOn"
                if suggestions < _MAX_SUGGESTIONS:
                    suggestions += 1
                    close = difflib.get_close_matches(dep, names_list, n=1)
                    if close:
                        msg += f"; did you mean {close[0]!r}?"
                problems.append(GraphProblem("unknown", i, k, msg))
            elif first[name] == i:
                edges[name].append(dep)
    cycle = Dag(edges).find_cycle()
    if cycle:
        # Report it the way the file reads: each activity depends on the next one.
        back = cycle[::-1]
        start = min(range(len(back)), key=lambda j: first[back[j]])
        back = back[start:] + back[:start]
        msg = f"cycle: {format_cycle(back)} (each activity depends on the next)"
        problems.append(GraphProblem("cycle", first[back[0]], None, msg))
    return problems
