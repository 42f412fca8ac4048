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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jinja2

from akoflow.executor import JobState, JobStatus, SpecError, SubmitError, TaskLaunch

log = logging.getLogger(__name__)

# Scheduler-agnostic `resources.extra` keys → sbatch long options. `slurm.<option>` passes any
# other sbatch option through, except those akoflow itself relies on (_RESERVED).
_KEY_ALIASES: Final[dict[str, str]] = {
    "partition": "partition", "queue": "partition",
    "account": "account", "project": "account",
    "qos": "qos",
    "constraint": "constraint", "features": "constraint",
    "reservation": "reservation",
}
_PASSTHROUGH = "slurm."
# Options that would break tracking (name, logs, requeue) or that akoflow sets per submission.
_RESERVED: Final = frozenset({
    "job-name", "comment", "output", "error", "requeue", "no-requeue", "array", "dependency",
    "parsable", "wrap", "wait", "test-only", "export-file", "input",
})
_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")  # exactly what shlex.quote leaves bare
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,:&|*\[\]()-]+$")  # Slurm feature expressions
_OPTION = re.compile(r"^[a-z][a-z0-9-]*$")
_PASS_VALUE = re.compile(r"^[A-Za-z0-9_@%+=:,./&|*\[\]()-]+$")  # e.g. begin=now+60, a feature expr
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
    word = code.split(" ", 1)[0].rstrip("+")
    state = STATE_MAP.get(word)
    if state is None:
        log.warning("unknown Slurm job state %r; treating it as UNKNOWN", code)
        return JobState.UNKNOWN
    return state


def _check(value: str, what: str, pattern: re.Pattern[str] = _SAFE) -> str:
    """Refuse values that could break out of a `#SBATCH` line or need shell quoting there."""
    if not value or not pattern.match(value):
        raise SpecError(f"{what} {value!r} has characters not allowed in a Slurm directive")
    return value


def _mib(nbytes: int) -> int:
    return max(1, math.ceil(nbytes / 1024**2))


def format_time(seconds: float) -> str:
    """`D-HH:MM:SS`, rounded up to whole minutes (Slurm's own granularity), at least 1 minute."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def resource_options(resources: Mapping[str, Any]) -> list[str]:
    """akoflow's scheduler-agnostic resources as sbatch long options (`--opt=value`)."""
    opts: dict[str, str | None] = {}
    cpu = resources.get("cpu")
    if cpu is not None:
        if float(cpu) <= 0:
            raise SpecError(f"cpu must be positive, got {cpu!r}")
        opts["cpus-per-task"] = str(math.ceil(float(cpu) - 1e-9))
    if resources.get("memory"):
        if int(resources["memory"]) < 0:
            raise SpecError(f"memory must be positive, got {resources['memory']!r}")
        opts["mem"] = f"{_mib(int(resources['memory']))}M"
    if resources.get("time_limit"):
        if float(resources["time_limit"]) < 0:
            raise SpecError(f"time_limit must be positive, got {resources['time_limit']!r}")
        opts["time"] = format_time(float(resources["time_limit"]))
    if resources.get("gpus"):
        opts["gres"] = f"gpu:{int(resources['gpus'])}"
    constraints = [_check(str(v), f"node_selector {k!r}")
                   for k, v in sorted((resources.get("node_selector") or {}).items())]
    for key, raw in (resources.get("extra") or {}).items():
        value = str(raw)
        if key in _KEY_ALIASES:
            option = _KEY_ALIASES[key]
            if option == "constraint":
                constraints.insert(0, _check(value, f"resource {key!r}", _CONSTRAINT))
            else:
                opts[option] = _check(value, f"resource {key!r}")
        elif key.startswith(_PASSTHROUGH) and _OPTION.match(key[len(_PASSTHROUGH):]):
            option = key[len(_PASSTHROUGH):]
            if option in _RESERVED:
                raise SpecError(f"resource {key!r}: akoflow sets --{option} itself")
            if value.lower() in ("true", "yes", ""):
                opts[option] = None  # a flag such as --exclusive
            elif value.lower() not in ("false", "no"):
                opts[option] = _check(value, f"resource {key!r}", _PASS_VALUE)
        else:
            valid = ", ".join([*sorted(_KEY_ALIASES), "slurm.<sbatch-option>"])
            raise SpecError(f"unknown Slurm resource key {key!r}; valid keys: {valid}")
    if constraints:
        opts["constraint"] = "&".join(constraints)
    return [f"--{k}" if v is None else f"--{k}={v}" for k, v in opts.items()]


# `akoflow.templates` is the top-level templates/ directory (package-dir mapping), so load it as
# a package of its own: PackageLoader("akoflow", "templates") would look for akoflow/templates/.
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("akoflow.templates", "."), autoescape=False,
    undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
)


def render_script(
    launch: TaskLaunch, *, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, array_size: int | None,
    tasks_file: str | None = None, comment: str | None = None,
) -> str:
    """The sbatch script for one launch, or for an array of `array_size` launches that share
    `launch`'s name and resources; array elements read their attempt dir from `tasks_file`
    (line N+1 for element N, up to a tab) and pass it as the worker's last argument.
    `comment` (default: the name) is the job's `--comment`: arrays carry their tasks file."""
    name = _check(launch.job_name, "job name", re.compile(r"^[A-Za-z0-9._-]{1,200}$"))
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
    for key in env:
        if not _ENV_NAME.match(key):
            raise SpecError(f"environment variable name {key!r} is not valid in a shell")
    return _ENV.get_template("slurm.sh.j2").render(
        name=name, directives=directives,
        modules=[shlex.quote(_check(m, "module")) for m in modules],
        env=[(k, shlex.quote(v)) for k, v in env.items()],
        worker=shlex.join(worker_argv), array_size=array_size,
        tasks_file=shlex.quote(tasks_file or ""),
    )


def _job_ids(job_ids: Sequence[str]) -> list[str]:
    if not job_ids:
        raise ValueError("no job ids given")
    for jid in job_ids:
        if not _JOB_ID.match(jid):
            raise ValueError(f"{jid!r} is not a Slurm job id (`123` or `123_4`)")
    return list(job_ids)


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


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    name: str
    status: JobStatus


def _start(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None  # N/A, Unknown, None


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
