"""Pure pieces of the Kubernetes executor: object names, Job/PVC bodies, status mapping.

Everything here works on plain dicts in the API's own camelCase shape (what the client's
`sanitize_for_serialization` produces), so it is tested without any server.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from akoflow.port import AttemptOutcome, JobState, SpecError, TaskLaunch, protocol

LABEL_WORKFLOW: Final = "akoflow.workflow"
LABEL_ACTIVITY: Final = "akoflow.activity"
LABEL_ATTEMPT: Final = "akoflow.attempt"
LABEL_JOB: Final = "akoflow.job"  # the Job's object name, also on its pods
ANN_JOB_NAME: Final = "akoflow/job-name"  # the full akoflow job name (crash repair)
ANN_KEEP: Final = "akoflow/keep-disk"
CONTAINER: Final = "task"
INPUTS_ROOT: Final = "/akoflow/inputs"
DEFAULT_MOUNT: Final = "/akoflow/work"
_DNS_OK = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_BAD = re.compile(r"[^a-z0-9-]+")
_LABEL_OK = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Settings:
    """Site-profile defaults that shape every Job and PVC."""

    image: str | None = None
    default_memory: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    storage_class: str | None = None
    storage_size: str = "1Gi"
    access_modes: tuple[str, ...] = ("ReadWriteMany",)
    image_pull_policy: str | None = None
    service_account: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    allow_host_path: bool = False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1123 label for `text`: as is when already valid and short enough, otherwise
    lower-cased, `.`/`_` → `-`, truncated, with a hash suffix so that distinct inputs
    (`a.b` and `a-b`, `A` and `a`) never collide."""
    if len(text) <= limit and _DNS_OK.match(text):
        return text
    base = _DNS_BAD.sub("-", text.lower()).strip("-") or "x"
    return f"{base[:limit - 9].rstrip('-')}-{_digest(text)}"


def label_value(text: str) -> str:
    """A label value (≤ 63, alphanumerics and `._-`, alphanumeric at both ends)."""
    if len(text) <= 63 and _LABEL_OK.match(text):
        return text
    base = _LABEL_BAD.sub("-", text).strip("._-") or "x"
    return f"{base[:54].rstrip('._-')}-{_digest(text)}"


def split_job_name(job_name: str) -> tuple[str, str, str]:
    """(workflow id, activity, attempt) of `akoflow.<wf>.<activity>.<attempt>`."""
    parts = job_name.split(".")
    if len(parts) < 4 or parts[0] != "akoflow":
        raise ValueError(f"not an akoflow job name: {job_name!r}")
    return parts[1], ".".join(parts[2:-1]), parts[-1]


def job_object_name(job_name: str) -> str:
    """The Job's name: `akoflow-<wf>-<activity>-<attempt>`, hashed when not lossless."""
    wf, act, n = split_job_name(job_name)
    name = f"akoflow-{wf}-{dns_label(act, 40)}-{n}"
    return name if len(name) <= 63 else dns_label(job_name)


def pvc_name(workflow_id: int | str, activity: str | None = None) -> str:
    """The workflow's shared volume, or (standalone storage) one activity's own."""
    if activity is None:
        return f"akoflow-{workflow_id}-shared"
    return f"akoflow-{workflow_id}-vol-{dns_label(activity, 40)}"


def labels(launch: TaskLaunch) -> dict[str, str]:
    return {
        LABEL_WORKFLOW: str(launch.workflow_id),
        LABEL_ACTIVITY: label_value(launch.activity),
        LABEL_ATTEMPT: str(launch.attempt),
        LABEL_JOB: job_object_name(launch.job_name),
        "app.kubernetes.io/managed-by": "akoflow",
    }


def cpu_quantity(cores: float) -> str:
    """Cores as a quantity: whole numbers as such, fractions in millicores (rounded up)."""
    return str(int(cores)) if float(cores).is_integer() else f"{math.ceil(cores * 1000)}m"


def mount_of(launch: TaskLaunch) -> str:
    return launch.mount_path or DEFAULT_MOUNT


def standalone(launch: TaskLaunch) -> bool:
    return launch.storage.get("type") == "standalone"


def pvc_bodies(launch: TaskLaunch, s: Settings) -> list[dict[str, Any]]:
    """PVCs the launch needs to exist: the shared one, or its own under `standalone`
    (its parents' volumes exist already: they ran before it)."""
    st = launch.storage
    size = st.get("size")
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": pvc_name(launch.workflow_id, launch.activity if standalone(launch) else None),
            "labels": {LABEL_WORKFLOW: str(launch.workflow_id),
                       "app.kubernetes.io/managed-by": "akoflow"},
        },
        "spec": {
            "accessModes": list(st.get("access_modes") or s.access_modes),
            "resources": {"requests": {"storage": str(size) if size else s.storage_size}},
        },
    }
    klass = st.get("class") or s.storage_class
    if klass:
        body["spec"]["storageClassName"] = klass
    if standalone(launch):
        body["metadata"]["labels"][LABEL_ACTIVITY] = label_value(launch.activity)
    return [body]


def container_env(launch: TaskLaunch, s: Settings) -> list[dict[str, str]]:
    """AKOFLOW_* with the paths as the pod sees them. The attempt directory lives on the
    dispatcher's host, not in the pod, so AKOFLOW_ATTEMPT_DIR is left out."""
    mount = mount_of(launch)
    inside = replace(launch, work_dir=Path(mount), run_dir=Path(mount), mount_path=mount)
    env = {**s.env, **protocol.task_env(inside)}
    env.pop("AKOFLOW_ATTEMPT_DIR", None)
    return [{"name": k, "value": v} for k, v in env.items()]


def command(launch: TaskLaunch) -> list[str]:
    """`sh -c`, not bash: many images (alpine, busybox, distroless-debug) have no bash,
    while every image with a shell has a POSIX sh. `set -e` matches the `bash -e` that
    runs scripts elsewhere; under `standalone` the parents' outputs are copied in first."""
    lines = ["set -e"]
    if standalone(launch):
        lines += [f"cp -a {shlex.quote(f'{INPUTS_ROOT}/{p}')}/. ." for p in launch.parents]
    lines.append(launch.script.rstrip("\n"))
    return ["sh", "-c", "\n".join(lines)]


def _resources(launch: TaskLaunch, s: Settings) -> dict[str, Any]:
    """Requests and limits both, for cpu and memory: a limit alone would let the
    scheduler overcommit the node, a request alone would let the task take it all."""
    res = launch.resources
    qty = {"cpu": cpu_quantity(float(res.cpu or 1.0))}
    memory = res.memory or s.default_memory
    if memory:
        qty["memory"] = str(int(memory))
    out: dict[str, Any] = {"requests": dict(qty), "limits": dict(qty)}
    if int(res.gpus or 0) > 0:
        out["limits"][s.gpu_resource] = str(int(res.gpus))
    return out


def _volumes(launch: TaskLaunch, s: Settings) -> tuple[list[Any], list[Any]]:
    mount = mount_of(launch)
    own = pvc_name(launch.workflow_id, launch.activity if standalone(launch) else None)
    vols: list[Any] = [{"name": "work", "persistentVolumeClaim": {"claimName": own}}]
    mounts: list[Any] = [{"name": "work", "mountPath": mount}]
    if standalone(launch):
        for i, parent in enumerate(launch.parents):
            vols.append({"name": f"input-{i}", "persistentVolumeClaim": {
                "claimName": pvc_name(launch.workflow_id, parent), "readOnly": True}})
            mounts.append({"name": f"input-{i}", "mountPath": f"{INPUTS_ROOT}/{parent}",
                           "readOnly": True})
    if launch.volumes and not s.allow_host_path:
        raise SpecError(f"{launch.activity}: host volumes need `allow_host_path: true` in "
                        "the kubernetes site profile")
    for i, (host, target) in enumerate(launch.volumes):
        vols.append({"name": f"host-{i}", "hostPath": {"path": host}})
        mounts.append({"name": f"host-{i}", "mountPath": target})
    return vols, mounts


def job_body(launch: TaskLaunch, s: Settings) -> dict[str, Any]:
    """One batch/v1 Job for one attempt: no Kubernetes retries (akoflow owns retries)."""
    image = launch.image or s.image
    if not image:
        raise SpecError(f"{launch.activity} has no image; a kubernetes site needs one "
                        "(set `image:` on the activity, the spec, or the site profile)")
    vols, mounts = _volumes(launch, s)
    container: dict[str, Any] = {
        "name": CONTAINER, "image": image, "command": command(launch),
        "env": container_env(launch, s), "resources": _resources(launch, s),
        "workingDir": mount_of(launch), "volumeMounts": mounts,
    }
    if s.image_pull_policy:
        container["imagePullPolicy"] = s.image_pull_policy
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                           "volumes": vols}
    selector = {**s.node_selector, **launch.resources.node_selector}
    if selector:
        pod["nodeSelector"] = selector
    if launch.node:
        pod["nodeName"] = launch.node
    if s.service_account:
        pod["serviceAccountName"] = s.service_account
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {
        "metadata": {"labels": labels(launch)}, "spec": pod}}
    limit = launch.resources.time_limit
    if limit:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(float(limit)))
    annotations = {ANN_JOB_NAME: launch.job_name}
    if launch.keep_disk:
        annotations[ANN_KEEP] = "true"
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_object_name(launch.job_name), "labels": labels(launch),
                     "annotations": annotations},
        "spec": spec,
    }


# -- status ------------------------------------------------------------------------------
def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
    return None


def container_status(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The task container's status in the pod ({} without one)."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return dict(cs)
    return {}


def terminated(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The task container's `terminated` state ({} while it runs or without a pod)."""
    t: Mapping[str, Any] = (container_status(pod).get("state") or {}).get("terminated") or {}
    return t


def job_state(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> tuple[JobState, str | None]:
    """A Job's conditions as a JobState. Unlike AkôFlow, a Failed Job is a failure, not a
    finish: DeadlineExceeded is TIMEOUT, an OOMKilled container OOM, the rest FAILED."""
    if _condition(job, "Complete"):
        return JobState.COMPLETED, None
    failed = _condition(job, "Failed")
    if failed:
        why = f"{failed.get('reason') or 'Failed'}: {failed.get('message') or ''}".strip(": ")
        if failed.get("reason") == "DeadlineExceeded":
            return JobState.TIMEOUT, why
        if terminated(pod).get("reason") == "OOMKilled":
            return JobState.OOM, "container OOMKilled"
        return JobState.FAILED, why
    status = job.get("status") or {}
    if _condition(job, "Suspended"):
        return JobState.PENDING, "suspended"
    if status.get("active"):
        # `ready` counts pods that run; a pod still pulling its image or unscheduled is
        # active but not ready. Old servers do not report `ready`: call those running.
        ready = status.get("ready")
        return (JobState.RUNNING if ready is None or ready > 0 else JobState.PENDING), None
    if status.get("succeeded") or status.get("failed"):
        return JobState.RUNNING, None  # ended, condition not written yet
    return JobState.PENDING, None


def timestamp(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_REASONS: Final = {JobState.FAILED: "EXIT", JobState.TIMEOUT: "TIMEOUT", JobState.OOM: "OOM"}


def outcome(job: Mapping[str, Any], pod: Mapping[str, Any] | None, state: JobState,
            message: str | None, now: float) -> AttemptOutcome:
    """result.json for an ended Job, from its pod's container status."""
    term = terminated(pod)
    code = term.get("exitCode")
    if code is None and state is JobState.COMPLETED:
        code = 0
    status = job.get("status") or {}
    note = "; ".join(x for x in (message, term.get("reason"), term.get("message")) if x)
    return AttemptOutcome(
        exit_code=None if code is None else int(code),
        reason=None if state is JobState.COMPLETED else _REASONS.get(state, "EXIT"),
        started_at=timestamp(term.get("startedAt")) or timestamp(status.get("startTime")),
        finished_at=(timestamp(term.get("finishedAt"))
                     or timestamp(status.get("completionTime")) or now),
        node=((pod or {}).get("spec") or {}).get("nodeName"),
        image_id=container_status(pod).get("imageID") or None,
        message=f"kubernetes: {note}" if note else None,
    )
