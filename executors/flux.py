"""Flux: the pure pieces (job ids, argv builders, parsers, script rendering) of the Flux adapter.

Nothing here runs a command; `FluxExecutor` runs these argv lists through a transport. Checked
against the flux-core ≥ 0.50 man pages (flux-batch(1), flux-submit(1), flux-jobs(1)) and RFC 19
(F58 job ids), RFC 21 (job states), RFC 23 (durations), RFC 26 (dependencies), RFC 36 (`flux:`
directives). Jobs are stored under their F58 id (`ƒ…`, what Flux prints); argv carries decimal
ids, which every Flux command accepts in any locale.
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

F58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # RFC 19
_DOTHEX = re.compile(r"^[0-9a-fA-F]{4}(\.[0-9a-fA-F]{4}){3}$")
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


# -- job ids ------------------------------------------------------------------------------------

def parse_job_id(text: str) -> int:
    """A Flux job id in F58 (`ƒ…` or ASCII `f…`), decimal, `0x` hex or dothex form."""
    t = text.strip()
    if t[:1] in ("ƒ", "f") and len(t) > 1 and all(c in F58 for c in t[1:]):
        value = 0
        for c in t[1:]:
            value = value * 58 + F58.index(c)
    elif t.isdigit():
        value = int(t)
    elif t.startswith("0x") and len(t) > 2 and all(c in "0123456789abcdefABCDEF" for c in t[2:]):
        value = int(t, 16)
    elif _DOTHEX.match(t):
        value = int(t.replace(".", ""), 16)
    else:
        raise ValueError(f"{text!r} is not a Flux job id")
    if value >= 2**64:
        raise ValueError(f"{text!r} is larger than a 64-bit Flux job id")
    return value


def f58(value: int) -> str:
    """RFC 19 encoding with the `ƒ` prefix Flux itself prints."""
    digits = ""
    while True:
        value, rem = divmod(value, 58)
        digits = F58[rem] + digits
        if value == 0:
            return "ƒ" + digits


def canonical_id(text: str) -> str:
    return f58(parse_job_id(text))


def _decimal(job_ids: Sequence[str]) -> list[str]:
    if not job_ids:
        raise ValueError("no job ids given")
    return [str(parse_job_id(j)) for j in job_ids]


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
    requires = [_check(str(v), f"node_selector {k!r}", _REQUIRES)
                for k, v in sorted(resources.node_selector.items())]
    for key, option, value in FLUX.extra(resources.extra):
        if key not in FLUX.aliases:
            opts[option] = value  # passed through; None: a flag such as --exclusive
        elif option == "requires":
            requires.insert(0, _check(str(value), f"resource {key!r}", _REQUIRES))
        else:
            opts[option] = _check(str(value), f"resource {key!r}")
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
        tasks_file=shlex.quote(tasks_file) if tasks_file else "", parent_uri=parent_uri)


# -- commands -----------------------------------------------------------------------------------

def dependency_options(after_ok: Sequence[str] = (), after_any: Sequence[str] = ()) -> list[str]:
    """One `--dependency` per job: Flux ANDs them all (RFC 26 has no any-of)."""
    return ([f"--dependency=afterok:{j}" for j in _decimal(after_ok)] if after_ok else []) + \
        ([f"--dependency=afterany:{j}" for j in _decimal(after_any)] if after_any else [])


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
        fields = line.strip().split("|", 7)
        if len(fields) != 8:
            if line.strip():
                log.warning("unparsable flux jobs line %r", line)
            continue
        jid, state, result, rc, t_run, nodes, exc, name = fields
        if not name.startswith(name_prefix):
            continue
        try:
            jid, started = canonical_id(jid), float(t_run or 0)
        except ValueError:
            log.warning("unparsable flux jobs line %r", line)
            continue
        ran = started > 0
        entries.append(QueueEntry(jid, name, JobStatus(
            state=map_state(state, result, exc, ran), node=nodes or None,
            exit_code=_exit_code(rc) if ran and state == "INACTIVE" else None,
            started_at=started if ran else None, message=f"exception: {exc}" if exc else None)))
    return entries


def parse_status(stdout: str, name_prefix: str) -> dict[str, JobStatus]:
    return {e.job_id: e.status for e in parse_queue(stdout, name_prefix)}


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    return ["flux", "cancel", *_decimal(job_ids)]
