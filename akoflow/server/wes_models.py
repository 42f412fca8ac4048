"""GA4GH WES 1.1 bodies, and the one table that maps akoflow's states to WES states."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, Field

WesState = Literal["UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "COMPLETE",
                   "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "CANCELING", "PREEMPTED"]

# akoflow state (workflow or activity) -> WES State. A failure is refined by its reason
# below: the task's own command failing is EXECUTOR_ERROR, the system failing it is not.
WES_STATES: Final[dict[str, WesState]] = {
    "PENDING": "QUEUED",          # registered, waiting for parents / a dispatcher
    "READY": "QUEUED",            # runnable, waiting for room
    "SUBMITTING": "INITIALIZING",  # handed to the executor
    "QUEUED": "QUEUED",           # in the batch scheduler's queue
    "RUNNING": "RUNNING",
    "FINISHED": "COMPLETE",
    "FAILED": "EXECUTOR_ERROR",   # exit code, time limit, memory
    "CANCELLED": "CANCELED",
    "SKIPPED": "CANCELED",        # never ran: an ancestor failed
}
FAILURE_STATES: Final[dict[str, WesState]] = {
    "PREEMPTED": "PREEMPTED", "NODE_FAIL": "SYSTEM_ERROR", "LOST": "SYSTEM_ERROR",
    "SUBMIT_ERROR": "SYSTEM_ERROR", "SPEC_ERROR": "SYSTEM_ERROR",
}


def wes_state(state: str, reason: str | None = None) -> WesState:
    if state == "FAILED" and reason in FAILURE_STATES:
        return FAILURE_STATES[reason]
    return WES_STATES.get(state, "UNKNOWN")


class ServiceType(BaseModel):
    group: str
    artifact: str
    version: str


class Organization(BaseModel):
    name: str
    url: str


class TypeVersions(BaseModel):
    workflow_type_version: list[str]


class EngineVersions(BaseModel):
    workflow_engine_version: list[str]


class EngineParameter(BaseModel):
    name: str
    type: str
    default_value: str


class ServiceInfo(BaseModel):
    id: str
    name: str
    type: ServiceType
    description: str
    organization: Organization
    version: str
    workflow_type_versions: dict[str, TypeVersions]
    supported_wes_versions: list[str]
    supported_filesystem_protocols: list[str]
    workflow_engine_versions: dict[str, EngineVersions]
    default_workflow_engine_parameters: list[EngineParameter]
    system_state_counts: dict[str, int]
    auth_instructions_url: str
    tags: dict[str, str]


class RunId(BaseModel):
    run_id: str


class RunStatus(BaseModel):
    run_id: str
    state: WesState


class RunSummary(RunStatus):
    start_time: str | None = None
    end_time: str | None = None
    tags: dict[str, str] = {}


class RunListResponse(BaseModel):
    runs: list[RunSummary]
    next_page_token: str = Field(description="empty when there are no more pages")
    total_runs: int


class RunRequest(BaseModel):
    workflow_params: dict[str, Any] = {}
    workflow_type: str
    workflow_type_version: str
    tags: dict[str, str] = {}
    workflow_engine_parameters: dict[str, Any] = {}
    workflow_url: str


class Log(BaseModel):
    name: str | None = None
    cmd: list[str] = []
    start_time: str | None = None
    end_time: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    system_logs: list[str] = []


class TaskLog(Log):
    id: str
    name: str


class RunLog(BaseModel):
    run_id: str
    request: RunRequest
    state: WesState
    run_log: Log
    task_logs_url: str
    task_logs: list[TaskLog] | None = None
    outputs: dict[str, Any]


class TaskListResponse(BaseModel):
    task_logs: list[TaskLog]
    next_page_token: str
