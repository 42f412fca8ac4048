"""Plain types of the dispatch cycle: its settings, its report, the executors it has opened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from akoflow.manifest import Completion
from akoflow.port import Executor, JobState, Reason, TaskLaunch

Resolver = Callable[[str], Executor]  # site name -> its executor (akoflow.sites.SiteResolver)


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


@dataclass(frozen=True, kw_only=True)
class Claim:
    """An intent recorded in the manifest, with the launch it stands for."""

    attempt_id: int
    launch: TaskLaunch
    planned: str | None  # the job id when the executor knows it before submission


class Sites:
    """The executor of each site a dispatcher has used: a site name (an activity's
    `runtime`, an attempt's `executor` column) resolved once, then kept open."""

    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve
        self.opened: dict[str, Executor] = {}

    def __call__(self, site: str) -> Executor:
        ex = self.opened.get(site)
        if ex is None:
            ex = self.opened[site] = self.resolve(site)
        return ex

    def __iter__(self) -> Iterator[Executor]:
        return iter(list(self.opened.values()))

    def close(self) -> None:
        for ex in self:
            ex.close()


ACTIVE = frozenset({JobState.PENDING, JobState.RUNNING})


def failure_reason(state: JobState) -> str:
    return {
        JobState.TIMEOUT: Reason.TIMEOUT.value,
        JobState.OOM: Reason.OOM.value,
        JobState.NODE_FAIL: Reason.NODE_FAIL.value,
        JobState.PREEMPTED: Reason.PREEMPTED.value,
        JobState.CANCELLED: Reason.CANCELLED.value,
        JobState.GONE: Reason.LOST.value,
    }.get(state, Reason.EXIT.value)
