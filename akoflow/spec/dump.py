"""`WorkflowSpec` → AkôFlow YAML, so imported or Python-built workflows can be read and edited.

Only non-default fields are written, with AkôFlow's camelCase keys and units (`512Mi`), and the
output loads back through `parse_workflow_text` to an equal spec.
"""

from __future__ import annotations

from typing import Any

import yaml

from akoflow.spec.models import ActivitySpec, Resources, StoragePolicy, WorkflowSpec

_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_KI = 1024


class _Dumper(_Base):  # type: ignore[misc]
    """Multi-line strings (the `run` scripts) as literal blocks, like hand-written AkôFlow YAML."""


def _str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def format_memory(n: int) -> str | int:
    """Bytes as `NGi`/`NMi`/`NKi` when exact, else plain bytes."""
    for suffix, size in (("Gi", _KI**3), ("Mi", _KI**2), ("Ki", _KI)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return n


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _resources(r: Resources, out: dict[str, Any]) -> None:
    default = Resources()
    if r.cpu != default.cpu:
        out["cpuLimit"] = _num(r.cpu)
    if r.memory is not None:
        out["memoryLimit"] = format_memory(r.memory)
    if r.time_limit is not None:
        out["timeLimit"] = _num(r.time_limit)
    if r.gpus:
        out["gpus"] = r.gpus
    if r.node_selector:
        out["nodeSelector"] = dict(r.node_selector)
    if r.extra:
        out["resources"] = dict(r.extra)


def _activity(a: ActivitySpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name}
    for key, val in (("image", a.image), ("runtime", a.runtime)):
        if val is not None:
            out[key] = val
    _resources(a.resources, out)
    if a.depends_on:
        out["dependsOn"] = list(a.depends_on)
    extras: tuple[tuple[str, Any, Any], ...] = (
        ("keepDisk", a.keep_disk, False),
        ("mountPath", a.mount_path, None),
        ("alpha", a.alpha, None),
        ("retries", a.retries, 0),
        ("retryMemoryFactor", a.retry_memory_factor, 1.0),
        ("env", dict(a.env), {}),
        ("cache", a.cache, False),
        ("estimate", a.estimate, None),
        ("inputs", list(a.inputs), []),
        ("outputs", list(a.outputs), []),
    )
    out.update((key, val) for key, val, default in extras if val != default)
    out["run"] = a.run
    return out


def _policy(p: StoragePolicy) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.type}
    for key, val in (
        ("storageClassName", p.storage_class_name),
        ("storageSize", None if p.storage_size is None else format_memory(p.storage_size)),
        ("accessModes", list(p.access_modes) or None),
        ("akoflowPolicy", p.akoflow_policy),
        ("nfsServer", p.nfs_server),
    ):
        if val is not None:
            out[key] = val
    return out


# Field defaults of a workflow (its required fields filled with placeholders).
_DEFAULTS = WorkflowSpec(name="defaults", activities=[ActivitySpec(name="a", run="true")])


def to_document(spec: WorkflowSpec) -> dict[str, Any]:
    """The plain-data form of the YAML document (for JSON output or further editing)."""
    default = _DEFAULTS
    body: dict[str, Any] = {"runtime": spec.runtime}
    for key, val, dflt in (
        ("schedule", spec.schedule, None),
        ("image", spec.image, None),
        ("namespace", spec.namespace, default.namespace),
        ("mountPath", spec.mount_path, None),
        ("alpha", spec.alpha, default.alpha),
    ):
        if val != dflt:
            body[key] = val
    if spec.volumes:
        body["volumes"] = [
            v.host if v.host == v.container else f"{v.host}:{v.container}" for v in spec.volumes
        ]
    if spec.storage_policy != default.storage_policy:
        body["storagePolicy"] = _policy(spec.storage_policy)
    if spec.webhooks:
        body["webhooks"] = [
            {k: v for k, v in (("name", w.name), ("url", w.url), ("secret", w.secret)) if v}
            for w in spec.webhooks
        ]
    body["activities"] = [_activity(a) for a in spec.activities]
    return {"name": spec.name, "spec": body}


def dump_yaml(spec: WorkflowSpec) -> str:
    """AkôFlow YAML text for `spec` (what `akoflow import ... -o wf.yaml` writes)."""
    text: str = yaml.dump(
        to_document(spec), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return text
