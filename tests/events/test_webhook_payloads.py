"""The AkôFlow wire format of seed 001 (section 3.2), field by field."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from akoflow.events import encode_body, render_payload
from akoflow.events.codes import ACTIVITY_CODES, WORKFLOW_CODES, status_code
from akoflow.port import Status, WorkflowStatus

ACTIVITY_FIELDS = [
    "Id", "WorkflowId", "Namespace", "Name", "Image", "ResourceK8sBase64", "Status", "ProcId",
    "DependOnActivity", "CreatedAt", "StartedAt", "FinishedAt",
]
WORKFLOW_FIELDS = ["ID", "Namespace", "Runtime", "Name", "RawWorkflow", "Status"]
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# 2025-03-09T12:00:00Z, the seed's example times
T0 = 1741521600.0


def activity_snapshot(**over: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "id": 123, "workflow_id": 456, "name": "inference-examples",
        "image": "/scratch/p-inference-nemo.sif",
        "resources": {"cpu": 0.5, "memory": 4 << 30, "time_limit": 60.0, "gpus": 0,
                      "node_selector": {"zone": "a"}, "extra": {}},
        "status": "FINISHED", "job_id": "abcd-efgh-1234", "node": "n1", "parents": [9, 7],
        "created_at": T0, "started_at": T0 + 300, "finished_at": T0 + 600.9,
        "attempt": 1, "reason": None,
    }
    snap.update(over)
    return snap


def workflow_snapshot(**over: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "id": 456, "name": "p-inference-nemo", "namespace": "default", "runtime": "sdumont",
        "raw_spec": "name: p-inference-nemo\nspec:\n  runtime: sdumont\n", "status": "FINISHED",
        "created_at": T0, "started_at": T0, "finished_at": T0 + 1,
    }
    snap.update(over)
    return snap


def test_activity_completed_matches_seed_example_shape() -> None:
    doc = render_payload("ACTIVITY_COMPLETED", activity_snapshot(), namespace="default",
                         parent_names={7: "prep", 9: "fetch"})
    assert list(doc) == ["type", "data"]
    assert doc["type"] == "ACTIVITY_COMPLETED"
    data = doc["data"]
    assert list(data) == ACTIVITY_FIELDS
    assert data["Id"] == 123 and data["WorkflowId"] == 456
    assert data["Namespace"] == "default"
    assert data["Name"] == "inference-examples"
    assert data["Image"] == "/scratch/p-inference-nemo.sif"
    assert data["ProcId"] == "abcd-efgh-1234"
    assert data["DependOnActivity"] == 7  # smallest parent id
    assert data["CreatedAt"] == "2025-03-09T12:00:00Z"
    assert data["StartedAt"] == "2025-03-09T12:05:00Z"
    assert data["FinishedAt"] == "2025-03-09T12:10:00Z"
    assert data["Status"] == 2  # AkôFlow StatusFinished
    types = {k: type(v) for k, v in data.items()}
    assert types["Id"] is int and types["WorkflowId"] is int and types["Status"] is int
    assert all(types[k] is str for k in ("Namespace", "Name", "Image", "ResourceK8sBase64"))


def test_resource_blob_is_base64_json_readable_as_akoflow_yaml() -> None:
    data = render_payload("ACTIVITY_COMPLETED", activity_snapshot(),
                          parent_names={7: "prep", 9: "fetch"})["data"]
    blob = json.loads(base64.b64decode(data["ResourceK8sBase64"], validate=True))
    assert blob["cpuLimit"] == "500m"
    assert blob["memoryLimit"] == "4Gi"
    assert blob["nodeSelector"] == "zone=a"
    assert blob["dependsOn"] == ["prep", "fetch"]
    assert blob["dependsOnIds"] == [7, 9]
    assert blob["procId"] == "abcd-efgh-1234"
    assert blob["resources"]["memory"] == 4 << 30
    assert "run" not in blob


def test_nullable_activity_fields_are_null() -> None:
    data = render_payload("ACTIVITY_FAILED", activity_snapshot(
        job_id=None, parents=[], started_at=None, status="FAILED", reason="OOM"))["data"]
    assert data["ProcId"] is None
    assert data["DependOnActivity"] is None
    assert data["StartedAt"] is None
    assert data["Status"] == 3
    assert data["Namespace"] == ""  # no namespace known: empty string, the field is not nullable


def test_workflow_done_matches_seed_example_shape() -> None:
    snap = workflow_snapshot()
    doc = render_payload("WORKFLOW_DONE", snap)
    assert doc["type"] == "WORKFLOW_DONE"
    data = doc["data"]
    assert list(data) == WORKFLOW_FIELDS
    assert data["ID"] == 456 and isinstance(data["ID"], int)
    assert (data["Namespace"], data["Runtime"], data["Name"]) == (
        "default", "sdumont", "p-inference-nemo")
    assert base64.b64decode(data["RawWorkflow"], validate=True).decode() == snap["raw_spec"]
    assert data["Status"] == 2


def test_workflow_failed_and_raw_fallback() -> None:
    data = render_payload("WORKFLOW_FAILED", workflow_snapshot(raw_spec="", status="FAILED"),
                          raw_fallback='{"name": "x"}')["data"]
    assert data["Status"] == 3
    assert base64.b64decode(data["RawWorkflow"]).decode() == '{"name": "x"}'


def test_times_are_rfc3339_utc_z() -> None:
    data = render_payload("ACTIVITY_COMPLETED", activity_snapshot(created_at=0.4))["data"]
    assert data["CreatedAt"] == "1970-01-01T00:00:00Z"
    for key in ("StartedAt", "FinishedAt"):
        assert RFC3339_Z.match(data[key]), data[key]


@pytest.mark.parametrize(("event", "status", "code"), [
    ("ACTIVITY_COMPLETED", "FINISHED", 2), ("ACTIVITY_FAILED", "FAILED", 3),
    ("ACTIVITY_FAILED", "CANCELLED", 3), ("ACTIVITY_COMPLETED", "RUNNING", 1),
    ("ACTIVITY_COMPLETED", "READY", 0), ("WORKFLOW_DONE", "FINISHED", 2),
    ("WORKFLOW_FAILED", "FAILED", 3), ("WORKFLOW_FAILED", "CANCELLED", 3),
    ("WORKFLOW_DONE", "RUNNING", 1), ("WORKFLOW_DONE", "NEW-STATE", 2),
    ("ACTIVITY_FAILED", "NEW-STATE", 3),
])
def test_status_codes(event: str, status: str, code: int) -> None:
    assert status_code(event, status) == code


def test_every_internal_state_has_a_code() -> None:
    assert set(ACTIVITY_CODES) == {s.value for s in Status}
    assert set(WORKFLOW_CODES) == {s.value for s in WorkflowStatus}


def test_unknown_event_passes_through_and_body_is_compact_and_stable() -> None:
    doc = render_payload("SOMETHING_NEW", {"x": 1})
    assert doc == {"type": "SOMETHING_NEW", "data": {"x": 1}}
    body = encode_body(render_payload("ACTIVITY_COMPLETED", activity_snapshot()))
    assert body == encode_body(render_payload("ACTIVITY_COMPLETED", activity_snapshot()))
    assert b": " not in body and body.startswith(b'{"type":"ACTIVITY_COMPLETED","data":{"Id":123')
