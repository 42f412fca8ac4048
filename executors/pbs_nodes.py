"""PBS node inventory: `pbsnodes` argv and parsers for PBS Pro (JSON) and Torque (XML).

Pure functions, tested on output samples laid out as the PBS Pro 2022 and Torque 6 reference
guides show them (tests/executors/captured/pbsnodes_*). Free room is what the server would
still hand out: available minus assigned (Pro), `np` minus the job slots listed (Torque).
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from typing import Any

from akoflow.port import Node

log = logging.getLogger(__name__)

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(b|w)?$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
# States in which a node takes no new work (pbsnodes(8B) / Torque's node states).
_DOWN = ("down", "offline", "unknown", "stale", "state-unknown", "unresolvable", "sleep")


def argv(flavor: str) -> list[str]:
    """One call for every node: JSON on PBS Pro, XML on Torque."""
    return ["pbsnodes", "-a", "-F", "json"] if flavor == "pro" else ["pbsnodes", "-x"]


def size_bytes(text: str) -> int:
    """A PBS size (`8gb`, `16384kb`, `1024`, `2mw`) in bytes; words are 8 bytes."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(f"not a PBS size: {text!r}")
    value = float(m.group(1)) * 1024 ** _POWERS[m.group(2).lower()]
    return int(value * (8 if (m.group(3) or "b").lower() == "w" else 1))


def _state(text: str) -> str:
    words = [w.strip() for w in text.replace(",", " ").split() if w.strip()]
    if any(w in _DOWN for w in words):
        return "down"
    if "job-busy" in words or "job-exclusive" in words or "busy" in words:
        return "allocated"
    return "mixed" if "job-sharing" in words else "idle"


def parse_pro(text: str) -> list[Node]:
    """`pbsnodes -a -F json` (PBS Pro): nodes with available and assigned resources."""
    data: dict[str, Any] = json.loads(text)
    out: list[Node] = []
    for name, info in sorted((data.get("nodes") or {}).items()):
        avail = info.get("resources_available") or {}
        used = info.get("resources_assigned") or {}
        cpus = float(avail.get("ncpus") or 0)
        memory = size_bytes(str(avail.get("mem") or "0"))
        state = _state(str(info.get("state") or ""))
        free_cpus = max(0.0, cpus - float(used.get("ncpus") or 0))
        free_mem = max(0, memory - size_bytes(str(used.get("mem") or "0")))
        if state == "down":
            free_cpus, free_mem = 0.0, 0
        features = tuple(sorted(k for k, v in avail.items()
                                if str(v).lower() == "true"))  # boolean custom resources
        queue = str(info.get("queue") or avail.get("Qlist") or "")
        out.append(Node(name=str(name), cpus=cpus, cpus_free=free_cpus, memory=memory,
                        memory_free=free_mem, features=features,
                        partitions=tuple(q for q in queue.split(",") if q), state=state))
    return out


def _status_field(status: str, key: str) -> str | None:
    for part in status.split(","):
        k, _, v = part.partition("=")
        if k == key:
            return v
    return None


def _slots(entry: str) -> int:
    """Slots of one `jobs` entry: `0/12.srv` is one, `0-3/12.srv` four (Torque 5+)."""
    first, _, rest = entry.strip().partition("/")
    if not rest:
        return 1
    lo, dash, hi = first.partition("-")
    if dash and lo.isdigit() and hi.isdigit():
        return int(hi) - int(lo) + 1
    return 1


def parse_torque(text: str) -> list[Node]:
    """`pbsnodes -x` (Torque): `np` slots, `properties`, physmem/availmem in `status`."""
    root = ET.fromstring(text)
    out: list[Node] = []
    for node in root.iter("Node"):
        name = node.findtext("name") or ""
        np = float(node.findtext("np") or 0)
        busy = sum(_slots(j) for j in (node.findtext("jobs") or "").split(",") if j.strip())
        status = node.findtext("status") or ""
        memory = size_bytes(_status_field(status, "physmem") or "0")
        avail = _status_field(status, "availmem")
        state = _state(node.findtext("state") or "")
        free_cpus = 0.0 if state == "down" else max(0.0, np - busy)
        free_mem = 0 if state == "down" else min(memory, size_bytes(avail) if avail else memory)
        props = tuple(p for p in (node.findtext("properties") or "").split(",") if p)
        out.append(Node(name=name, cpus=np, cpus_free=free_cpus, memory=memory,
                        memory_free=free_mem, features=props, state=state))
    return out


def parse(flavor: str, text: str) -> list[Node]:
    return parse_pro(text) if flavor == "pro" else parse_torque(text)
