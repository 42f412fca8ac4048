"""Running a scheduler's clients: the transport, and which refusals are temporary.

Every command an adapter runs is an argv list with a timeout, through a `Transport` (a local
subprocess here; `akoflow.remote` supplies one over SSH). The marker lists say which
failures are worth another try (a controller busy or restarting) and which say the user is
over a queue limit (try later, never a failed activity).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

# Texts with which Slurm, PBS, LSF and SGE clients report a controller that is busy, restarting
# or unreachable: worth another try, never a reason to fail a task.
TRANSIENT_MARKERS = (
    "socket timed out", "resource temporarily unavailable", "unable to contact",
    "slurm_load_jobs error", "connection refused", "transport endpoint", "timed out",
    "try again", "temporarily", "communication", "slurmctld", "pbs_iff", "lsf is down",
    "unable to contact sge_qmaster", "can't contact",
)


# Texts with which schedulers refuse a job because the user is over a limit on what they may
# queue (MaxSubmitJobs and its kin): "try later", never a failed activity, and not worth an
# immediate retry. Slurm's reason codes; PBS's per-user queue limits; LSF's pending-job
# threshold; SGE's max_u_jobs / max_aj_tasks; flux-accounting's active-jobs limit.
LIMIT_MARKERS = (
    "qosmaxsubmitjobperuserlimit", "qosmaxsubmitjobperaccountlimit", "assocmaxsubmitjoblimit",
    "assocgrpsubmitjobslimit", "qosgrpsubmitjobslimit", "job violates accounting/qos policy",
    "maximum number of jobs already in queue", "per-user limit", "pending job threshold",
    "jobs are allowed per user", "exceeds max_aj_tasks", "user has max active jobs",
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


def over_limit(text: str) -> bool:
    """A refusal that says the user has queued as much as an admin limit allows."""
    low = text.lower()
    return any(marker in low for marker in LIMIT_MARKERS)


def is_transient(result: CommandResult) -> bool:
    if result.returncode == 124:
        return True
    text = f"{result.stdout}\n{result.stderr}".lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else ""
