"""Which keys a site profile may have, checked like a spec: an unknown key is an error with
its file, line and a "did you mean".

Known keys are the core's (`CORE_KEYS`), the blocks below whose own keys are checked too
(`BLOCKS`), and what the profile's executor declares in `Executor.site_keys` (each adapter
lists the keys it reads, and a third-party executor extends the set the same way). Adding a
key is one line in one of these places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from akoflow.port import Executor
from akoflow.spec.errors import SpecIssue, did_you_mean

# Read by the core whatever the executor: the profile's identity, sampling, placement,
# the dispatcher's lookahead and the RO-Crate's default license.
CORE_KEYS: Final[frozenset[str]] = frozenset({
    "name", "executor", "description", "extends", "sample_interval", "poll_interval",
    "nodes", "placement", "lookahead", "license",
    # observation: syscall tracing (auto | true | false), extra data directories to watch,
    # a cgroup per attempt where one may be made (worker/leftovers.py)
    "trace", "data_roots", "cgroups",
})
# Top-level mappings whose keys are checked as well.
BLOCKS: Final[dict[str, frozenset[str]]] = {
    "ssh": frozenset({"host", "user", "port", "identity_file", "jump", "known_hosts",
                      "remote_home", "python", "transport", "config", "require_master",
                      "connect_timeout"}),
    "packing": frozenset({"cpus", "nodes", "memory", "time", "max_allocations",
                          "idle_timeout", "status_interval", "grow_after", "max_submit_jobs",
                          "max_jobs"}),
}
# Keys whose value must be a positive number of seconds.
_SECONDS: Final = ("sample_interval", "poll_interval")


def executor_keys(cls: type[Executor]) -> frozenset[str]:
    """The keys an executor class and its bases declare."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        keys |= set(vars(klass).get("site_keys", ()))
    return frozenset(keys)


def problems(data: Mapping[str, Any], source: Path, extra: Iterable[str]) -> list[SpecIssue]:
    """Every unknown key (top level and inside `BLOCKS`) and ill-typed core value of one
    profile file; `extra` are the executor's keys."""
    known = CORE_KEYS | set(BLOCKS) | set(extra)
    found: list[tuple[tuple[str, ...], str]] = []
    for key, value in data.items():
        key = str(key)
        if key not in known:
            hint = did_you_mean(key, known) or next(
                (f" (a key of `{b}:`?)" for b, keys in BLOCKS.items() if key in keys), "")
            found.append(((key,), f"unknown key {key!r}{hint}"))
        elif key in BLOCKS:
            if not isinstance(value, dict):
                found.append(((key,), "must be a mapping"))
                continue
            for sub in value:
                if str(sub) not in BLOCKS[key]:
                    found.append(((key, str(sub)), f"unknown key {sub!r}"
                                  f"{did_you_mean(str(sub), BLOCKS[key])}"))
        elif key in _SECONDS and (isinstance(value, bool) or
                                  not isinstance(value, (int, float)) or value <= 0):
            found.append(((key,), f"must be a positive number of seconds, not {value!r}"))
    if not found:
        return []
    lines = _key_lines(source)
    return [SpecIssue(str(source), lines.get(path), ".".join(path), msg) for path, msg in found]


def _key_lines(source: Path) -> dict[tuple[str, ...], int]:
    """Line of every key at the top level and one level down (read only on error)."""
    try:
        root = yaml.compose(source.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[tuple[str, ...], int] = {}

    def walk(node: Node | None, path: tuple[str, ...]) -> None:
        if not isinstance(node, MappingNode) or len(path) > 1:
            return
        for k, v in node.value:
            if isinstance(k, ScalarNode):
                sub = (*path, str(k.value))
                out[sub] = k.start_mark.line + 1
                walk(v, sub)

    walk(root, ())
    return out
