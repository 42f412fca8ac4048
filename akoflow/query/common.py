"""What every query shares: the records it returns (frozen dataclasses, never manifest
rows), how it opens the manifest for one call, and how it finds a workflow by id or name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from akoflow.manifest import Manifest, WorkflowRecord

WorkflowRef = int | str
TimeRef = float | int | datetime | str


@dataclass(frozen=True)
class WorkflowInfo:
    id: int
    name: str
    namespace: str
    runtime: str
    site: str | None
    owner: str | None
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_dir: str
    work_dir: str
    activities: dict[str, int]  # status -> count


@dataclass(frozen=True)
class ActivityInfo:
    id: int
    name: str
    status: str
    reason: str | None
    attempts: int
    failures: int
    node: str | None
    job_id: str | None
    image: str | None
    runtime: str
    resources: dict[str, Any]
    parents: list[str]
    started_at: float | None
    finished_at: float | None
    wall_time: float | None
    message: str | None
    retries: int = 0  # attempts allowed beyond the first


@dataclass(frozen=True)
class LogRecord:
    id: int
    ts: float
    kind: str
    activity: str | None
    attempt: int | None
    from_status: str | None
    to_status: str | None
    node: str | None
    message: str | None


@dataclass(frozen=True)
class MetricRecord:
    activity: str
    attempt: int
    ts: float
    cpu_percent: float
    rss: int
    vms: int
    read_bytes: int
    write_bytes: int
    threads: int
    processes: int
    # "psutil": a sample while running; "rusage": the exit sample (cpu % since the last
    # sample from the task's whole CPU time; rss = the kernel's peak, 0 where unknown)
    source: str


@dataclass(frozen=True)
class MetricSummary:
    activity: str
    attempt: int
    samples: int  # psutil samples (the exit sample not counted)
    cpu_percent_peak: float | None  # the busiest stretch between two samples (or the exit)
    cpu_percent_mean: float | None  # cpu_time / wall_time when known: time-weighted
    rss_peak: int | None  # the largest of: samples' summed rss, a process's VmHWM, rusage
    rss_mean: float | None
    wall_time: float | None
    cpu_time: float | None
    rusage_peak_rss: int | None  # the kernel's peak at exit (wait4), None where unknown
    rss_peak_source: str | None = None  # "kernel" (its exit figure is known) | "sampled"


@dataclass(frozen=True)
class FailureRecord:
    """One failed attempt; `final` when its activity failed for good, False when a later
    attempt recovered it (or is still trying)."""

    activity: str
    attempt: int
    exit_code: int | None
    reason: str | None
    message: str | None
    stderr_tail: str
    stderr_path: str | None
    final: bool


@dataclass(frozen=True)
class FileRecord:
    activity: str
    attempt: int
    path: str  # non-UTF-8 bytes escaped (`\\xff`); `raw_b64` has the bytes then
    size: int | None
    mtime: float | None
    role: str  # generated | used | pre-existing | invalidated
    hash: str | None
    observed: str = "snapshot"  # trace: seen by syscall tracing; snapshot; cache
    ambiguous: bool = False  # the attribution may be wrong (concurrent tasks, snapshots)
    raw_b64: str | None = None


@contextmanager
def opened(manifest: Manifest | None) -> Iterator[Manifest]:
    if manifest is not None:
        yield manifest
        return
    m = Manifest.open_default()
    try:
        yield m
    finally:
        m.close()


def workflow_of(m: Manifest, wf: WorkflowRef) -> WorkflowRecord:
    return m.get_workflow(wf) if isinstance(wf, int) else m.find_workflow(str(wf))


def epoch(t: TimeRef | None) -> float | None:
    """Seconds since the epoch from a number, a datetime or an ISO-8601 string."""
    if t is None or isinstance(t, (int, float)):
        return None if t is None else float(t)
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.timestamp()


def wall_time(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(end - start, 0.0)
