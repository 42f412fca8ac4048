"""The DAG section: an inline SVG, laid out in Python (no JavaScript graph library, no network).

Layout is the classic layered one: an activity's layer is its longest path from a root, so
every edge points rightwards; within a layer, nodes are ordered by the mean position of their
neighbours (two barycenter sweeps), which removes most crossings at O(edges) cost.

Big workflows would make a page of thousands of unreadable boxes, so past `MAX_NODES`
activities the graph is drawn per *group*: activities sharing a name prefix (Montage's
`mProject_ID0000001` → `mProject`) and a layer become one node with a per-state bar. When even
that is too many, each layer becomes one row of a per-layer summary.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from akoflow.provenance.report_base import (
    DASH,
    STATE_ORDER,
    TIMES,
    attrs,
    esc,
    legend,
    plural,
    state_class,
    truncate,
)
from akoflow.provenance.report_data import ReportData

MAX_NODES = 300  # activities drawn one by one; beyond, grouped
MAX_BANDS = 200  # rows of the per-layer summary; deeper workflows bin layers together
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 26, 56, 8, 10
GROUP_H = 40
LIFT = 60  # how high an edge that skips layers arcs over the nodes in between
LIGHT = {"SKIPPED", "PENDING", "READY", "SUBMITTING", "QUEUED"}  # fills that need dark text
_GROUP_RE = re.compile(r"^(.+?)[_-]?(?:ID|id)?\d+$")

K = TypeVar("K", bound=Hashable)


def group_key(name: str) -> str:
    """The name less a trailing `_`/`-`, `ID`, digits index: mProject_ID0000001 -> mProject."""
    m = _GROUP_RE.match(name)
    return m.group(1) if m else name


def layers_of(order: Sequence[str], parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Longest path from a root, by Kahn's algorithm (iterative: chains of 10,000 are fine)."""
    children: dict[str, list[str]] = defaultdict(list)
    waiting = {n: 0 for n in order}
    for n in order:
        for p in parents.get(n, ()):
            if p in waiting:
                children[p].append(n)
                waiting[n] += 1
    layer = dict.fromkeys(order, 0)
    ready = [n for n in order if waiting[n] == 0]
    while ready:
        n = ready.pop()
        for c in children[n]:
            layer[c] = max(layer[c], layer[n] + 1)
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return layer


def order_layers(nodes: Sequence[K], layer: Mapping[K, int],
                 edges: Sequence[tuple[K, K]]) -> list[list[K]]:
    """Nodes per layer, ordered by two down/up barycenter sweeps to reduce crossings."""
    depth = max(layer.values(), default=0) + 1
    rows: list[list[K]] = [[] for _ in range(depth)]
    for n in nodes:
        rows[layer[n]].append(n)
    up: dict[K, list[K]] = defaultdict(list)
    down: dict[K, list[K]] = defaultdict(list)
    for p, c in edges:
        up[c].append(p)
        down[p].append(c)
    pos = {n: (i + 0.5) / len(r) for r in rows for i, n in enumerate(r)}
    sweeps = [(i, up) for i in range(1, depth)] + [(i, down) for i in range(depth - 2, -1, -1)]
    for _ in range(2):
        for idx, nbrs in sweeps:
            row = rows[idx]
            row.sort(key=lambda n: _barycenter(n, nbrs, pos))
            for i, n in enumerate(row):
                pos[n] = (i + 0.5) / len(row)
    return rows


def _barycenter(n: K, nbrs: Mapping[K, list[K]], pos: Mapping[K, float]) -> float:
    near = nbrs.get(n)
    return sum(pos[x] for x in near) / len(near) if near else pos[n]


def _positions(rows: list[list[K]], node_h: int, arcs: bool
               ) -> tuple[dict[K, tuple[int, int]], int, int]:
    """Top-left corner of each node; layers are columns, each centred vertically."""
    top = PAD + (LIFT * 3 // 4 if arcs else 0)  # room for arcs over the first row
    tallest = max((len(r) for r in rows), default=1)
    height = top + PAD + tallest * (node_h + GAP_Y) - GAP_Y
    width = PAD * 2 + len(rows) * (NODE_W + GAP_X) - GAP_X
    xy: dict[K, tuple[int, int]] = {}
    for li, row in enumerate(rows):
        offset = (tallest - len(row)) * (node_h + GAP_Y) // 2
        for i, n in enumerate(row):
            xy[n] = (PAD + li * (NODE_W + GAP_X), top + offset + i * (node_h + GAP_Y))
    return xy, width, height


def _edge(a: tuple[int, int], b: tuple[int, int], h: int, extra: str = "",
          title: str = "") -> str:
    x1, y1 = a[0] + NODE_W, a[1] + h // 2
    x2, y2 = b[0], b[1] + h // 2
    skipped = (x2 - x1 + NODE_W) // (NODE_W + GAP_X) - 1  # layers jumped over
    if skipped > 0:
        # Arc over the layers in between rather than run through their nodes.
        top = min(y1, y2) - min(16 + 14 * skipped, LIFT)
        curve = f"C{x1 + GAP_X} {top} {x2 - GAP_X} {top}"
    else:
        mx = (x1 + x2) // 2
        curve = f"C{mx} {y1} {mx} {y2}"
    path = f'<path class="edge"{extra} d="M{x1} {y1}{curve} {x2 - 4} {y2}"'
    return f"{path}><title>{esc(title)}</title></path>" if title else f"{path}/>"


def _svg(width: int, height: int, body: str, label: str, fit: bool = False) -> str:
    """`fit`: small pictures scale down to the page width; big ones keep their size and scroll."""
    return (f'<svg class="dag{" fit" if fit else ""}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"'
            f'{attrs(aria_label=label)}><defs><marker id="arrow" viewBox="0 0 8 8" refX="7" '
            'refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L8 4L0 8z" '
            f'class="arrowhead"/></marker></defs>{body}</svg>')


def _full(d: ReportData, layer: dict[str, int]) -> str:
    edges = [(p, c) for c in d.order for p in d.parents.get(c, ()) if p in layer]
    arcs = any(layer[c] - layer[p] > 1 for p, c in edges)
    xy, width, height = _positions(order_layers(d.order, layer, edges), NODE_H, arcs)
    parts = [_edge(xy[p], xy[c], NODE_H) for p, c in edges]
    for n in d.order:
        x, y = xy[n]
        st = d.status.get(n, "PENDING")
        s = d.stats.get(n)
        tries = s.attempts if s else 0
        light = " light" if st in LIGHT else ""
        parts.append(
            f'<g class="node{light}"{attrs(data_activity=n, data_state=st, data_layer=layer[n])}'
            f' transform="translate({x},{y})"><title>{esc(n)} — {esc(st)}, {tries} '
            f'attempt{"s" if tries != 1 else ""}, layer {layer[n]}</title>'
            f'<rect class="{state_class(st)}" width="{NODE_W}" height="{NODE_H}" rx="5"/>'
            f'<text x="8" y="17">{esc(truncate(n, 20))}</text></g>')
    return _svg(width, height, "".join(parts), f"DAG of {len(d.order)} activities")


def _groups(d: ReportData, layer: dict[str, int]) -> dict[str, tuple[str, int]]:
    return {n: (group_key(n), layer[n]) for n in d.order}


def _grouped(d: ReportData, layer: dict[str, int], group: dict[str, tuple[str, int]]) -> str:
    members: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for n in d.order:
        members[group[n]][d.status.get(n, "PENDING")] += 1
    links: Counter[tuple[tuple[str, int], tuple[str, int]]] = Counter(
        (group[p], group[c]) for c in d.order for p in d.parents.get(c, ()) if p in group)
    nodes = list(members)
    glayer = {g: g[1] for g in nodes}
    # Compact the layers that grouping left empty, so the picture has no blank columns.
    used = {v: i for i, v in enumerate(sorted(set(glayer.values())))}
    glayer = {g: used[v] for g, v in glayer.items()}
    arcs = any(glayer[b] - glayer[a] > 1 for a, b in links)
    xy, width, height = _positions(order_layers(nodes, glayer, list(links)), GROUP_H, arcs)
    parts = [_edge(xy[a], xy[b], GROUP_H, f' data-links="{k}"', f"{k} dependencies")
             for (a, b), k in links.items()]
    for g in nodes:
        (prefix, lay), counts = g, members[g]
        x, y = xy[g]
        total = sum(counts.values())
        parts.append(
            f'<g class="group"{attrs(data_group=prefix, data_layer=lay, data_count=total)}'
            f' transform="translate({x},{y})"><title>{esc(prefix)} {TIMES} {total} (layer {lay}): '
            f'{esc(_breakdown(counts))}</title><rect class="box" width="{NODE_W}" '
            f'height="{GROUP_H}" rx="5"/><text x="8" y="17">{esc(truncate(prefix, 14))} '
            f'{TIMES}{total}</text>{_stack(counts, 8, 25, NODE_W - 16, 8)}</g>')
    return _svg(width, height, "".join(parts),
                f"DAG of {len(d.order)} activities in {len(nodes)} groups", fit=True)


def _breakdown(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[s]} {s.lower()}" for s in _states(counts))


def _states(counts: Counter[str]) -> list[str]:
    return [s for s in STATE_ORDER if counts.get(s)] + sorted(
        s for s in counts if s not in STATE_ORDER and counts[s])


def _stack(counts: Counter[str], x: float, y: float, width: float, height: float) -> str:
    """A horizontal bar split by state, proportional to the counts."""
    total = sum(counts.values()) or 1
    out = []
    for s in _states(counts):
        w = width * counts[s] / total
        out.append(f'<rect class="{state_class(s)}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                   f'height="{height}"{attrs(data_state=s, data_count=counts[s])}/>')
        x += w
    return "".join(out)


def _per_layer(d: ReportData, layer: dict[str, int]) -> str:
    depth = max(layer.values(), default=0) + 1
    per = max(1, -(-depth // MAX_BANDS))  # layers per band, rounded up
    bands: list[Counter[str]] = [Counter() for _ in range(-(-depth // per))]
    for n in d.order:
        bands[layer[n] // per][d.status.get(n, "PENDING")] += 1
    widest = max((sum(b.values()) for b in bands), default=1) or 1
    row_h, label_w, bar_w = 18, 150, 600
    parts = []
    for i, counts in enumerate(bands):
        lo, hi = i * per, min((i + 1) * per, depth) - 1
        name = f"layer {lo}" if lo == hi else f"layers {lo}{DASH}{hi}"
        total = sum(counts.values())
        y = PAD + i * row_h
        parts.append(
            f'<g class="band"{attrs(data_layer=lo, data_count=total)}><title>{name}: '
            f'{total} activities — {esc(_breakdown(counts))}</title>'
            f'<text class="axis" x="{PAD}" y="{y + 12}">{name} ({total})</text>'
            f'{_stack(counts, PAD + label_w, y + 3, bar_w * total / widest, row_h - 6)}</g>')
    height = PAD * 2 + len(bands) * row_h
    return _svg(PAD * 2 + label_w + bar_w, height, "".join(parts),
                f"per-layer summary of {len(d.order)} activities", fit=True)


def render_dag(d: ReportData) -> str:
    """The section body: a note saying which view is shown, the legend, and the SVG."""
    layer = layers_of(d.order, d.parents)
    depth = max(layer.values(), default=-1) + 1
    states = _states(Counter(d.status.values()))
    if len(d.order) <= MAX_NODES:
        mode, svg = "full", _full(d, layer)
        note = f"{plural(len(d.order), 'activity')} in {plural(depth, 'layer')}."
    else:
        group = _groups(d, layer)
        n_groups = len(set(group.values()))
        if n_groups <= MAX_NODES:
            mode, svg = "grouped", _grouped(d, layer, group)
            note = (f"{len(d.order)} activities in {plural(depth, 'layer')}, drawn as "
                    f"{n_groups} groups "
                    "(name prefix before a trailing index, per layer).")
        else:
            mode, svg = "layers", _per_layer(d, layer)
            note = f"{len(d.order)} activities in {depth} layers, summarised per layer."
    return (f'<p class="note"{attrs(data_mode=mode, data_layers=depth)}>{esc(note)} '
            f'Layers go left to right by longest path from a root.</p>{legend(states)}'
            f'<div class="scroll dag-box">{svg}</div>')
