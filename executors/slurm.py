"""Slurm: its state map, argv builders, parsers and executor, on the BatchExecutor's hooks.

Each attempt runs `akoflow worker <attempt dir>` in a job from templates/slurm.sh.j2; an array's
tasks file is its `--comment`, so crash repair finds its elements (`lookup`). Status is one
`squeue` per poll, and `sacct` (where slurmdbd runs) for jobs that left it. Argv builders and
parsers are pure, tested on captured output; checked against Slurm 22.05's man pages.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from akoflow.port import (
    JobRef,
    JobState,
    JobStatus,
    Node,
    Resources,
    SubmitError,
    TaskLaunch,
)

from . import slurm_nodes
from .base import ARRAY_TAG, NAME_PREFIX, BatchExecutor
from .batch_commands import Transport
from .batch_script import NAME, Array, Dialect, QueueEntry, Request, rows, submitted
from .batch_script import local_time as _start

log = logging.getLogger(__name__)

# `resources.extra` aliases → sbatch long options; `slurm.<option>` passes any other through,
# except those that would break tracking (name, logs, requeue) or that akoflow sets itself.
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
_MAX_ARRAY = re.compile(r"^MaxArraySize\s*=\s*(\d+)", re.MULTILINE)

STATUS_FORMAT: Final = "%i|%j|%T|%r|%N|%S|%M"  # id, name, state, reason, nodes, start, used

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
    named, constraints = SLURM.choose(resources.extra, feature="constraint",
                                      pattern=_CONSTRAINT, split=False)
    opts.update(named)  # None: a flag such as --exclusive
    constraints += SLURM.selected(resources)
    if constraints:
        opts["constraint"] = "&".join(constraints)
    return [f"--{k}" if v is None else f"--{k}={v}" for k, v in opts.items()]


def render_script(
    launch: TaskLaunch, *, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, array_size: int | None,
    tasks_file: str | None = None, comment: str | None = None,
) -> str:
    """The sbatch script for one launch, or for an array of `array_size` launches sharing its
    name and resources: element N passes the attempt dir on line N+1 of `tasks_file` to the
    worker. `comment` (default: the name) is `--comment`: arrays carry their tasks file."""
    name = _check(launch.job_name, "job name", NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    stem = "%x.%A_%a" if array_size else "%x.%j"
    note = _check(comment, "comment") if comment else name
    directives = [f"--job-name={name}", f"--comment={note}", f"--output={logs}/{stem}.out",
                  f"--error={logs}/{stem}.err", "--no-requeue",
                  *resource_options(launch.resources)]
    if launch.node:
        directives.append(f"--nodelist={_check(launch.node, 'node')}")
    return SLURM.render("slurm.sh.j2", modules=modules, env=env, worker=worker_argv, name=name,
                        directives=directives, array_size=array_size, tasks_file=tasks_file)


def _job_ids(job_ids: Sequence[str]) -> list[str]:
    return SLURM.job_ids(job_ids, _JOB_ID, "a Slurm job id (`123` or `123_4`)")


def dependency_after_ok(job_ids: Sequence[str]) -> str:
    """Start only after all of these ended with exit code 0: `afterok:1:2_3`."""
    return "afterok:" + ":".join(_job_ids(job_ids))


def dependency_first_to_end(job_ids: Sequence[str]) -> str:
    """Start once any one of these ended, however: `afterany:1?afterany:2` (`?` is OR)."""
    return "?".join(f"afterany:{j}" for j in _job_ids(job_ids))


def array_spec(n: int, throttle: int | None) -> str:
    """`--array` of one chunk of `n` elements, 0-based (the base keeps chunks within
    MaxArraySize, each its own sbatch and tasks file)."""
    if n < 1 or (throttle is not None and throttle < 1):
        raise ValueError(f"bad array request n={n} throttle={throttle}")
    return f"0-{n - 1}" + (f"%{throttle}" if throttle else "")


def submit_argv(script_path: str, *, dependency: str | None = None, array: str | None = None,
                begin: float = 0.0) -> list[str]:
    """`sbatch --parsable`: prints only `id` or `id;cluster`, so parsing is exact."""
    return ["sbatch", "--parsable", *([f"--dependency={dependency}"] if dependency else []),
            *([f"--array={array}"] if array else []),
            *([f"--begin=now+{max(1, math.ceil(begin))}"] if begin > 0 else []), script_path]


def parse_submit(stdout: str) -> str:
    """The job id from `sbatch --parsable` output; anything else is a permanent error."""
    return submitted(stdout, _SUBMIT_OUT, "sbatch").group(1)


def status_argv(user: str | None = None, form: str = STATUS_FORMAT) -> list[str]:
    """One squeue for all of a user's jobs (`--name` matches exact names only, so the name
    prefix is filtered by `parse_queue`). `--states=all` keeps jobs that ended within
    MinJobAge; `--array` lists every element as `123_4`. `%i|%k`: ids and `--comment`s."""
    who = f"--user={_check(user, 'user')}" if user else "--me"
    return ["squeue", "--noheader", "--all", "--array", "--states=all", who, f"--format={form}"]


def parse_queue(stdout: str, name_prefix: str) -> list[QueueEntry]:
    """Rows of `status_argv` output whose job name starts with `name_prefix`. %S is the
    *expected* start while pending, and the cancel time of an element that never ran: only
    a job that got nodes has really started."""
    return [QueueEntry(job_id, name, JobStatus(
        state=map_state(code), node=nodes or None, started_at=_start(start) if nodes else None,
        message=None if reason in ("None", "") else reason))
        for job_id, name, (code, reason, nodes, start, _used) in rows(stdout, 5, "squeue")
        if name.startswith(name_prefix)]


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
    return {job_id: JobStatus(
        state=map_state(state), exit_code=_exit_code(code), started_at=_start(start),
        node=None if nodes in ("", "None assigned") else nodes,
        message=state if " " in state else None)
        for job_id, _name, (state, code, nodes, start) in rows(stdout, 4, "sacct")
        if "." not in job_id}


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    """`scancel` with explicit ids; `123_4` cancels one element, `123` a whole array."""
    return ["scancel", *_job_ids(job_ids)]


class SlurmExecutor(BatchExecutor):
    kind = "slurm"
    site_keys = frozenset({"accounting", "array_throttle", "arrays", "max_array_size", "user"})
    hosts_dispatcher = True
    chains_after_ok = True
    supports_arrays = True
    queue_reuse = 10.0  # one squeue per cycle answers the chain's `dispatcher_jobs` too
    default_array_limit = 1001  # Slurm's own default MaxArraySize

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        # sacct (where slurmdbd runs); `auto`: the first answer says whether accounting is on
        acct = str(config.get("accounting", "auto")).lower()
        self._sacct: bool | None = None if acct == "auto" else acct in ("yes", "true", "on")
        self._sacct_failed = 0  # `auto` gives up after 3 failures in a row, whatever they say

    def shape(self, launch: TaskLaunch) -> object:
        """sbatch's own options (MiB, whole minutes): what one array script can serve."""
        return resource_options(self.with_defaults(launch.resources))

    def array_limit(self) -> float:
        m = _MAX_ARRAY.search(self.command(["scontrol", "show", "config"], retries=1))
        return int(m.group(1)) if m else self.default_array_limit

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None) -> str:
        tasks = str(array.tasks) if array else None
        return render_script(job, worker_argv=worker, modules=self.modules, env=self.env,
                             log_dir=str(log_dir), array_size=array.size if array else None,
                             tasks_file=tasks, comment=tasks)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        return submit_argv(str(script),
                           dependency=dependency_after_ok(job.after_ok) if job.after_ok else None,
                           array=array_spec(array.size, self.throttle) if array else None)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        job = parse_submit(stdout)
        return [f"{job}_{i}" for i in range(array.size)] if array else [job]

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        dependency = dependency_first_to_end(after_any) if after_any else None
        return submit_argv(str(script), dependency=dependency, begin=delay)

    def queue(self) -> list[QueueEntry]:
        return parse_queue(self.command(status_argv(self.user)), NAME_PREFIX)

    def accounted(self, gone: Sequence[JobRef]) -> dict[str, JobStatus]:
        """Gone from squeue (MinJobAge passed): sacct's word, in one bounded query."""
        job_ids = [r.job_id for r in gone if r.job_id][:1000]
        if not job_ids or self._sacct is False:
            return {}
        try:
            found = parse_sacct(self.command(sacct_argv(job_ids), retries=0))
        except SubmitError as exc:  # accounting is optional: never fail a poll over it
            self._sacct_failed += 1
            if self._sacct is None and (not exc.transient or self._sacct_failed >= 3):
                self._sacct = False  # `auto`: no slurmdbd here, or none that answers
            log.info("sacct failed (jobs that left squeue are judged by their result "
                     "files): %s", exc)
            return {}
        self._sacct, self._sacct_failed = True, 0
        return found

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return cancel_argv(job_ids)

    def array_elements(self, entries: list[QueueEntry]) -> dict[str, tuple[str, int]]:
        """Each array's tasks file is its `--comment`; element `123_4` is on line 4."""
        listing = self.command(status_argv(self.user, "%i|%k"))
        notes = {job_id: comment for job_id, comment, _ in rows(listing, 0, "squeue")}
        return {e.job_id: (notes.get(e.job_id, ""), int(e.job_id.partition("_")[2]))
                for e in entries if ARRAY_TAG in e.name and e.job_id.partition("_")[2].isdigit()}

    def nodes(self) -> list[Node]:
        """One `scontrol show node --oneliner`; free room as Slurm would allocate it."""
        return slurm_nodes.parse_scontrol(self.command(slurm_nodes.scontrol_argv(), retries=1))
