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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from akoflow.executor import Executor, JobRef, SubmitError, TaskLaunch

log = logging.getLogger(__name__)

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

    def worker_argv(self, launch: TaskLaunch) -> list[str]:
        """What a job script execs: `akoflow worker <attempt dir>`."""
        return [self.python, "-m", "akoflow", "worker", str(launch.attempt_dir)]

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

    def with_defaults(self, resources: Mapping[str, Any]) -> dict[str, Any]:
        """The site's default partition/account/qos/... under the activity's own keys."""
        res = dict(resources)
        res["extra"] = {**self.defaults, **(resources.get("extra") or {})}
        return res


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else ""
