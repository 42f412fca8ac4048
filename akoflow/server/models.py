"""Response and request bodies of AkôFlow's API, as its engine's Go types serialise them.

Field names and types follow AkôFlow's `types_api` package (`ApiWorkflowType`,
`ApiWorkflowActivityType`, `ApiRuntimeType`, `ApiScheduleType`) and its create handler's
answer (`workflow_entity`, `workflow_id`, `message`): a client written for AkôFlow reads these
unchanged. `status` is AkôFlow's integer code (`akoflow.events.codes`); what akoflow knows
beyond that travels in extra fields (`state`, `reason`, `counts`, ...), which AkôFlow's clients
ignore. Times are AkôFlow's `YYYY-MM-DD HH:MM:SS` (UTC here), "" when unknown.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from akoflow.events.codes import ACTIVITY_CODES, WORKFLOW_CODES
from akoflow.manifest import ActivityRecord, WorkflowRecord
from akoflow.spec.dump import format_memory


class SubmitBody(BaseModel):
    workflow: str = Field(description="The workflow's AkôFlow YAML, base64-encoded (standard "
                                      "alphabet), as AkôFlow's own clients send it")


class SubmitAnswer(BaseModel):
    workflow_entity: str = Field(description="The workflow's name")
    workflow_id: int
    message: str
    dispatcher: str = Field(description="Where its dispatcher runs (`pid N` or `job N`)")


class AkoActivity(BaseModel):
    id: int = 0
    workflowId: int = 0
    status: int = 0
    runtime: str = ""
    name: str = ""
    run: str = ""
    memoryLimit: str = ""
    cpuLimit: str = ""
    dependsOn: list[str] = []
    nodeSelector: str = ""
    keepDisk: bool = False
    createdAt: str = ""
    startedAt: str = ""
    finishedAt: str = ""
    executionTime: str = ""
    state: str = Field("", description="akoflow's own state (PENDING ... SKIPPED)")
    reason: str | None = None
    attempts: int = 0
    node: str | None = None


class AkoStoragePolicy(BaseModel):
    type: str


class AkoSpec(BaseModel):
    image: str
    namespace: str
    storageClassName: str
    storageSize: str
    storagePolicy: AkoStoragePolicy
    mountPath: str
    activities: list[AkoActivity]
    createdAt: str
    startExecution: str
    endExecution: str
    executionTime: str
    longestActivity: AkoActivity
    diskUsage: str


class AkoWorkflow(BaseModel):
    name: str
    status: int
    id: int
    spec: AkoSpec
    state: str = Field(description="akoflow's own workflow state")
    site: str | None = None
    counts: dict[str, int] = Field(description="activities per akoflow state")
    last_event_id: int = Field(description="newest run-log row: resume an event stream here")


class AkoRuntime(BaseModel):
    name: str
    status: int = Field(description="1 when its executor is installed here, else 0")
    metadata: dict[str, str]
    createdAt: str = ""
    updatedAt: str = ""
    deletedAt: str = ""


class AkoSchedule(BaseModel):
    id: int
    type: str = Field(description="`builtin` (shipped with akoflow) or `plugin`")
    code: str = Field(description="the entry point's target, `module:function`")
    name: str
    createdAt: str = ""
    updatedAt: str = ""


def ako_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _cpu(cpu: Any) -> str:
    if not isinstance(cpu, (int, float)) or cpu <= 0:
        return ""
    return str(int(cpu)) if float(cpu).is_integer() else f"{round(float(cpu) * 1000)}m"


def _seconds(start: float | None, end: float | None) -> str:
    return "" if start is None or end is None else str(int(max(end - start, 0)))


def ako_activity(a: ActivityRecord, parents: list[str]) -> AkoActivity:
    res = a.resources_dict()
    memory = res.get("memory")
    selector = res.get("node_selector") or {}
    return AkoActivity(
        id=a.id, workflowId=a.workflow_id, status=ACTIVITY_CODES.get(a.status, 0),
        runtime=a.runtime, name=a.name, run=a.run,
        memoryLimit=str(format_memory(memory)) if memory else "", cpuLimit=_cpu(res.get("cpu")),
        dependsOn=parents, nodeSelector=",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        keepDisk=bool(a.container_dict().get("keep_disk")), createdAt=ako_time(a.created_at),
        startedAt=ako_time(a.started_at), finishedAt=ako_time(a.finished_at),
        executionTime=_seconds(a.started_at, a.finished_at), state=a.status, reason=a.reason,
        attempts=a.attempts, node=a.node)


def ako_workflow(wf: WorkflowRecord, spec: dict[str, Any], acts: list[AkoActivity] | None,
                 counts: dict[str, int], last_event: int) -> AkoWorkflow:
    """AkôFlow's workflow object; `acts` None leaves the activity list empty (listings)."""
    policy = spec.get("storagePolicy") or {}
    done = [a for a in acts or [] if a.executionTime]
    longest = max(done, key=lambda a: int(a.executionTime), default=AkoActivity(state=""))
    return AkoWorkflow(
        name=wf.name, status=WORKFLOW_CODES.get(wf.status, 0), id=wf.id,
        spec=AkoSpec(
            image=str(spec.get("image") or ""), namespace=wf.namespace,
            storageClassName=str(policy.get("storageClassName") or ""),
            storageSize=str(policy.get("storageSize") or ""),
            storagePolicy=AkoStoragePolicy(type=str(policy.get("type") or "default")),
            mountPath=str(spec.get("mountPath") or ""), activities=acts or [],
            createdAt=ako_time(wf.created_at), startExecution=ako_time(wf.started_at),
            endExecution=ako_time(wf.finished_at),
            executionTime=_seconds(wf.started_at, wf.finished_at), longestActivity=longest,
            diskUsage="0"),
        state=wf.status, site=wf.site, counts=counts, last_event_id=last_event)
