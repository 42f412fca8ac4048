"""Attempts the local executor did not start itself (a dead dispatcher's, or another start
that won the claim): what their files say, and taking them over. A task still running is
watched again, one only queued is started now, one that ended is judged by its exit code.
"""

from __future__ import annotations

from pathlib import Path

from akoflow.port import JobState, JobStatus, Resources, protocol
from akoflow.worker import leftovers, tracing
from akoflow.worker.fileops import Roots
from akoflow.worker.monitor import TaskProcess

from .local_queue import Queued


def adopt(adir: Path, wdir: Path, pid: int, *, sample_interval: float,
          cgroup: str | None) -> tuple[TaskProcess, Resources] | None:
    """Watch the running task `pid` of attempt `adir`, with the resources it holds; None if
    `pid` is not that task any more."""
    started = (adir / protocol.PID).stat().st_mtime
    info = protocol.read_task(adir)
    task = TaskProcess(adir, wdir, sample_interval=sample_interval, snapshots=False,
                       cgroup_root=cgroup, roots=Roots.of(wdir, info.get("observe") or {}),
                       trace=(adir / tracing.TRACE_FILE).exists())
    if not task.adopt(pid, started):
        return None
    return task, Resources.from_json(info.get("resources"))


def ended(adir: Path, rc: int | None, pid: int | None, cgroup: str | None) -> JobStatus | None:
    """How an attempt not running here ended, from its files (`rc` read before its pid was
    looked at); None when it was prepared and never started. What it left running goes."""
    if pid is not None:  # over (or lost): what it left running goes with it
        leftovers.stop(cgroup, adir, pid, verify=True)
    if rc is not None:
        return JobStatus(JobState.COMPLETED if rc == 0 else JobState.FAILED, exit_code=rc)
    if pid is not None or (adir / protocol.RESULT).exists():
        return JobStatus(JobState.GONE, message="task ended without an exit code")
    if not (adir / protocol.TASK_SH).exists():
        return JobStatus(JobState.MISSING, message="attempt was never prepared")
    return None


def recovered(job: str, adir: Path) -> Queued:
    """An attempt queued by a dispatcher that died before starting it, queued again: task.sh
    claims the attempt atomically, so even a racing start cannot run it twice."""
    info = protocol.read_task(adir)
    return Queued(job=job, attempt_dir=adir, work_dir=Path(info.get("work_dir") or adir),
                  resources=Resources.from_json(info.get("resources")))


def work_dir(adir: Path) -> Path:
    return Path(protocol.read_task(adir).get("work_dir") or adir)
