"""Plain types of the dispatch cycle: its settings, its report, and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

from akoflow.executor import JobState, TaskLaunch
from akoflow.manifest import Completion, LiveAttempt, Reason, Status


@dataclass
class DispatchConfig:
    # Seconds between psutil samples: AKOFLOW_SAMPLE_INTERVAL; None = the site profile's
    # `sample_interval` (15 s unless it says otherwise). A spec's `sampleInterval` wins.
    sample_interval: float | None = None
    lost_grace: float = 120.0  # seconds a job may be unknown to its scheduler without a result
    submit_limit: int = 5000  # activities submitted per cycle
    notify_budget: float = 2.0  # seconds per cycle spent on webhook delivery
    chain_spacing: float = 5.0  # minimum seconds between two dispatcher jobs
    lookahead: int = 2  # levels of children queued ahead (`afterok`) per cycle; 0 = off
    ahead_limit: int = 1000  # activities queued ahead of their parents at any time


@dataclass
class CycleReport:
    completions: list[Completion] = field(default_factory=list)
    submitted: int = 0
    cached: int = 0
    live: int = 0
    workflow_status: str = ""
    finished: bool = False


@dataclass(frozen=True)
class Claim:
    attempt_id: int
    launch: TaskLaunch
    planned: str | None


ACTIVE = frozenset({JobState.PENDING, JobState.RUNNING})


def with_status(la: LiveAttempt, status: Status) -> LiveAttempt:
    return LiveAttempt(la.attempt_id, la.activity_id, la.activity, la.number, status.value,
                       la.executor, la.job_name, la.job_id, la.attempt_dir, la.submitted_at,
                       la.started_at, la.activity_status)


def failure_reason(state: JobState) -> str:
    return {
        JobState.TIMEOUT: Reason.TIMEOUT.value,
        JobState.OOM: Reason.OOM.value,
        JobState.NODE_FAIL: Reason.NODE_FAIL.value,
        JobState.PREEMPTED: Reason.PREEMPTED.value,
        JobState.CANCELLED: Reason.CANCELLED.value,
        JobState.GONE: Reason.LOST.value,
    }.get(state, Reason.EXIT.value)
