"""Slurm: the pure pieces (argv builders, parsers, script rendering) of the Slurm adapter.

Nothing here runs a command: `BatchExecutor` runs these argv lists through a transport (local or
SSH), so every parser is a pure function tested on captured output (tests/executors/captured/).
Checked against Slurm 22.05 (squeue/sacct man pages, JOB STATE CODES).
"""

from __future__ import annotations

import logging
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Final

from akoflow.port import JobState, JobStatus, Resources, SpecError, SubmitError, TaskLaunch

from .batch_script import NAME, Dialect, QueueEntry, Request
from .batch_script import local_time as _start

log = logging.getLogger(__name__)

# Scheduler-agnostic `resources.extra` keys → sbatch long options; `slurm.<option>` passes any
# other sbatch option through, except those that would break tracking (name, logs, requeue)
# or that akoflow sets per submission.
SLURM: Final = Dialect(
    name="Slurm", where="a Slurm directive", prefix="slurm.", hint="slurm.<sbatch-option>",
    aliases={"partition": "partition", "queue": "partition", "account": "account",
             "project": "account", "qos": "qos", "constraint": "constraint",
             "features": "constraint", "reservation": "reservation"},
    reserved=frozenset({"job-name", "comment", "output", "error", "requeue", "no-requeue",
                        "array", "dependency", "parsable", "wrap", "wait", "test-only",
                        "export-file", "input"}),
    option=re.compile(r"^[a-z][a-z0-9-]*$"), dash="--",
    value=re.compile(r"^[A-Za-z0-9_@%+=:,./&|*\[\]()-]+$"))  # e.g. begin=now+60, a feature expr
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,:&|*\[\]()-]+$")  # Slurm feature expressions
_check = SLURM.check
_JOB_ID = re.compile(r"^\d+(_\d+)?$")  # `123` or an array element `123_4`
_SUBMIT_OUT = re.compile(r"^(\d+)(;[A-Za-z0-9_.-]+)?$")  # `--parsable`: `id` or `id;cluster`

STATUS_FORMAT: Final = "%i|%j|%T|%r|%N|%S|%M"  # id, name, state, reason, nodes, start, used
NEVER_SATISFIED_REASON: Final = "DependencyNeverSatisfied"

# Every code in squeue(1)/sacct(1) "JOB STATE CODES" (22.05). Unknown codes → UNKNOWN, never an
# end state: a misread must make the dispatcher wait, not fail or succeed a task.
STATE_MAP: Final[dict[str, JobState]] = {
    "PENDING": JobState.PENDING,  # awaiting resource allocation (reason tells why)
    "CONFIGURING": JobState.RUNNING,  # allocated; nodes booting — the allocation is held
    "RUNNING": JobState.RUNNING,  # has an allocation and runs
    "COMPLETING": JobState.RUNNING,  # processes ending; the outcome is not final yet
    "COMPLETED": JobState.COMPLETED,  # every process exited 0
    "FAILED": JobState.FAILED,  # non-zero exit or other failure
    "TIMEOUT": JobState.TIMEOUT,  # killed at its time limit
    "OUT_OF_MEMORY": JobState.OOM,  # killed by the memory cgroup
    "NODE_FAIL": JobState.NODE_FAIL,  # an allocated node failed
    "PREEMPTED": JobState.PREEMPTED,  # terminated by preemption
    "CANCELLED": JobState.CANCELLED,  # scancel by the user or an admin
    "BOOT_FAIL": JobState.NODE_FAIL,  # launch failure, typically hardware: a node problem
    "DEADLINE": JobState.TIMEOUT,  # terminated on its --deadline: a time limit by another name
    "REQUEUED": JobState.PENDING,  # being requeued (admin action): it will run again
    "REQUEUE_FED": JobState.PENDING,  # requeued by a federation: it will run again
    "REQUEUE_HOLD": JobState.PENDING,  # requeued and held until released
    "RESIZING": JobState.RUNNING,  # about to change size; still allocated
    "REVOKED": JobState.UNKNOWN,  # federation sibling withdrawn: another cluster owns the truth
    "SIGNALING": JobState.RUNNING,  # being signalled; still allocated
    "SPECIAL_EXIT": JobState.FAILED,  # requeued in a special held state after a flagged exit
    "STAGE_OUT": JobState.RUNNING,  # burst-buffer stage-out: results not final yet
    "STOPPED": JobState.RUNNING,  # SIGSTOPped but keeps its allocation
    "SUSPENDED": JobState.RUNNING,  # suspended but keeps its allocation; will resume
    "RESV_DEL_HOLD": JobState.PENDING,  # held after its reservation was deleted
}


def map_state(code: str) -> JobState:
    """A Slurm state (`CANCELLED by 0` included) as a JobState; unknown → UNKNOWN, logged."""
    return SLURM.state(STATE_MAP, code.split(" ", 1)[0].rstrip("+"))


def format_time(seconds: float) -> str:
    """`D-HH:MM:SS`, rounded up to whole minutes (Slurm's own granularity), at least 1 minute."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def resource_options(resources: Resources) -> list[str]:
    """akoflow's scheduler-agnostic resources as sbatch long options (`--opt=value`)."""
    req = Request.of(resources)
    opts: dict[str, str | None] = {"cpus-per-task": str(req.cpus)}
    if req.memory_mib is not None:
        opts["mem"] = f"{req.memory_mib}M"
    if req.time_limit is not None:
        opts["time"] = format_time(req.time_limit)
    if req.gpus:
        opts["gres"] = f"gpu:{req.gpus}"
    constraints = [_check(str(v), f"node_selector {k!r}")
                   for k, v in sorted(resources.node_selector.items())]
    for key, option, value in SLURM.extra(resources.extra):
        if key not in SLURM.aliases:
            opts[option] = value  # passed through; None: a flag such as --exclusive
        elif option == "constraint":
            constraints.insert(0, _check(str(value), f"resource {key!r}", _CONSTRAINT))
        else:
            opts[option] = _check(str(value), f"resource {key!r}")
    if constraints:
        opts["constraint"] = "&".join(constraints)
    return [f"--{k}" if v is None else f"--{k}={v}" for k, v in opts.items()]


def render_script(
    launch: TaskLaunch, *, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, array_size: int | None,
    tasks_file: str | None = None, comment: str | None = None,
) -> str:
    """The sbatch script for one launch, or for an array of `array_size` launches that share
    `launch`'s name and resources; array elements read their attempt dir from `tasks_file`
    (line N+1 for element N, up to a tab) and pass it as the worker's last argument.
    `comment` (default: the name) is the job's `--comment`: arrays carry their tasks file."""
    name = _check(launch.job_name, "job name", NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    stem = "%x.%A_%a" if array_size else "%x.%j"
    note = _check(comment, "comment") if comment else name
    directives = [f"--job-name={name}", f"--comment={note}", f"--output={logs}/{stem}.out",
                  f"--error={logs}/{stem}.err", "--no-requeue",
                  *resource_options(launch.resources)]
    if launch.node:
        directives.append(f"--nodelist={_check(launch.node, 'node')}")
    if array_size and not tasks_file:
        raise SpecError("an array script needs the tasks_file its elements read")
    return SLURM.render("slurm.sh.j2", modules=modules, env=env, worker=worker_argv, name=name,
                        directives=directives, array_size=array_size,
                        tasks_file=shlex.quote(tasks_file or ""))


def _job_ids(job_ids: Sequence[str]) -> list[str]:
    return SLURM.job_ids(job_ids, _JOB_ID, "a Slurm job id (`123` or `123_4`)")


def dependency_after_ok(job_ids: Sequence[str]) -> str:
    """Start only after all of these ended with exit code 0: `afterok:1:2_3`."""
    return "afterok:" + ":".join(_job_ids(job_ids))


def dependency_first_to_end(job_ids: Sequence[str]) -> str:
    """Start once any one of these ended, however: `afterany:1?afterany:2` (`?` is OR)."""
    return "?".join(f"afterany:{j}" for j in _job_ids(job_ids))


def array_spec(n: int, throttle: int | None, max_array_size: int) -> list[tuple[str, int]]:
    """`--array` specs for `n` tasks as (spec, offset of its first task), split so no index
    exceeds MaxArraySize-1. Each chunk is a separate sbatch with its own script and tasks file
    (indices restart at 0 in each), so element `<job>_<i>` runs task `offset + i`."""
    if n < 1 or max_array_size < 1 or (throttle is not None and throttle < 1):
        raise ValueError(f"bad array request n={n} throttle={throttle} max={max_array_size}")
    suffix = f"%{throttle}" if throttle else ""
    return [(f"0-{min(max_array_size, n - first) - 1}{suffix}", first)
            for first in range(0, n, max_array_size)]


def submit_argv(script_path: str, *, dependency: str | None = None,
                array: str | None = None) -> list[str]:
    """`sbatch --parsable`: prints only `id` or `id;cluster`, so parsing is exact."""
    argv = ["sbatch", "--parsable"]
    if dependency:
        argv.append(f"--dependency={dependency}")
    if array:
        argv.append(f"--array={array}")
    return [*argv, script_path]


def parse_submit(stdout: str) -> str:
    """The job id from `sbatch --parsable` output; anything else is a permanent error."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    m = _SUBMIT_OUT.match(lines[-1]) if lines else None
    if m is None:
        raise SubmitError(f"sbatch printed no job id: {stdout.strip()[:200]!r}",
                          transient=False, stdout=stdout)
    return m.group(1)


def status_argv(user: str | None = None) -> list[str]:
    """One squeue for all of a user's jobs; `--name` matches exact names only, so the name
    prefix is filtered by `parse_status`. `--states=all` keeps jobs that ended within
    MinJobAge; `--array` lists every element as `123_4`."""
    who = f"--user={_check(user, 'user')}" if user else "--me"
    return ["squeue", "--noheader", "--all", "--array", "--states=all", who,
            f"--format={STATUS_FORMAT}"]


def parse_queue(stdout: str, name_prefix: str) -> list[QueueEntry]:
    """Rows of `status_argv` output whose job name starts with `name_prefix`."""
    entries = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        job_id, _, rest = line.strip().partition("|")
        fields = rest.rsplit("|", 5)  # a name may hold `|`; the other fields cannot
        if len(fields) != 6:
            log.warning("unparsable squeue line %r", line)
            continue
        name, state_code, reason, nodes, start, _used = fields
        if not name.startswith(name_prefix):
            continue
        # %S is the *expected* start while pending, and the cancel time of an element that
        # never ran: only a job that got nodes has really started.
        entries.append(QueueEntry(job_id, name, JobStatus(
            state=map_state(state_code), node=nodes or None,
            started_at=_start(start) if nodes else None,
            message=None if reason in ("None", "") else reason)))
    return entries


def parse_status(stdout: str, name_prefix: str) -> dict[str, JobStatus]:
    """squeue rows keyed by job id; a reason of NEVER_SATISFIED_REASON is on `.message`."""
    return {e.job_id: e.status for e in parse_queue(stdout, name_prefix)}


def comment_argv(user: str | None = None) -> list[str]:
    """Job ids with their `--comment` (array tasks files), for crash repair only."""
    who = f"--user={_check(user, 'user')}" if user else "--me"
    return ["squeue", "--noheader", "--all", "--array", "--states=all", who, "--format=%i|%k"]


def parse_comments(stdout: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        job_id, sep, comment = line.strip().partition("|")
        if sep and comment and comment != "(null)":
            out[job_id] = comment
    return out


def sacct_argv(job_ids: Sequence[str]) -> list[str]:
    """Accounting for jobs gone from squeue (only where slurmdbd runs); `-X`: one row per job."""
    return ["sacct", "--noheader", "--parsable2", "-X",
            "--format=JobID,JobName,State,ExitCode,NodeList,Start", "-j",
            ",".join(_job_ids(job_ids))]


def _exit_code(text: str) -> int | None:
    """`code:signal` → the code, or 128+signal as a shell reports a killed process."""
    code, _, sig = text.partition(":")
    if not (code.isdigit() and sig.isdigit()):
        return None
    return 128 + int(sig) if int(sig) else int(code)


def parse_sacct(stdout: str) -> dict[str, JobStatus]:
    """sacct rows keyed by job id; step rows (`123.batch`, `123.extern`) are skipped."""
    out: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        fields = rest.rsplit("|", 4)  # a name may hold `|`
        if len(fields) != 5 or "." in job_id:
            continue
        _name, state, exit_code, nodes, start = fields
        out[job_id] = JobStatus(
            state=map_state(state), exit_code=_exit_code(exit_code),
            node=None if nodes in ("", "None assigned") else nodes, started_at=_start(start),
            message=state if " " in state else None)
    return out


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    """`scancel` with explicit ids; `123_4` cancels one element, `123` a whole array."""
    return ["scancel", *_job_ids(job_ids)]
