"""Node inventory: this machine, and static nodes declared in a site profile or nodes.yaml.

A profile's `nodes:` list describes what discovery cannot know (speed, price, energy, labels)
or nodes no command lists (cloud VMs). Static entries are merged over discovered nodes of the
same name: declared attributes win, live free cpu/memory stay. The parsers do no I/O.

    nodes:
      - {name: big, cpus: 16, memory: 64Gi, speed: 2.0, cost_per_hour: 1.6,
         features: [avx512], partitions: [bigmem], energy: 350, labels: {zone: a}}
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.port import Node
from akoflow.port.units import UnitError, parse_memory

_KEYS = frozenset({"name", "cpus", "memory", "features", "partitions", "speed", "cost_per_hour",
                   "costPerHour", "energy", "labels", "state", "cpus_free", "memory_free"})


class InventoryError(ValueError):
    """A node declaration that cannot be understood (the message names the node and field)."""


def local_node() -> Node:
    """This machine: its cpus and the memory available right now."""
    import psutil

    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else (os.cpu_count() or 1))
    vm = psutil.virtual_memory()
    return Node(name=socket.gethostname(), cpus=cpus, cpus_free=cpus, memory=int(vm.total),
                memory_free=int(vm.available))


def _number(entry: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = entry.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InventoryError(f"{where}: {key} must be a number, not {value!r}")
    try:
        num = float(value)
    except ValueError:
        raise InventoryError(f"{where}: {key} must be a number, not {value!r}") from None
    if not math.isfinite(num) or num < 0:
        raise InventoryError(f"{where}: {key} must be a finite number >= 0, not {value!r}")
    return num


def _names(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise InventoryError(f"{where}: {key} must be a list or a comma-separated string")


def parse_node(entry: Any, index: int = 0) -> Node:
    """One `nodes:` entry -> Node (free = total: a declared node is assumed idle)."""
    if not isinstance(entry, Mapping) or not entry.get("name"):
        raise InventoryError(f"nodes[{index}]: each node must be a mapping with a name")
    where = f"node {entry['name']!r}"
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise InventoryError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    cpus = _number(entry, "cpus", where, None)
    if cpus is None or cpus <= 0:
        raise InventoryError(f"{where}: cpus must be given and > 0")
    try:
        memory = parse_memory(entry.get("memory", 0))
    except UnitError as exc:
        raise InventoryError(f"{where}: {exc}") from None
    labels = entry.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise InventoryError(f"{where}: labels must be a mapping")
    labels = {str(k): str(v) for k, v in labels.items()}
    energy = _number(entry, "energy", where, None)
    if energy is not None:  # Node has no energy field: carried as a label for policies
        labels.setdefault("energy", f"{energy:g}")
    cost = _number(entry, "cost_per_hour", where, _number(entry, "costPerHour", where, None))
    speed = _number(entry, "speed", where, 1.0) or 0.0
    if speed <= 0:
        raise InventoryError(f"{where}: speed must be > 0")
    cpus_free = _number(entry, "cpus_free", where, cpus)
    mem_free = entry.get("memory_free")
    return Node(name=str(entry["name"]), cpus=cpus, cpus_free=cpus if cpus_free is None
                else cpus_free, memory=memory,
                memory_free=memory if mem_free is None else parse_memory(mem_free),
                features=_names(entry.get("features"), "features", where),
                partitions=_names(entry.get("partitions"), "partitions", where),
                state=str(entry.get("state", "idle")), speed=speed, cost_per_hour=cost,
                labels=labels)


def parse_nodes(data: Any) -> list[Node]:
    """A `nodes:` list (or a mapping holding one) -> Nodes; names must be unique."""
    if isinstance(data, Mapping):
        data = data.get("nodes")
    if not isinstance(data, list) or not data:
        raise InventoryError("expected a non-empty `nodes:` list")
    nodes = [parse_node(e, i) for i, e in enumerate(data)]
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise InventoryError(f"node {n.name!r} is declared twice")
        seen.add(n.name)
    return nodes


def load_nodes_file(path: str | Path) -> list[Node]:
    """Nodes from a YAML file (the simulator's `--nodes`)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InventoryError(f"{path}: cannot read: {exc}") from None
    try:
        return parse_nodes(data)
    except InventoryError as exc:
        raise InventoryError(f"{path}: {exc}") from None


def merge_nodes(discovered: Sequence[Node], static: Sequence[Node],
                declared: Sequence[Mapping[str, Any]] = ()) -> list[Node]:
    """Static nodes over discovered ones by name; `declared` (the raw entries) says which
    fields were written, so only those override what discovery found."""
    raw = {str(d.get("name")): d for d in declared if isinstance(d, Mapping)}
    by_name = {n.name: n for n in static}
    out: list[Node] = []
    for node in discovered:
        s = by_name.pop(node.name, None)
        if s is None:
            out.append(node)
            continue
        given = raw.get(node.name, {k: True for k in _KEYS})
        cpus = s.cpus if "cpus" in given else node.cpus
        memory = s.memory if "memory" in given else node.memory
        out.append(replace(
            node, cpus=cpus, cpus_free=min(node.cpus_free, cpus), memory=memory,
            memory_free=min(node.memory_free, memory),
            features=tuple(dict.fromkeys(node.features + s.features)),
            partitions=s.partitions if "partitions" in given else node.partitions,
            speed=s.speed if "speed" in given else node.speed,
            cost_per_hour=s.cost_per_hour if s.cost_per_hour is not None else node.cost_per_hour,
            labels={**node.labels, **s.labels}))
    out.extend(by_name.values())
    return out


def site_nodes(profile: Mapping[str, Any], discovered: Sequence[Node]) -> list[Node]:
    """A site's inventory: what its executor discovered, with the profile's `nodes:` over it."""
    declared = profile.get("nodes") or []
    if not declared:
        return list(discovered)
    return merge_nodes(discovered, parse_nodes(declared), declared)
