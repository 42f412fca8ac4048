"""Slurm node inventory, pure: argv builders and parsers of `sinfo -N -O` / `scontrol show node`.

Free room is what Slurm itself would allocate: idle (effective) cpus and RealMemory minus
AllocMem. `FreeMem` is the operating system's view and is ignored: several slurmd on one host,
or the page cache, make it say nothing about what a job can still be given. Nodes that cannot
take work now (down, drained/draining, failing, powered off, ...) are listed with no free room,
so placement never picks them but `akoflow nodes` still shows them.
Checked against Slurm 22.05 output captured in tests/executors/captured/slurm_nodes_*.txt.
"""

from __future__ import annotations

import re
from typing import Final

from akoflow.port import Node

MIB: Final = 1024**2
# sinfo field names (22.05 `--Format`); `:|` = no padding, `|` after the field.
SINFO_FIELDS: Final = ("NodeList", "Partition", "CPUsState", "Memory", "AllocMem", "FreeMem",
                       "Features", "StateLong")
# State words (any of them, in a compound like IDLE+DRAIN or a suffix like down*) that mean the
# node takes no new work now.
UNAVAILABLE: Final = frozenset({
    "down", "drain", "drained", "draining", "fail", "failing", "maint", "future",
    "powered_down", "powering_down", "power_down", "powering_up", "reboot_issued",
    "reboot_requested", "not_responding", "unknown", "inval", "invalid", "no_respond",
    "perfctrs", "planned", "reserved", "blocked",
})
_SUFFIX_FLAGS: Final = {"*": "not_responding", "~": "powered_down", "#": "powering_up",
                        "!": "powering_down", "%": "powering_down", "$": "maint",
                        "@": "reboot_requested", "^": "reboot_issued", "-": "planned"}
_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)=(.*)$")


class NodeParseError(ValueError):
    """Output that does not look like what the argv asked for."""


def sinfo_argv() -> list[str]:
    """One line per node and partition; `|` after every field, no padding."""
    fmt = ",".join(f"{f}:|" for f in SINFO_FIELDS)
    return ["sinfo", "--Node", "--noheader", f"--Format={fmt}"]


def scontrol_argv() -> list[str]:
    return ["scontrol", "show", "node", "--oneliner"]


def state_words(state: str) -> list[str]:
    """`IDLE+DRAIN` -> [idle, drain]; `down*` -> [down, not_responding]."""
    words: list[str] = []
    for part in state.strip().lower().split("+"):
        while part and part[-1] in _SUFFIX_FLAGS:
            words.append(_SUFFIX_FLAGS[part[-1]])
            part = part[:-1]
        if part:
            words.append(part)
    return words


def available(state: str) -> bool:
    words = state_words(state)
    return bool(words) and not any(w in UNAVAILABLE for w in words)


def _int(text: str, what: str, line: str) -> int:
    try:
        return int(float(text.strip().rstrip("+")))
    except ValueError:
        raise NodeParseError(f"{what} {text!r} is not a number in: {line.strip()}") from None


def _names(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text in ("", "(null)", "N/A"):
        return ()
    return tuple(p.strip().rstrip("*") for p in text.split(",") if p.strip())


def _node(name: str, cpus: float, cpus_free: float, mem_mb: int, alloc_mb: int,
          features: tuple[str, ...], partitions: tuple[str, ...], state: str) -> Node:
    usable = available(state)
    return Node(name=name, cpus=cpus, cpus_free=max(0.0, cpus_free) if usable else 0.0,
                memory=mem_mb * MIB,
                memory_free=max(0, mem_mb - alloc_mb) * MIB if usable else 0,
                features=features, partitions=partitions, state=state.strip().lower())


def parse_sinfo(text: str) -> list[Node]:
    """`sinfo_argv()` output -> nodes; a node in several partitions is one Node."""
    order: list[str] = []
    rows: dict[str, Node] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < len(SINFO_FIELDS):
            raise NodeParseError(f"expected {len(SINFO_FIELDS)} '|' fields: {line.strip()}")
        name, part, cpus, mem, alloc, _free, feats, state = fields[: len(SINFO_FIELDS)]
        counts = cpus.strip().split("/")
        if len(counts) != 4:
            raise NodeParseError(f"CPUsState {cpus!r} is not A/I/O/T in: {line.strip()}")
        _a, idle, _o, total = (_int(c, "CPUsState", line) for c in counts)
        node = _node(name.strip(), float(total), float(idle), _int(mem, "Memory", line),
                     _int(alloc, "AllocMem", line), _names(feats), _names(part), state)
        seen = rows.get(node.name)
        if seen is None:
            order.append(node.name)
            rows[node.name] = node
        else:
            parts = tuple(dict.fromkeys(seen.partitions + node.partitions))
            rows[node.name] = Node(**{**seen.__dict__, "partitions": parts})
    return [rows[n] for n in order]


def _pairs(line: str) -> dict[str, str]:
    """`Key=value Key2=a value with spaces` -> dict (words without `=` continue a value)."""
    out: dict[str, str] = {}
    last: str | None = None
    for word in line.split():
        m = _KEY.match(word)
        if m:
            last = m.group(1)
            out[last] = m.group(2)
        elif last is not None:
            out[last] += " " + word
    return out


def parse_scontrol(text: str) -> list[Node]:
    """`scontrol show node --oneliner` output -> nodes."""
    nodes: list[Node] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        kv = _pairs(line)
        if "NodeName" not in kv:
            if line.startswith("No nodes"):
                continue
            raise NodeParseError(f"no NodeName= in: {line.strip()[:120]}")
        total = _int(kv.get("CPUEfctv") or kv.get("CPUTot", "0"), "CPUTot", line)
        alloc = _int(kv.get("CPUAlloc", "0"), "CPUAlloc", line)
        nodes.append(_node(
            kv["NodeName"], float(total), float(total - alloc),
            _int(kv.get("RealMemory", "0"), "RealMemory", line),
            _int(kv.get("AllocMem", "0"), "AllocMem", line),
            _names(kv.get("ActiveFeatures") or kv.get("AvailableFeatures", "")),
            _names(kv.get("Partitions", "")), kv.get("State", "UNKNOWN")))
    return nodes
