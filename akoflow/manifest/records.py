"""Typed rows of the manifest (what a worker reports is the port's: akoflow/port/records.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from akoflow.port import Resources


@dataclass(frozen=True)
class WorkflowRecord:
    id: int
    name: str
    namespace: str
    runtime: str
    raw_spec: str
    spec_json: str
    spec_path: str | None
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_dir: str
    work_dir: str
    site: str | None
    webhooks: str
    owner: str | None
    dispatcher_job: str | None
    message: str | None
    schedule: str | None = None
    dispatcher_seen_at: float | None = None  # the last dispatcher's heartbeat
    dispatcher_error: str | None = None  # why the last dispatcher stopped, if it failed


@dataclass(frozen=True)
class ActivityRecord:
    id: int
    workflow_id: int
    seq: int
    name: str
    run: str
    image: str | None
    runtime: str
    resources: str
    env: str
    alpha: float
    retries: int
    retry_memory_factor: float
    status: str
    reason: str | None
    attempts: int
    failures: int
    unfinished_parents: int
    node: str | None
    job_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    message: str | None
    identity: str | None
    cache: int
    container: str = "{}"
    estimate: float | None = None

    def resources_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.resources)
        return value

    def request(self) -> Resources:
        """The resources column, typed."""
        return Resources.from_json(self.resources)

    def container_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.container or "{}")
        return value

    def env_dict(self) -> dict[str, str]:
        value: dict[str, str] = json.loads(self.env)
        return value


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    workflow_id: int
    activity_id: int
    number: int
    status: str
    executor: str
    job_name: str
    job_id: str | None
    node: str | None
    attempt_dir: str
    resources: str
    exit_code: int | None
    reason: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    cpu_time: float | None
    peak_rss: int | None
    image_id: str | None
    scores: str | None
    message: str | None


@dataclass(frozen=True)
class EventRecord:
    id: int
    workflow_id: int
    activity_id: int | None
    attempt: int | None
    ts: float
    kind: str
    from_status: str | None
    to_status: str | None
    node: str | None
    message: str | None
    activity: str | None = None


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    workflow_id: int
    activity_id: int | None
    event_type: str
    url: str
    hook_name: str
    payload: str
    idempotency_key: str
    created_at: float
    tries: int
    next_try_at: float
    delivered_at: float | None
    last_error: str | None


@dataclass(frozen=True, kw_only=True)
class LiveAttempt:
    """An attempt in SUBMITTING/QUEUED/RUNNING, with what reconciliation needs."""

    attempt_id: int
    activity_id: int
    activity: str
    number: int
    status: str
    site: str  # the site it was submitted to (the attempt row's `executor` column)
    job_name: str
    job_id: str | None
    attempt_dir: str
    submitted_at: float
    started_at: float | None
    activity_status: str
