"""The lineage graph of a run (AkôFlow's: tasks and files as nodes) and its renderers.

Edges point the way data flows, as in AkôFlow's lineage view: `used` goes file -> task and
`wasGeneratedBy` goes task -> file. Nodes are activities (attempts folded in, their numbers
kept on the edges) and file *paths*: a picture a person reads, where the PROV export keeps
every attempt and every file version apart.

`lineage()` answers "where did this come from / what did it feed": the upstream and/or
downstream closure of one file or task, with only the edges walked to reach it, so a
sibling's unrelated reads of a shared input do not clutter the answer.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from akoflow.manifest import Manifest, ManifestError
from akoflow.provenance.run import RunData, load_run, version

USED = "used"
GENERATED = "wasGeneratedBy"
INVALIDATED = "wasInvalidatedBy"  # deleted, or renamed away
_DIRECTIONS = {"both": (True, True), "up": (True, False), "upstream": (True, False),
               "down": (False, True), "downstream": (False, True)}


@dataclass(frozen=True)
class LineageNode:
    id: str  # "task:<activity>" or "file:<path>"
    kind: str  # "task" | "file"
    label: str
    status: str | None = None  # tasks: the activity's status
    pre_existing: bool = False  # files: there before the workflow touched it
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineageEdge:
    source: str
    target: str
    # "used" (file -> task) | "wasGeneratedBy" (task -> file) | "wasInvalidatedBy" (task ->
    # file: it removed the file)
    relation: str
    attempts: tuple[int, ...]
    ambiguous: bool = False  # another task claims to have written the same file version


@dataclass
class LineageGraph:
    workflow_id: int
    workflow: str
    nodes: dict[str, LineageNode]
    edges: list[LineageEdge]

    def node(self, ref: str) -> LineageNode:
        return self.nodes[ref]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": {"id": self.workflow_id, "name": self.workflow},
            "nodes": [asdict(n) for n in self.nodes.values()],
            "edges": [asdict(e) for e in self.edges],
        }

    def edge_set(self) -> set[tuple[str, str, str]]:
        """(source label, relation, target label) triples: handy to compare graphs."""
        return {(self.nodes[e.source].label, e.relation, self.nodes[e.target].label)
                for e in self.edges}


def task_id(name: str) -> str:
    return f"task:{name}"


def file_id(path: str) -> str:
    return f"file:{path}"


def build_graph(m: Manifest, wf_id: int) -> LineageGraph:
    """The whole workflow: every task (even one that touched no file) and every file."""
    return graph_of(load_run(m, wf_id))


def graph_of(run: RunData) -> LineageGraph:
    nodes: dict[str, LineageNode] = {}
    for act in run.activities:
        last = run.final.get(act.id)
        nodes[task_id(act.name)] = LineageNode(
            task_id(act.name), "task", act.name, act.status, attrs={
                "attempts": act.attempts, "node": act.node, "reason": act.reason,
                "exit_code": None if last is None else last.exit_code})
    gathered: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    ambiguous: set[tuple[str, str, str]] = set()
    files: dict[str, dict[str, Any]] = {}
    for row in run.files:
        e = row.entry
        info = files.setdefault(e.path, {"size": e.size, "hash": e.hash, "pre": False,
                                         "versions": set()})
        if e.role != "invalidated":
            info["size"] = e.size
            info["hash"] = e.hash or info["hash"]
            info["versions"].add((e.size, e.mtime))
        if e.role == "generated":
            key = (task_id(row.activity), GENERATED, file_id(e.path))
        elif e.role == "invalidated":
            key = (task_id(row.activity), INVALIDATED, file_id(e.path))
        else:
            key = (file_id(e.path), USED, task_id(row.activity))
            info["pre"] = info["pre"] or e.role == "pre-existing"
        if e.role != "invalidated" and run.ambiguous(version(row)):
            ambiguous.add(key)
        gathered[key].add(row.attempt)
    for path, info in files.items():
        nodes[file_id(path)] = LineageNode(
            file_id(path), "file", path, pre_existing=bool(info["pre"]), attrs={
                "size": info["size"], "hash": info["hash"], "versions": len(info["versions"])})
    edges = [LineageEdge(s, t, rel, tuple(sorted(att)), (s, rel, t) in ambiguous)
             for (s, rel, t), att in gathered.items()]
    return LineageGraph(run.workflow.id, run.workflow.name, nodes, edges)


def lineage(m: Manifest, wf_id: int, file: str | None = None, activity: str | None = None,
            direction: str = "both") -> LineageGraph:
    """Upstream and/or downstream subgraph of a file (path) or activity (name).

    With neither, the whole graph. `direction`: both | up(stream) | down(stream).
    Raises KeyError when the file or activity is not part of the workflow's lineage.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r}")
    graph = build_graph(m, wf_id)
    focus: list[str] = []
    if file is not None:
        focus.append(file_id(_relative(file, graph, m.get_workflow(wf_id).work_dir)))
    if activity is not None:
        focus.append(task_id(activity))
    if not focus:
        return graph
    for ref in focus:
        if ref not in graph.nodes:
            kind, _, name = ref.partition(":")
            raise ManifestError(f"workflow {wf_id} has no {kind} {name!r} in its lineage")
    up, down = _DIRECTIONS[direction]
    return closure(graph, focus, up=up, down=down)


def closure(graph: LineageGraph, focus: Iterable[str], *, up: bool, down: bool
            ) -> LineageGraph:
    """The nodes reachable from `focus` and exactly the edges walked to reach them."""
    out_edges: dict[str, list[LineageEdge]] = defaultdict(list)
    in_edges: dict[str, list[LineageEdge]] = defaultdict(list)
    for e in graph.edges:
        out_edges[e.source].append(e)
        in_edges[e.target].append(e)
    focus = list(focus)
    keep: set[str] = set(focus)
    walked: dict[tuple[str, str, str], LineageEdge] = {}
    for forward, wanted in ((False, up), (True, down)):
        if not wanted:
            continue
        seen = set(focus)
        queue = deque(focus)
        while queue:
            node = queue.popleft()
            for e in (out_edges if forward else in_edges)[node]:
                if e.relation == INVALIDATED:
                    continue  # a removal is not where content came from or went to
                walked[(e.source, e.relation, e.target)] = e
                nxt = e.target if forward else e.source
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        keep |= seen
    nodes = {k: v for k, v in graph.nodes.items() if k in keep}
    edges = [e for e in graph.edges if (e.source, e.relation, e.target) in walked]
    return LineageGraph(graph.workflow_id, graph.workflow, nodes, edges)


def _relative(path: str, graph: LineageGraph, work_dir: str) -> str:
    """Accept `./x`, `x` or the absolute path under the work directory."""
    if file_id(path) in graph.nodes:
        return path
    root = work_dir.rstrip("/") + "/"
    if work_dir and path.startswith(root):
        return path[len(root):]
    return path[2:] if path.startswith("./") else path


# -- renderers ------------------------------------------------------------------------------

_STATUS_COLOUR = {"FINISHED": "#d1e7dd", "FAILED": "#f8d7da", "SKIPPED": "#e2e3e5",
                  "CANCELLED": "#fff3cd"}


def to_dot(graph: LineageGraph) -> str:
    """Graphviz DOT: tasks as boxes coloured by status, files as notes, inputs dashed."""
    lines = [f"digraph {_dq('lineage ' + graph.workflow)} {{", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontsize=8];']
    for n in graph.nodes.values():
        if n.kind == "task":
            colour = _STATUS_COLOUR.get(n.status or "", "#cfe2ff")
            lines.append(f'  {_dq(n.id)} [label={_dq(n.label)}, shape=box, '
                         f'style="rounded,filled", fillcolor="{colour}", '
                         f'tooltip={_dq(n.status or "")}];')
        elif n.pre_existing:
            lines.append(f'  {_dq(n.id)} [label={_dq(n.label + " (pre-existing)")}, '
                         'shape=note, style="dashed,filled", fillcolor="#f1f1f1"];')
        else:
            lines.append(f"  {_dq(n.id)} [label={_dq(n.label)}, shape=note];")
    for e in graph.edges:
        style = ', style=dashed, color="#b02a37"' if e.ambiguous else ""
        label = e.relation + ("?" if e.ambiguous else "")
        lines.append(f"  {_dq(e.source)} -> {_dq(e.target)} [label={_dq(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: LineageGraph) -> str:
    """Mermaid flowchart (renders in GitHub and GitLab markdown)."""
    ids = _mermaid_ids(graph)
    lines = ["flowchart LR"]
    for n in graph.nodes.values():
        text = _mq(n.label)
        lines.append(f"  {ids[n.id]}[{text}]" if n.kind == "task"
                     else f"  {ids[n.id]}[/{text}/]")
    for e in graph.edges:
        arrow = "-.->" if e.ambiguous else "-->"
        label = e.relation + ("?" if e.ambiguous else "")
        lines.append(f"  {ids[e.source]} {arrow}|{label}| {ids[e.target]}")
    classes: dict[str, list[str]] = defaultdict(list)
    for n in graph.nodes.values():
        if n.kind == "file" and n.pre_existing:
            classes["preexisting"].append(ids[n.id])
        elif n.kind == "task" and n.status in ("FAILED", "SKIPPED", "CANCELLED"):
            classes[n.status.lower()].append(ids[n.id])
    styles = {"preexisting": "fill:#f1f1f1,stroke-dasharray:4 3",
              "failed": "fill:#f8d7da", "skipped": "fill:#e2e3e5", "cancelled": "fill:#fff3cd"}
    for cls, members in sorted(classes.items()):
        lines.append(f"  classDef {cls} {styles[cls]}")
        lines.append(f"  class {','.join(members)} {cls}")
    return "\n".join(lines) + "\n"


def to_json(graph: LineageGraph) -> str:
    return json.dumps(graph.as_dict(), indent=2, sort_keys=True)


def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _mq(text: str) -> str:
    return '"' + text.replace('"', "#quot;").replace("\n", " ") + '"'


def _mermaid_ids(graph: LineageGraph) -> dict[str, str]:
    """Readable ids (`task_split`, `file_a_txt`) made unique: Mermaid ids allow [A-Za-z0-9_]."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for ref, n in graph.nodes.items():
        base = f"{n.kind}_{re.sub(r'[^A-Za-z0-9_]', '_', n.label)}"
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        out[ref] = name
    return out
