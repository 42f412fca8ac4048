"""Typed readers for AkôFlow YAML fields, working on composed nodes so issues carry lines.

Split from loader.py to keep both small; every reader records an issue and returns None when a
value is unusable, so one pass reports every problem in a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from akoflow.port.names import check_label
from akoflow.port.units import parse_cpu, parse_duration, parse_memory
from akoflow.spec.models import MAX_GPUS, MAX_RETRIES, Volume, Webhook, check_url


class Ctx(Protocol):
    """What readers need from the loader: issue recording, scalar values, mapping keys."""

    def err(self, where: Node | int | None, path: str, msg: str) -> None: ...

    def value(self, node: ScalarNode) -> Any: ...

    def pairs(
        self, node: Node, path: str, known: set[str] | None, ignored: set[str]
    ) -> dict[str, tuple[Node, Node]]: ...


KV = tuple[Node, Node]
Pairs = dict[str, KV]
Reader = Callable[[Ctx, KV, str], Any]
# What each reader accepts, as a JSON Schema fragment (`akoflow schema` builds on these), so the
# schema an editor checks against is derived from the code that reads the file.
JSON_OF: dict[Reader, dict[str, Any]] = {}


def _json(reader: Reader, fragment: dict[str, Any]) -> Reader:
    JSON_OF[reader] = fragment
    return reader

STR = "tag:yaml.org,2002:str"
NULL = "tag:yaml.org,2002:null"
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Resource keys that have their own activity field: one place only, so no conflicting values.
_OWN_FIELD = {
    "cpu": "cpuLimit",
    "cpus": "cpuLimit",
    "memory": "memoryLimit",
    "mem": "memoryLimit",
    "time": "timeLimit",
    "walltime": "timeLimit",
    "gpu": "gpus",
    "gpus": "gpus",
}


def line_of(where: Any) -> int:
    return int(where.start_mark.line) + 1


def kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "null" if node.tag == NULL else repr(node.value)


# Typed field readers: each returns None (after recording an issue) when a value is unusable.


def read_str(ctx: Ctx, kv: KV, path: str) -> str | None:
    k, v = kv
    if isinstance(v, ScalarNode):
        return None if v.tag == NULL or v.value == "" else str(v.value)
    ctx.err(k, path, f"must be a string, not {kind(v)}")
    return None


def _typed(ctx: Ctx, kv: KV, path: str, types: tuple[type, ...], what: str) -> Any:
    k, v = kv
    val = ctx.value(v) if isinstance(v, ScalarNode) else v
    if val is not None and (
        not isinstance(val, types) or (isinstance(val, bool) and bool not in types)
    ):
        ctx.err(k, path, f"must be {what}, not {kind(v)}")
        return None
    return val


def _unit(parse: Callable[[object], Any], positive: bool = False) -> Reader:
    def read(ctx: Ctx, kv: KV, path: str) -> Any:
        k, v = kv
        if not isinstance(v, ScalarNode):
            ctx.err(k, path, f"must be a single value, not {kind(v)}")
            return None
        raw = ctx.value(v)
        if raw is None or raw == "":
            return None
        try:
            val = parse(raw)
        except (ValueError, OverflowError) as e:
            ctx.err(k, path, str(e))
            return None
        if positive and not val:
            ctx.err(k, path, f"{raw!r} must be greater than zero")
            return None
        return val

    return _json(read, {"$ref": f"#/$defs/{parse.__name__.removeprefix('parse_')}"})


def str_list(ctx: Ctx, kv: KV, path: str) -> list[tuple[str, int]] | None:
    """A list of strings (or one string), each with its line."""
    k, v = kv
    if isinstance(v, ScalarNode):
        return [] if v.tag == NULL else [(str(v.value), line_of(v))]
    if not isinstance(v, SequenceNode):
        ctx.err(k, path, f"must be a list of strings, not {kind(v)}")
        return None
    out: list[tuple[str, int]] = []
    for i, item in enumerate(v.value):
        if isinstance(item, ScalarNode) and item.tag != NULL:
            out.append((str(item.value), line_of(item)))
        else:
            ctx.err(item, f"{path}[{i}]", f"must be a string, not {kind(item)}")
    return out


def _str_map(ctx: Ctx, kv: KV, path: str, key_re: re.Pattern[str], ctrl_ok: bool) -> dict[str, str]:
    """A flat mapping whose scalar values are kept as written (numbers become strings)."""
    v = kv[1]
    if isinstance(v, ScalarNode) and v.tag == NULL:
        return {}
    out: dict[str, str] = {}
    for key, (kn, vn) in ctx.pairs(v, path, None, set()).items():
        p = f"{path}.{key}"
        if not key_re.match(key):
            ctx.err(kn, p, f"key {key!r} is not a valid name")
        elif not isinstance(vn, ScalarNode):
            ctx.err(kn, p, f"must be a string, not {kind(vn)}")
        elif not ctrl_ok and _CTRL_RE.search(str(vn.value)):
            ctx.err(kn, p, "must not contain control characters or newlines")
        else:
            out[key] = "" if vn.tag == NULL else str(vn.value)
    return out


def read_name(ctx: Ctx, kv: KV | None, path: str, what: str, at: Node) -> str | None:
    """A required workflow/activity name: any non-empty text (see `names.ident`)."""
    if kv is None:
        ctx.err(at, path, "is required")
        return None
    value = read_str(ctx, kv, path)
    if value is None:
        if isinstance(kv[1], ScalarNode):
            ctx.err(kv[0], path, "is required")
        return None
    try:
        return check_label(value, what)
    except ValueError as e:
        ctx.err(kv[0], path, str(e))
        return None


def _bool(ctx: Ctx, kv: KV, path: str) -> bool | None:
    return _typed(ctx, kv, path, (bool,), "true or false")  # type: ignore[no-any-return]


def _count(most: int) -> Reader:
    def read(ctx: Ctx, kv: KV, path: str) -> int | None:
        val = _typed(ctx, kv, path, (int,), "a whole number")
        if val is not None and not 0 <= val <= most:
            ctx.err(kv[0], path, f"{val} must be between 0 and {most}")
            return None
        return None if val is None else int(val)

    return _json(read, {"type": "integer", "minimum": 0, "maximum": most})


def _ranged(lo: float, hi: float) -> Reader:
    def read(ctx: Ctx, kv: KV, path: str) -> float | None:
        val = _typed(ctx, kv, path, (int, float), f"a number between {lo:g} and {hi:g}")
        if val is not None and not lo <= val <= hi:
            ctx.err(kv[0], path, f"{val!r} must be between {lo:g} and {hi:g}")
            return None
        return None if val is None else float(val)

    return _json(read, {"type": "number", "minimum": lo, "maximum": hi})


def _selector(ctx: Ctx, kv: KV, path: str) -> dict[str, str]:
    """A mapping, or AkôFlow's string form `key=value` (several joined by commas)."""
    k, v = kv
    if not isinstance(v, ScalarNode) or v.tag == NULL:
        return _str_map(ctx, kv, path, _KEY_RE, ctrl_ok=False)
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in str(v.value).split(","))):
        key, eq, val = part.partition("=")
        if not eq or not _KEY_RE.match(key.strip()) or _CTRL_RE.search(val):
            ctx.err(k, path, f"node selector {part!r} is not 'key=value'")
        else:
            out[key.strip()] = val.strip()
    return out


def _extra(ctx: Ctx, kv: KV, path: str) -> dict[str, str]:
    """Scheduler keys (partition, qos, `slurm.constraint`…); values end up in batch directives."""
    out = _str_map(ctx, kv, path, _KEY_RE, ctrl_ok=False)
    for key in [key for key in out if key.lower() in _OWN_FIELD]:
        ctx.err(kv[0], f"{path}.{key}", f"use the activity field {_OWN_FIELD[key.lower()]!r}")
        del out[key]
    return out


STORAGE_TYPES = ("default", "distributed", "standalone")


def _policy_type(ctx: Ctx, kv: KV, path: str) -> str | None:
    t = read_str(ctx, kv, path)
    if t is not None and t not in STORAGE_TYPES:
        ctx.err(kv[0], path, f"storage type {t!r} must be default, distributed or standalone")
        return None
    return t


def _volumes(ctx: Ctx, kv: KV, path: str) -> list[Volume]:
    out: list[Volume] = []
    for i, (text, line) in enumerate(str_list(ctx, kv, path) or []):
        try:
            out.append(Volume.parse(text))
        except ValueError as e:
            ctx.err(line, f"{path}[{i}]", str(e).splitlines()[0])
    return out


def _webhooks(ctx: Ctx, kv: KV, path: str) -> list[Webhook]:
    if not isinstance(kv[1], SequenceNode):
        ctx.err(kv[0], path, f"must be a list, not {kind(kv[1])}")
        return []
    out: list[Webhook] = []
    for i, item in enumerate(kv[1].value):
        p = f"{path}[{i}]"
        hook = ctx.pairs(item, p, {"name", "url", "secret"}, set())
        vals = {f: read_str(ctx, hook[f], f"{p}.{f}") if f in hook else None for f in hook}
        for f in ("name", "url"):
            if isinstance(item, MappingNode) and not vals.get(f):
                ctx.err(hook[f][0] if f in hook else item, f"{p}.{f}", "is required")
        url = vals.get("url") or ""
        problem = check_url(url) if url else None
        if problem:
            ctx.err(hook["url"][0], f"{p}.url", f"url {url!r}: {problem}")
        elif url and (name := vals.get("name")):
            out.append(Webhook(name=name, url=url, secret=vals.get("secret")))
    return out


def read_fields(
    ctx: Ctx, pairs: Pairs, table: dict[str, tuple[str, Reader]], path: str
) -> dict[str, Any]:
    """Run each present key's reader; the result is keyed by model field name."""
    out: dict[str, Any] = {}
    for key, kv in pairs.items():
        if key in table and (val := table[key][1](ctx, kv, f"{path}.{key}")) is not None:
            out[table[key][0]] = val
    return out


def read_policy(ctx: Ctx, pairs: Pairs, path: str) -> dict[str, Any]:
    """Storage policy fields; a `storageAkoflowPolicy` mapping fills what is not set directly."""
    out = read_fields(ctx, pairs, POLICY_FIELDS, path)
    for key, val in out.pop("policy", {}).items():
        out.setdefault(key, val)
    return out


def _akoflow_policy(ctx: Ctx, kv: KV, path: str) -> dict[str, Any] | None:
    """`storageAkoflowPolicy`, as AkôFlow's files write it: a storage type (`distributed`), or a
    storage policy mapping (`{type: distributed}`); another string is kept as a policy name."""
    if isinstance(kv[1], MappingNode):
        return read_policy(ctx, ctx.pairs(kv[1], path, set(POLICY_FIELDS), set()), path)
    text = read_str(ctx, kv, path)
    if text is None:
        return None
    return {"type": text} if text in STORAGE_TYPES else {"akoflow_policy": text}


_modes: Reader = lambda c, kv, p: [m for m, _ in str_list(c, kv, p) or []]  # noqa: E731
_env: Reader = lambda c, kv, p: _str_map(c, kv, p, _ENV_RE, ctrl_ok=True)  # noqa: E731
SPEC_FIELDS: dict[str, tuple[str, Reader]] = {
    "runtime": ("runtime", read_str),
    "schedule": ("schedule", read_str),
    "image": ("image", read_str),
    "namespace": ("namespace", read_str),
    "mountPath": ("mount_path", read_str),
    "alpha": ("alpha", _ranged(0, 1)),
    "volumes": ("volumes", _volumes),
    "webhooks": ("webhooks", _webhooks),
    "sampleInterval": ("sample_interval", _unit(parse_duration, positive=True)),
    "license": ("license", read_str),
    "inputs": ("inputs", _modes),  # files a remote submission uploads (akoflow.remote)
}
POLICY_FIELDS: dict[str, tuple[str, Reader]] = {
    "type": ("type", _policy_type),
    "storageClassName": ("storage_class_name", read_str),
    "storageSize": ("storage_size", _unit(parse_memory, positive=True)),
    "accessModes": ("access_modes", _modes),
    "storageAccessModes": ("access_modes", _modes),
    "akoflowPolicy": ("akoflow_policy", read_str),
    "storageAkoflowPolicy": ("policy", _akoflow_policy),
    "nfsServer": ("nfs_server", read_str),
}
# AkôFlow's older flat spellings, directly under `spec`.
FLAT_POLICY = {
    "storageClassName",
    "storageSize",
    "storageAccessModes",
    "storageAkoflowPolicy",
    "nfsServer",
}
# "res.*" goes into Resources.
ACT_FIELDS: dict[str, tuple[str, Reader]] = {
    "image": ("image", read_str),
    "runtime": ("runtime", read_str),
    "mountPath": ("mount_path", read_str),
    "cpuLimit": ("res.cpu", _unit(parse_cpu)),
    "memoryLimit": ("res.memory", _unit(parse_memory, positive=True)),
    "timeLimit": ("res.time_limit", _unit(parse_duration)),
    "estimate": ("estimate", _unit(parse_duration)),
    "gpus": ("res.gpus", _count(MAX_GPUS)),
    "nodeSelector": ("res.node_selector", _selector),
    "resources": ("res.extra", _extra),
    "keepDisk": ("keep_disk", _bool),
    "cache": ("cache", _bool),
    "alpha": ("alpha", _ranged(0, 1)),
    "retries": ("retries", _count(MAX_RETRIES)),
    "retryMemoryFactor": ("retry_memory_factor", _ranged(1, 100)),
    "env": ("env", _env),
    # declared files (globs, relative to the work directory): checked at start and end;
    # lineage never depends on them (it is observed)
    "inputs": ("inputs", _modes),
    "outputs": ("outputs", _modes),
}
ACT_KNOWN = {"name", "run", "dependsOn", *ACT_FIELDS}
# Read-only fields AkôFlow writes when it exports a workflow (Go yaml.v3 lower-cases untagged).
ACT_IGNORED = {
    "id",
    "workflowid",
    "workflowId",
    "status",
    "procId",
    "createdAt",
    "startedAt",
    "finishedAt",
    "executionTime",
}
# Read-only fields of a workflow as AkôFlow's API returns it.
SPEC_IGNORED = {
    "createdAt",
    "startExecution",
    "endExecution",
    "executionTime",
    "longestActivity",
    "diskUsage",
}
_STRINGS = {"type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}
_LIST = {"type": "array", "items": {"type": "string"}}
for _reader, _fragment in (
    (read_str, {"type": ["string", "number", "boolean", "null"]}),  # any scalar, as text
    (_bool, {"type": "boolean"}),
    (_selector, {"anyOf": [{"type": "string", "pattern": r"^(\s*|[^=,]+=[^,]*(,[^=,]+=[^,]*)*)$"},
                           _STRINGS]}),
    (_extra, _STRINGS),
    (_env, {**_STRINGS, "propertyNames": {"pattern": _ENV_RE.pattern}}),
    (_modes, {"anyOf": [{"type": "string"}, _LIST]}),
    (_volumes, {"anyOf": [{"type": "string"}, _LIST]}),
    (_policy_type, {"enum": list(STORAGE_TYPES)}),
    (_akoflow_policy, {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/storagePolicy"}]}),
    (_webhooks, {"type": "array", "items": {"$ref": "#/$defs/webhook"}}),
):
    _json(_reader, _fragment)
