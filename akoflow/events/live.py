"""Live events: run-log rows as the messages of an event stream, webhook events included.

A state change is one row of the manifest's run log (`event` table). A live stream (the HTTP
service's Server-Sent Events) sends each row as a `state` message and, when the row is one a
webhook announces (an activity finished or failed for good, the workflow ended), the same
`{"type", "data"}` body a webhook receiver gets, rendered by `render_payload` — whether or
not the workflow declared webhooks, since the outbox only holds rows for those that did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from akoflow.events.payloads import render_payload, rfc3339
from akoflow.manifest import EventRecord, Manifest, ManifestError
from akoflow.port import Status, WorkflowStatus

_WORKFLOW_TYPES = {
    WorkflowStatus.FINISHED.value: "WORKFLOW_DONE",
    WorkflowStatus.FAILED.value: "WORKFLOW_FAILED",
    WorkflowStatus.CANCELLED.value: "WORKFLOW_FAILED",  # as finalize_workflow enqueues it
}
_ACTIVITY_TYPES = {
    Status.FINISHED.value: "ACTIVITY_COMPLETED",
    Status.FAILED.value: "ACTIVITY_FAILED",  # a failure with retries left is a RETRY row
}


@dataclass(frozen=True)
class LiveMessage:
    """One stream message: its event name and JSON body; `row` is the run-log id."""

    row: int
    workflow_id: int
    event: str
    data: dict[str, Any]


def state_body(e: EventRecord) -> dict[str, Any]:
    """A run-log row as JSON: what changed, where and when."""
    return {
        "id": e.id, "workflow_id": e.workflow_id, "kind": e.kind, "activity": e.activity,
        "activity_id": e.activity_id, "attempt": e.attempt, "from_status": e.from_status,
        "to_status": e.to_status, "node": e.node, "message": e.message, "ts": e.ts,
        "time": rfc3339(e.ts),
    }


def webhook_type(e: EventRecord) -> str | None:
    """The webhook event a run-log row stands for, if any."""
    if e.kind == "WORKFLOW" and e.to_status:
        return _WORKFLOW_TYPES.get(e.to_status)
    if e.kind == "STATE" and e.activity_id is not None and e.to_status:
        return _ACTIVITY_TYPES.get(e.to_status)
    return None


def messages(m: Manifest, rows: list[EventRecord]) -> list[LiveMessage]:
    """Stream messages for run-log rows, in order: each row's `state` message, then its
    webhook-shaped message when it has one."""
    out: list[LiveMessage] = []
    names: dict[int, dict[int, str]] = {}
    for e in rows:
        out.append(LiveMessage(e.id, e.workflow_id, "state", state_body(e)))
        kind = webhook_type(e)
        if kind is None:
            continue
        body = _webhook_body(m, e, kind, names)
        if body is not None:
            out.append(LiveMessage(e.id, e.workflow_id, kind, body))
    return out


def _webhook_body(m: Manifest, e: EventRecord, kind: str,
                  names: dict[int, dict[int, str]]) -> dict[str, Any] | None:
    try:
        wf = m.get_workflow(e.workflow_id)
    except ManifestError:  # the workflow row is gone: the state message still went out
        return None
    if kind.startswith("WORKFLOW"):
        snapshot: dict[str, Any] = {
            "id": wf.id, "name": wf.name, "namespace": wf.namespace, "runtime": wf.runtime,
            "raw_spec": wf.raw_spec, "status": e.to_status,
        }
        return render_payload(kind, snapshot, raw_fallback=wf.spec_json)
    act = m.activity_by_id(int(e.activity_id or 0))
    if act is None:
        return None
    if e.workflow_id not in names:
        names[e.workflow_id] = {a.id: a.name for a in m.activities(e.workflow_id)}
    snapshot = {
        "id": act.id, "workflow_id": act.workflow_id, "name": act.name, "image": act.image,
        "namespace": wf.namespace, "resources": act.resources_dict(), "status": e.to_status,
        "job_id": act.job_id, "node": e.node or act.node, "parents": m.parents_of(act.id),
        "created_at": act.created_at, "started_at": act.started_at,
        "finished_at": act.finished_at, "attempt": e.attempt, "reason": act.reason,
    }
    return render_payload(kind, snapshot, namespace=wf.namespace,
                          parent_names=names[e.workflow_id])
