"""Render outbox snapshots into the exact JSON bodies AkôFlow documents (seed 001, section 3.2).

The manifest stores a snake_case snapshot of the activity or workflow in each outbox row
(`TransitionsMixin._enqueue_activity`, `finalize_workflow`); the AkôFlow shape is produced
here, at delivery time, so the wire format stays an edge concern and can be fixed without a
migration. Rendering is pure and deterministic: the same row always gives the same bytes,
which keeps the HMAC of a retried delivery identical to the first one.

Activity events (`ACTIVITY_COMPLETED`, `ACTIVITY_FAILED`)::

    {"type": ..., "data": {"Id", "WorkflowId", "Namespace", "Name", "Image",
     "ResourceK8sBase64", "Status", "ProcId", "DependOnActivity",
     "CreatedAt", "StartedAt", "FinishedAt"}}

Workflow events (`WORKFLOW_DONE`, `WORKFLOW_FAILED`)::

    {"type": ..., "data": {"ID", "Namespace", "Runtime", "Name", "RawWorkflow", "Status"}}

Field choices:

* Times are RFC 3339 in UTC with a `Z` suffix and whole seconds, as in seed 001's example
  (`2025-03-09T12:00:00Z`); unknown times are `null` (the fields are nullable).
* `Status` is AkôFlow's integer code, see `akoflow.events.codes` for the table and its source.
* `ProcId` is the scheduler job id as a string, or `null` before one was known.
* `DependOnActivity` is a single nullable int in AkôFlow; akoflow activities may have several
  parents, so it is the smallest parent id (deterministic), `null` for a root. The complete
  list is in `ResourceK8sBase64` (`dependsOn`, `dependsOnIds`).
* `RawWorkflow` is base64 (standard alphabet) of the workflow's YAML text as submitted,
  with secret fields (`akoflow.spec.secrets`: a webhook's `secret`) redacted.
* `ResourceK8sBase64`: AkôFlow stores base64 of `yaml.Marshal(WorkflowActivities)` there and
  decodes it with `yaml.Unmarshal`. We emit base64 of a compact JSON object with sorted keys
  -- JSON is valid YAML 1.2, so AkôFlow's own decoder reads it -- using AkôFlow's YAML keys
  (`name`, `image`, `cpuLimit`, `memoryLimit`, `nodeSelector`, `dependsOn`, `procId`) in
  Kubernetes quantity notation (`"500m"`, `"4Gi"`), plus akoflow's exact request under
  `resources` (cpu in cores, memory in bytes, time_limit in seconds, gpus, extra) and the
  `attempt`, `node`, `reason` and `message` (why it failed) of the run. The user's `run`
  command is not included: a webhook receiver is outside the cluster and commands often
  carry tokens.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from akoflow.events.codes import status_code
from akoflow.spec.secrets import redact_text

log = logging.getLogger(__name__)

ACTIVITY_EVENTS = frozenset({"ACTIVITY_COMPLETED", "ACTIVITY_FAILED"})
WORKFLOW_EVENTS = frozenset({"WORKFLOW_DONE", "WORKFLOW_FAILED"})

_BINARY_UNITS = (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def render_payload(
    event_type: str,
    snapshot: Mapping[str, Any],
    *,
    namespace: str | None = None,
    parent_names: Mapping[int, str] | None = None,
    raw_fallback: str = "",
) -> dict[str, Any]:
    """The AkôFlow envelope `{"type", "data"}` for one outbox snapshot.

    `namespace` fills activity rows (the activity snapshot has none of its own);
    `parent_names` turns parent ids into names for `dependsOn`; `raw_fallback` is used when
    the workflow has no YAML text (specs built with the Python API).
    An unknown event type is passed through as `{"type", "data": snapshot}` rather than
    dropped, so a newer writer never blocks an older deliverer's queue.
    """
    if event_type in ACTIVITY_EVENTS:
        data = _activity_data(event_type, snapshot, namespace, parent_names or {})
    elif event_type in WORKFLOW_EVENTS:
        data = _workflow_data(event_type, snapshot, raw_fallback)
    else:
        log.warning("unknown webhook event type %r: sending the snapshot unchanged", event_type)
        data = dict(snapshot)
    return {"type": event_type, "data": data}


def encode_body(document: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are POSTed and signed."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds to `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _activity_data(
    event_type: str,
    s: Mapping[str, Any],
    namespace: str | None,
    parent_names: Mapping[int, str],
) -> dict[str, Any]:
    parents = sorted(int(p) for p in s.get("parents") or [])
    job_id = s.get("job_id")
    proc_id = str(job_id) if job_id not in (None, "") else None
    return {
        "Id": int(s["id"]),
        "WorkflowId": int(s["workflow_id"]),
        "Namespace": str(s.get("namespace") or namespace or ""),
        "Name": str(s["name"]),
        "Image": str(s.get("image") or ""),
        "ResourceK8sBase64": _b64(encode_body(_resource_doc(s, parents, proc_id, parent_names))),
        "Status": status_code(event_type, s.get("status")),
        "ProcId": proc_id,
        "DependOnActivity": parents[0] if parents else None,
        "CreatedAt": rfc3339(s.get("created_at")),
        "StartedAt": rfc3339(s.get("started_at")),
        "FinishedAt": rfc3339(s.get("finished_at")),
    }


def _workflow_data(event_type: str, s: Mapping[str, Any], raw_fallback: str) -> dict[str, Any]:
    # Secret fields (a webhook's own HMAC key) never travel: the receiver verifies with it.
    raw = redact_text(str(s.get("raw_spec") or raw_fallback))
    return {
        "ID": int(s["id"]),
        "Namespace": str(s.get("namespace") or ""),
        "Runtime": str(s.get("runtime") or ""),
        "Name": str(s["name"]),
        "RawWorkflow": _b64(raw.encode("utf-8")),
        "Status": status_code(event_type, s.get("status")),
    }


def _resource_doc(
    s: Mapping[str, Any], parents: list[int], proc_id: str | None,
    parent_names: Mapping[int, str],
) -> dict[str, Any]:
    res: dict[str, Any] = dict(s.get("resources") or {})
    selector = res.get("node_selector") or {}
    return {
        "name": s.get("name"),
        "image": s.get("image") or "",
        "cpuLimit": _cpu_quantity(res.get("cpu")),
        "memoryLimit": _memory_quantity(res.get("memory")),
        "nodeSelector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        "dependsOn": [parent_names.get(p, str(p)) for p in parents],
        "dependsOnIds": parents,
        "procId": proc_id or "",
        "resources": res,
        "attempt": s.get("attempt"),
        "node": s.get("node"),
        "reason": s.get("reason"),
        "message": s.get("message"),
    }


def _cpu_quantity(cpu: object) -> str:
    """Cores as a Kubernetes quantity: 2.0 -> "2", 0.5 -> "500m"."""
    if not isinstance(cpu, (int, float)) or cpu <= 0:
        return ""
    if float(cpu).is_integer():
        return str(int(cpu))
    return f"{round(float(cpu) * 1000)}m"


def _memory_quantity(memory: object) -> str:
    """Bytes as a Kubernetes quantity in the largest exact binary unit: 4 GiB -> "4Gi"."""
    if not isinstance(memory, int) or isinstance(memory, bool) or memory <= 0:
        return ""
    for suffix, size in _BINARY_UNITS:
        if memory % size == 0:
            return f"{memory // size}{suffix}"
    return str(memory)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
