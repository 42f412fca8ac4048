"""Flux: state map, argv builders, parsers and executor.

Each attempt is one `flux batch` of a script from templates/flux.sh.j2; status is one
`flux jobs -a` per poll, kept to akoflow's job names (jobs purged from the inactive cache are
judged by result.json). Flux ANDs every `--dependency` (RFC 26 has no any-of): with one job in
flight the next dispatcher waits on `afterany:ID`; with several it starts on a timer
(`--begin-time=+dispatcher_wake`). Job ids: flux_ids.py. Checked against flux-core ≥ 0.50's
man pages and RFC 21 (states), 23 (durations), 26 (dependencies), 36 (`flux:` directives).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from akoflow.port import JobState, JobStatus, Resources, SpecError, SubmitError, TaskLaunch

from .base import NAME_PREFIX, BatchExecutor
from .batch_commands import Transport
from .batch_script import NAME, Array, Dialect, QueueEntry, Request
from .flux_ids import canonical_id, decimal, parse_job_id

log = logging.getLogger(__name__)

# Scheduler-agnostic `resources.extra` keys → Flux submission options. `flux.<option>` passes
# any other flux batch/submit option through (long options only), except those akoflow
# relies on.
FLUX: Final = Dialect(
    name="Flux", where="a Flux directive", prefix="flux.", hint="flux.<option>", dash="--",
    aliases={"queue": "queue", "partition": "queue", "account": "bank", "bank": "bank",
             "constraint": "requires", "features": "requires", "requires": "requires"},
    reserved=frozenset({"job-name", "output", "error", "input", "dependency", "cc", "bcc",
                        "wrap", "dry-run", "quiet", "log", "log-stderr", "wait", "wait-event",
                        "watch", "flags"}),
    option=re.compile(r"^[a-z][a-z0-9-]+$"),
    value=re.compile(r"^[A-Za-z0-9_@%+=:,./&|\[\]()-]+$"))
_check = FLUX.check
# RFC 35 constraint terms joined with & | ( ) and `-` negation; `#` would start a directive
# comment and spaces would split the directive, so neither is accepted.
_REQUIRES = re.compile(r"^[A-Za-z0-9_.,:&|()\[\]-]+$")

# name last: the split from the left stops before it, so nothing in a name can shift a field.
STATUS_FORMAT: Final = ("{id.f58}|{state}|{result}|{returncode}|{t_run}|{nodelist}|"
                        "{exception.type}|{name}")
STATUS_COUNT: Final = 100000  # `flux jobs` lists 1000 jobs unless told otherwise

# RFC 21 states. PRIORITY and NEW are short-lived but visible to a fast enough query.
STATE_MAP: Final[dict[str, JobState]] = {
    "NEW": JobState.PENDING,  # submitted, not yet validated into DEPEND
    "DEPEND": JobState.PENDING,  # waiting on dependencies (afterok, begin-time, ...)
    "PRIORITY": JobState.PENDING,  # being assigned a priority
    "SCHED": JobState.PENDING,  # waiting for resources
    "RUN": JobState.RUNNING,  # has resources; the script runs
    "CLEANUP": JobState.RUNNING,  # ended, epilog/housekeeping running: outcome not final yet
}
# Results of an INACTIVE job (flux-jobs(1) JOB STATUS).
RESULT_MAP: Final[dict[str, JobState]] = {
    "COMPLETED": JobState.COMPLETED,  # every task exited 0
    "FAILED": JobState.FAILED,  # non-zero exit or a fatal exception
    "CANCELED": JobState.CANCELLED,  # flux cancel (or an exception of type cancel)
    "TIMEOUT": JobState.TIMEOUT,  # killed at its time limit
}


# -- options ------------------------------------------------------------------------------------

def format_duration(seconds: float) -> str:
    """RFC 23 Flux Standard Duration, exact: `90s`, `5m`, `2h`, `3d`; at least 1s."""
    secs = max(1, math.ceil(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def resource_options(resources: Resources, *, memory_policy: str = "ignore",
                     node: str | None = None) -> list[str]:
    """akoflow's resources as options valid for both `flux batch` (slots) and `flux submit`
    (tasks): `-n1 -cN -gN` mean one slot/task of N cores/GPUs in both."""
    req = Request.of(resources)
    opts: dict[str, str | None] = {"n": "1", "c": str(req.cpus)}
    if req.gpus:
        opts["g"] = str(req.gpus)
    if req.memory is not None:
        if memory_policy == "refuse":
            raise SpecError("this Flux site enforces memory, but Flux has no per-job memory "
                            "request: drop memoryLimit or set memory_policy: ignore")
        log.debug("Flux has no per-job memory request; memory %s is not sent", req.memory)
    if req.time_limit is not None:
        opts["time-limit"] = format_duration(req.time_limit)
    named, requires = FLUX.choose(resources.extra, feature="requires", pattern=_REQUIRES,
                                  split=False)
    opts.update(named)  # None: a flag such as --exclusive
    requires += FLUX.selected(resources, _REQUIRES)
    if node:
        requires.append(f"host:{_check(node, 'node')}")
    if requires:
        opts["requires"] = "&".join(f"({r})" if "|" in r else r for r in requires)
    return [f"-{k}{v}" if len(k) == 1 else f"--{k}" if v is None else f"--{k}={v}"
            for k, v in opts.items()]


def job_options(launch: TaskLaunch, *, log_dir: str, array: bool,
                memory_policy: str = "ignore") -> list[str]:
    """Name, logs and resources of a launch. Output names use Flux's mustache `{{id}}` (the
    job's F58 id, expanded by the job shell); array elements add `{cc}`, which `flux submit
    --cc` replaces with the element index before submitting each copy."""
    name = _check(launch.job_name, "job name", NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    stem = f"{logs}/{name}.{{{{id}}}}" + (".{cc}" if array else "")
    return [f"--job-name={name}", f"--output={stem}.out", f"--error={stem}.err",
            *resource_options(launch.resources, memory_policy=memory_policy,
                              node=launch.node)]


# -- scripts ------------------------------------------------------------------------------------

def render_script(
    launch: TaskLaunch, *, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, tasks_file: str | None = None,
    parent_uri: bool = False, memory_policy: str = "ignore",
) -> str:
    """The script of one `flux batch` job (options as `# flux:` directives), or with
    `tasks_file` the script of a `flux submit --cc` array, whose options go on the command
    line (`array_argv`) since only flux batch reads directives: element N runs the attempt
    dir on line N+1. `parent_uri` points the script's flux commands at the enclosing instance
    (a dispatcher inside a batch job would otherwise talk to its own sub-instance)."""
    directives = [] if tasks_file else job_options(launch, log_dir=log_dir, array=False,
                                                   memory_policy=memory_policy)
    return FLUX.render(
        "flux.sh.j2", modules=modules, env=env, worker=worker_argv,
        name=_check(launch.job_name, "job name", NAME), directives=directives,
        tasks_file=tasks_file, parent_uri=parent_uri)


# -- commands -----------------------------------------------------------------------------------

def dependency_options(after_ok: Sequence[str] = (), after_any: Sequence[str] = ()) -> list[str]:
    """One `--dependency` per job: Flux ANDs them all (RFC 26 has no any-of)."""
    return ([f"--dependency=afterok:{j}" for j in decimal(after_ok)] if after_ok else []) + \
        ([f"--dependency=afterany:{j}" for j in decimal(after_any)] if after_any else [])


def submit_argv(script_path: str, *, dependencies: Sequence[str] = (),
                begin_after: float = 0.0) -> list[str]:
    """`flux batch SCRIPT`; prints the F58 id of the job."""
    begin = [f"--begin-time=+{format_duration(begin_after)}"] if begin_after > 0 else []
    return ["flux", "batch", *dependencies, *begin, script_path]


def array_argv(script_path: str, n: int, options: Sequence[str],
               dependencies: Sequence[str] = ()) -> list[str]:
    """`flux submit --cc=0-N`: N+1 copies of the script, FLUX_JOB_CC set in each; one id each."""
    if n < 1:
        raise ValueError(f"an array needs at least one element, got {n}")
    return ["flux", "submit", f"--cc=0-{n - 1}", *options, *dependencies, script_path]


def parse_submit(stdout: str) -> list[str]:
    """The ids printed by `flux batch` / `flux submit`, one per line, as canonical F58."""
    try:
        ids = [canonical_id(ln) for ln in stdout.splitlines() if ln.strip()]
    except ValueError:
        ids = []
    if not ids:
        raise SubmitError(f"flux printed no job id: {stdout.strip()[:200]!r}",
                          transient=False, stdout=stdout)
    return ids


def status_argv() -> list[str]:
    """One `flux jobs` for all of this user's jobs, inactive ones included."""
    return ["flux", "jobs", "-a", "--no-header", f"--count={STATUS_COUNT}",
            f"--format={STATUS_FORMAT}"]


def map_state(state: str, result: str, exception: str = "", ran: bool = True) -> JobState:
    """A Flux state/result pair as a JobState; unknown → UNKNOWN, logged, never success."""
    if state == "INACTIVE":
        if result == "FAILED" and exception == "dependency" and not ran:
            return JobState.CANCELLED  # a parent failed (afterok): it never ran
        found = RESULT_MAP.get(result)
    else:
        found = STATE_MAP.get(state)
    if found is None:
        log.warning("unknown Flux job state %r / result %r; treating it as UNKNOWN", state,
                    result)
        return JobState.UNKNOWN
    return found


def _exit_code(text: str) -> int | None:
    """`returncode`: the exit code, or -signal for a killed shell (reported as 128+signal)."""
    try:
        code = int(text)
    except ValueError:
        return None
    return 128 - code if code < 0 else code


def parse_queue(stdout: str, name_prefix: str) -> list[QueueEntry]:
    """Rows of `status_argv` output whose job name starts with `name_prefix`."""
    entries = []
    for line in stdout.splitlines():
        try:
            jid, state, result, rc, t_run, nodes, exc, name = line.strip().split("|", 7)
            jid, started = canonical_id(jid), float(t_run or 0)
        except ValueError:  # too few fields, or an unreadable id or time
            if line.strip():
                log.warning("unparsable flux jobs line %r", line)
            continue
        if not name.startswith(name_prefix):
            continue
        ran = started > 0
        entries.append(QueueEntry(jid, name, JobStatus(
            state=map_state(state, result, exc, ran), node=nodes or None,
            exit_code=_exit_code(rc) if ran and state == "INACTIVE" else None,
            started_at=started if ran else None, message=f"exception: {exc}" if exc else None)))
    return entries


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    return ["flux", "cancel", *decimal(job_ids)]


MEMORY_POLICIES = ("ignore", "refuse")


class FluxExecutor(BatchExecutor):
    kind = "flux"
    site_keys = frozenset({"dispatcher_wake", "memory_policy"})
    hosts_dispatcher = True
    dispatcher_memory = False  # Flux takes no memory request

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.memory_policy = str(config.get("memory_policy") or "ignore")
        if self.memory_policy not in MEMORY_POLICIES:
            raise SpecError(f"site {site}: memory_policy must be one of "
                            f"{', '.join(MEMORY_POLICIES)}, got {self.memory_policy!r}")
        self.wake = float(config.get("dispatcher_wake", 30))

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None, parent_uri: bool = False) -> str:
        return render_script(job, worker_argv=worker, modules=self.modules, env=self.env,
                             log_dir=str(log_dir), memory_policy=self.memory_policy,
                             parent_uri=parent_uri)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        return submit_argv(str(script), dependencies=dependency_options(after_ok=job.after_ok))

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        return parse_submit(stdout)

    def queue(self) -> list[QueueEntry]:
        return parse_queue(self.command(status_argv()), NAME_PREFIX)

    def canonical(self, job_id: str | None) -> str:
        """`ƒ…` for any spelling of a Flux id; "" for none or garbage."""
        try:
            return canonical_id(job_id) if job_id else ""
        except ValueError:
            return ""

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return cancel_argv(job_ids)

    def newest_last(self, entries: list[QueueEntry]) -> list[QueueEntry]:
        return sorted(entries, key=lambda e: parse_job_id(e.job_id))  # ids grow with time

    def dispatcher_script(self, launch: TaskLaunch, argv: list[str], log_dir: Path,
                          delay: float) -> str:
        """Its flux commands must reach the workflow's instance, not the job's own."""
        return self.job_script(launch, argv, log_dir, parent_uri=True)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        ids = [j for j in (self.canonical(a) for a in after_any) if j]
        deps = dependency_options(after_any=ids) if len(ids) == 1 else []
        begin = max(delay, self.wake) if len(ids) > 1 else delay
        return submit_argv(str(script), dependencies=deps, begin_after=begin)

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        """The job it would wait on is already purged: nothing to wait for, start now."""
        waited = [j for j in (self.canonical(a) for a in after_any) if j]
        return len(waited) == 1 and "depend" in f"{exc.stderr}{exc}".lower()

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        """The ids as this process's own FLUX_JOB_ID spells them when they are the same job,
        so the chain never mistakes the running dispatcher for another one."""
        me = os.environ.get("FLUX_JOB_ID") or ""
        mine = self.canonical(me)
        return [(me if mine and jid == mine else jid, state)
                for jid, state in super().dispatcher_jobs(name)]
