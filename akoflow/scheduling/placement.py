"""Placement of ready activities on nodes with room for them (feasibility first).

An activity is a candidate for a node only if the node's free cpu and memory cover its
request and the node's labels/features satisfy its `nodeSelector`. An activity that fits no
node now stays READY and is reconsidered next cycle. Executors whose scheduler queues work
itself (Slurm, PBS, ...) are not bounded here: everything ready goes to their queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from akoflow.executor import Node


@dataclass
class Room:
    """What is left on a node during one placement round."""

    node: Node
    cpus: float
    memory: int


def request_of(resources: Mapping[str, Any]) -> tuple[float, int]:
    return float(resources.get("cpu") or 1.0), int(resources.get("memory") or 0)


def selector_ok(node: Node, selector: Mapping[str, str]) -> bool:
    for key, value in selector.items():
        if node.labels.get(key) == value:
            continue
        if value in node.features or f"{key}={value}" in node.features:
            continue
        return False
    return True


def fits(room: Room, resources: Mapping[str, Any]) -> bool:
    cpu, mem = request_of(resources)
    return (room.cpus + 1e-9 >= cpu and room.memory >= mem
            and selector_ok(room.node, resources.get("node_selector") or {}))


def first_fit(
    requests: Sequence[Mapping[str, Any]], nodes: Sequence[Node]
) -> list[str | None]:
    """Node name per request (in order), or None where nothing has room now."""
    rooms = [Room(n, n.cpus_free, n.memory_free) for n in nodes]
    out: list[str | None] = []
    for res in requests:
        chosen = next((r for r in rooms if fits(r, res)), None)
        if chosen is None:
            out.append(None)
            continue
        cpu, mem = request_of(res)
        chosen.cpus -= cpu
        chosen.memory -= mem
        out.append(chosen.node.name)
    return out
