"""BatchExecutor: what every batch-scheduler adapter shares.

Commands run through a `Transport` (a local subprocess here; SSH later) as argv lists, never
through a shell, with a timeout; errors a scheduler reports as temporary are retried with
backoff, others become permanent `SubmitError`s carrying argv, exit code and output. Status
is one batched query per call. The scheduler-specific pure pieces (argv builders, parsers,
script rendering) live in one module per scheduler.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akoflow.executor import (
    Executor,
    JobRef,
    JobState,
    JobStatus,
    SubmitError,
    TaskLaunch,
    akoflow_argv,
)

log = logging.getLogger(__name__)
Queue = Mapping[str, tuple[str, JobStatus]]  # a queue listing: job id -> (job name, state)

# Texts with which Slurm, PBS, LSF and SGE clients report a controller that is busy, restarting
# or unreachable: worth another try, never a reason to fail a task.
TRANSIENT_MARKERS = (
    "socket timed out", "resource temporarily unavailable", "unable to contact",
    "slurm_load_jobs error", "connection refused", "transport endpoint", "timed out",
    "try again", "temporarily", "communication", "slurmctld", "pbs_iff", "lsf is down",
    "unable to contact sge_qmaster", "can't contact",
)


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class Transport:
    """Runs a command where the scheduler's clients are: this machine by default."""

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            return CommandResult(list(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            return CommandResult(list(argv), 124, _text(exc.stdout),
                                 f"timed out after {timeout:g}s")
        return CommandResult(list(argv), proc.returncode, proc.stdout, proc.stderr)


def is_transient(result: CommandResult) -> bool:
    if result.returncode == 124:
        return True
    text = f"{result.stdout}\n{result.stderr}".lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


class BatchExecutor(Executor):
    """Base of the scheduler adapters: configuration, command running, retries."""

    bounded = False
    site_keys = frozenset({
        "binds", "command_retries", "command_timeout", "container", "container_binary",
        "defaults", "dispatcher", "env", "modules", "python",
    })

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config)
        self.transport = transport or Transport()
        self.retries = int(config.get("command_retries", 3))
        self.timeout = float(config.get("command_timeout", 60))
        self.modules = [str(m) for m in config.get("modules") or []]
        self.env = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
        self.defaults = {str(k): str(v) for k, v in (config.get("defaults") or {}).items()}
        self.python = str(config.get("python") or sys.executable)  # on the compute nodes

    def worker_argv(self, launch: TaskLaunch | None = None) -> list[str]:
        """What a job script execs: `akoflow worker <attempt dir>`; without a launch, for an
        array whose elements append their own attempt dir."""
        argv = [*akoflow_argv(self.python), "worker"]
        return [*argv, str(launch.attempt_dir)] if launch else argv

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """One job per launch, all or nothing: the dispatcher resubmits the whole batch."""
        ids: list[str] = []
        try:
            for ln in launches:
                ids.append(self._submit_one(ln))
        except SubmitError:
            if ids:
                self.cancel([JobRef(j, "", "", 0.0) for j in ids])
            raise
        return ids

    def _submit_one(self, launch: TaskLaunch) -> str:
        raise NotImplementedError(f"{type(self).__name__} submits its own way")

    def cancel_ids(self, argv: Sequence[str]) -> None:
        """Run a cancel command; jobs that already ended leave nothing to stop (idempotent)."""
        try:
            self.command(argv, retries=1)
        except SubmitError as exc:
            log.info("%s: %s", argv[0], exc)

    @property
    def min_poll_interval(self) -> float:
        return float(self.config.get("poll_interval", 2.0))

    def command(self, argv: Sequence[str], *, retries: int | None = None) -> str:
        """stdout of `argv`; transient failures are retried with backoff (1, 2, 4 s ...)."""
        tries = self.retries if retries is None else retries
        delay = 1.0
        for attempt in range(tries + 1):
            result = self.transport.run(argv, self.timeout)
            if result.returncode == 0:
                return result.stdout
            transient = is_transient(result)
            if not transient or attempt == tries:
                raise SubmitError(
                    f"{argv[0]} failed (exit {result.returncode}): "
                    f"{(result.stderr or result.stdout).strip()[:300]}",
                    transient=transient, argv=argv, exit_code=result.returncode,
                    stdout=result.stdout, stderr=result.stderr)
            log.warning("%s failed transiently (%s); retrying in %.0fs", argv[0],
                        result.stderr.strip()[:120], delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def dispatcher_launch(self, name: str, log_dir: Path, *, memory: bool = True,
                          extra: Mapping[str, str] | None = None) -> TaskLaunch:
        """The dispatcher job as a launch, its log directory created: resources from the
        site's `dispatcher:` (1 cpu and 10 minutes unless it says otherwise) under the
        site's defaults; `memory=False` for schedulers that take no memory request."""
        res = dict(self.config.get("dispatcher") or {})
        resources: dict[str, Any] = {"cpu": float(res.get("cpu", 1))}
        if memory:
            resources["memory"] = res.get("memory")
        resources["time_limit"] = res.get("time_limit", 600)
        resources["extra"] = {**{str(k): str(v) for k, v in (res.get("extra") or {}).items()},
                              **(extra or {})}
        log_dir.mkdir(parents=True, exist_ok=True)
        return TaskLaunch(
            workflow_id=0, workflow="", activity_id=0, activity="", attempt=0, job_name=name,
            attempt_dir=log_dir, work_dir=log_dir, run_dir=log_dir, script="",
            resources=self.with_defaults(resources))

    def poll_listing(self, jobs: Sequence[JobRef], listing: Callable[[], Queue],
                     tool: str) -> dict[str, JobStatus]:
        """States from one queue listing (job id → (name, state)). A job missing from it is
        GONE (the dispatcher judges it by its result.json); an unreadable listing leaves
        every state UNKNOWN rather than guessing."""
        try:
            queue = listing()
        except (SubmitError, ValueError) as exc:
            log.warning("%s failed; every job's state is unknown: %s", tool, exc)
            return {ref.job_name: JobStatus(JobState.UNKNOWN, message=str(exc)[:200])
                    for ref in jobs}
        out: dict[str, JobStatus] = {}
        for ref in jobs:
            found = queue.get(ref.job_id or "")
            out[ref.job_name] = found[1] if found else JobStatus(JobState.GONE)
        return out

    @staticmethod
    def ids_by_name(queue: Queue, job_names: Sequence[str]) -> dict[str, str]:
        """The job id of each wanted name found in a queue listing (crash-repair lookups)."""
        wanted = set(job_names)
        return {name: jid for jid, (name, _) in queue.items() if name in wanted}

    def with_defaults(self, resources: Mapping[str, Any]) -> dict[str, Any]:
        """The site's default partition/account/qos/... under the activity's own keys."""
        res = dict(resources)
        res["extra"] = {**self.defaults, **(resources.get("extra") or {})}
        return res


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else ""
