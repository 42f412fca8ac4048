"""Fields whose values are secrets: kept where they are used (a webhook's HMAC key signs the
deliveries), shown nowhere else.

`SECRET_FIELDS` is the one list: a new secret field is one more path here, and every output
that shows a spec (webhook payloads, the RO-Crate, `validate --json`, PROV's spec hash)
redacts it through `redact_text` / `redact_data`. A path matches the end of a field's path;
`*` stands for any list index or key. A secret's value is also removed wherever else it
occurs in the text (an `env` entry, a `run` line that repeats it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

SECRET_FIELDS: Final[tuple[tuple[str, ...], ...]] = (
    ("webhooks", "*", "secret"),
)
REDACTED: Final = "<redacted>"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_KEYS = frozenset(p[-1] for p in SECRET_FIELDS)


def is_secret(path: Sequence[str | int]) -> bool:
    """True if the field at `path` (keys and list indexes from the document root) is secret."""
    for pattern in SECRET_FIELDS:
        if len(path) < len(pattern):
            continue
        tail = path[len(path) - len(pattern):]
        if all(p == "*" or p == str(k) for p, k in zip(pattern, tail)):
            return True
    return False


def secret_values(data: Any, path: tuple[str | int, ...] = ()) -> set[str]:
    """Every non-empty secret value in parsed data (a spec document, or a part of one whose
    `path` from the document root is given, e.g. `("webhooks",)` for a list of hooks)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            sub = (*path, str(k))
            if is_secret(sub) and isinstance(v, (str, int, float)) and str(v):
                found.add(str(v))
            else:
                found |= secret_values(v, sub)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found |= secret_values(v, (*path, i))
    return found


def redact_data(data: Any, path: tuple[str | int, ...] = ()) -> Any:
    """A copy of parsed data with every secret field's value replaced by `REDACTED`."""
    if isinstance(data, dict):
        return {k: (REDACTED if is_secret((*path, str(k))) and v not in (None, "")
                    else redact_data(v, (*path, str(k)))) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_data(v, (*path, i)) for i, v in enumerate(data)]
    return data


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced (longest first, so a
    secret that contains another is removed whole)."""
    for v in sorted(values, key=len, reverse=True):
        if v:
            text = text.replace(v, REDACTED)
    return text


def redact_text(text: str) -> str:
    """YAML (or JSON) spec text with secret values replaced in place; the rest of the text,
    comments included, is kept as written. Text that does not parse is scrubbed of nothing
    it cannot find, so it is returned with only the values it could identify removed."""
    if not any(k in text for k in _KEYS):
        return text  # no secret field can be spelled without its key: the common case
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return text
    nodes: dict[int, ScalarNode] = {}
    _walk(root, (), nodes, set())
    values = {n.value for n in nodes.values() if n.value}
    out = text
    for n in sorted(nodes.values(), key=lambda n: -n.start_mark.index):
        start, end = n.start_mark.index, n.end_mark.index
        tail = "\n" if out[start:end].endswith("\n") else ""
        out = out[:start] + json.dumps(REDACTED) + tail + out[end:]
    return scrub(out, values)


def _walk(node: Node | None, path: tuple[str | int, ...], out: dict[int, ScalarNode],
          busy: set[int]) -> None:
    """Collect the scalar nodes at secret paths (aliases share their anchor's node)."""
    if node is None or id(node) in busy:
        return
    busy.add(id(node))
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if k.tag == _MERGE:  # `<<: *base` merges base's keys into this mapping
                for src in v.value if isinstance(v, SequenceNode) else [v]:
                    _walk(src, path, out, busy)
                continue
            key = str(k.value) if isinstance(k, ScalarNode) else "?"
            sub = (*path, key)
            if is_secret(sub) and isinstance(v, ScalarNode):
                out[id(v)] = v
            else:
                _walk(v, sub, out, busy)
    elif isinstance(node, SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, (*path, i), out, busy)
    busy.discard(id(node))
