"""IBM Spectrum LSF: state map, argv builders, parsers and executor.

Each attempt is one `bsub` of a script from templates/lsf.sh.j2; status is one `bjobs -a -json`
per poll for the user's jobs, kept to akoflow's by name (jobs cleaned from mbatchd once
CLEAN_PERIOD passed are judged by result.json).

Options go on the bsub command line: bsub reads `#BSUB` lines only from stdin or when the site
sets LSB_BSUB_PARSE_SCRIPT=Y, so the script's `#BSUB` lines are a readable record of the same
options. Arrays are 1-based (`-J "name[1-N]%k"`, $LSB_JOBINDEX); log paths use %J and %I;
`-w` joins `done()`/`ended()` with `&&`/`||`, so "first of several to end" is native here.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from akoflow.port import JobState, JobStatus, Resources, SubmitError, TaskLaunch

from .base import NAME_PREFIX, BatchExecutor
from .batch_script import NAME, Array, Dialect, QueueEntry, Request, submitted

log = logging.getLogger(__name__)

LSF: Final = Dialect(
    name="LSF", where="an LSF option", prefix="lsf.", hint="lsf.<bsub-option>",
    aliases={"partition": "q", "queue": "q", "account": "P", "project": "P",
             "constraint": "select", "features": "select", "reservation": "U"},
    reserved=frozenset({"J", "o", "e", "oo", "eo", "w", "K", "I", "Ip", "Is", "env", "pack",
                        "i", "is", "W", "n", "M", "q", "P"}),
    option=re.compile(r"^[A-Za-z][A-Za-z_]*$"),
    value=re.compile(r"^[A-Za-z0-9_@%+=:,./\[\]()-]+$"))
_check = LSF.check
_JOB_ID = re.compile(r"^\d+(\[\d+\])?$")
_SUBMIT_OUT = re.compile(r"Job <(\d+)> is submitted")
STATUS_FIELDS: Final = ("jobid jobindex job_name stat exit_code exit_reason exec_host "
                        "start_time pend_reason")
NO_JOBS: Final = ("No job found", "No unfinished job found", "is not found")

# Every job state bjobs(1) documents. EXIT is refined by the exit reason (TERM_*).
STATE_MAP: Final[dict[str, JobState]] = {
    "PEND": JobState.PENDING,  # waiting in a queue to be scheduled
    "PSUSP": JobState.PENDING,  # suspended while pending (by its owner or an admin)
    "WAIT": JobState.PENDING,  # chunk job member waiting for its turn to run
    "RUN": JobState.RUNNING,  # running
    "USUSP": JobState.RUNNING,  # suspended while running by owner/admin; keeps its slots
    "SSUSP": JobState.RUNNING,  # suspended by LSF (load, queue window); keeps its slots
    "DONE": JobState.COMPLETED,  # finished with exit code 0
    "EXIT": JobState.FAILED,  # non-zero exit, or killed: see the exit reason
    "UNKWN": JobState.UNKNOWN,  # mbatchd lost contact with the execution host's sbatchd
    "ZOMBI": JobState.NODE_FAIL,  # killed while its host was unreachable: it will not finish
}
# TERM_* exit reasons (lsbatch.h) that say more than "failed".
_TERM_REASONS: Final[dict[str, JobState]] = {
    "TERM_RUNLIMIT": JobState.TIMEOUT, "TERM_DEADLINE": JobState.TIMEOUT,
    "TERM_MEMLIMIT": JobState.OOM, "TERM_SWAP": JobState.OOM,
    "TERM_OWNER": JobState.CANCELLED, "TERM_ADMIN": JobState.CANCELLED,
    "TERM_FORCE_OWNER": JobState.CANCELLED, "TERM_FORCE_ADMIN": JobState.CANCELLED,
    "TERM_PREEMPT": JobState.PREEMPTED, "TERM_HOST": JobState.NODE_FAIL,
    "TERM_UNKNOWN": JobState.FAILED,
}


def map_state(code: str, exit_reason: str = "") -> JobState:
    state = LSF.state(STATE_MAP, code.strip())
    if state is JobState.FAILED:
        term = re.search(r"TERM_[A-Z_]+", exit_reason)
        return _TERM_REASONS.get(term.group(0), state) if term else state
    return state


def format_runlimit(seconds: float) -> str:
    """`-W [hour:]minute`, rounded up to whole minutes (LSF's granularity), at least 1."""
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


def resource_options(resources: Resources, node: str | None = None) -> list[str]:
    """akoflow's resources as bsub options, as an argv fragment."""
    req = Request.of(resources)
    opts = ["-n", str(req.cpus)] + (["-R", "span[hosts=1]"] if req.cpus > 1 else [])
    if req.memory_mib is not None:
        mb = req.memory_mib
        opts += ["-R", f"rusage[mem={mb}MB]", "-M", f"{mb}MB"]
    if req.time_limit is not None:
        opts += ["-W", format_runlimit(req.time_limit)]
    if req.gpus:
        opts += ["-gpu", f"num={req.gpus}"]
    if node:
        opts += ["-m", _check(node, "node")]
    named, features = LSF.choose(resources.extra, feature="select")
    features += LSF.selected(resources)
    for option, value in named.items():  # None: a flag such as -x (exclusive)
        opts += [f"-{option}"] + ([] if value is None else [value])
    if features:
        opts += ["-R", "select[" + " && ".join(features) + "]"]
    return opts


def job_options(launch: TaskLaunch, log_dir: str, array: str | None = None) -> list[str]:
    """Every bsub option of one launch (or of an array `[1-N]%k` named after it)."""
    name = _check(launch.job_name, "job name", NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    stem = f"{name}.%J_%I" if array else f"{name}.%J"
    return ["-J", name + (array or ""), "-o", f"{logs}/{stem}.out", "-e", f"{logs}/{stem}.err",
            *resource_options(launch.resources, launch.node)]


def render_script(launch: TaskLaunch, *, options: Sequence[str], worker_argv: Sequence[str],
                  modules: Sequence[str], env: Mapping[str, str], array_size: int | None,
                  tasks_file: str | None = None, pre_sleep: int = 0) -> str:
    pairs: list[str] = []
    for opt in options:
        if opt.startswith("-") and not opt[1:].isdigit():
            pairs.append(opt)
        else:
            pairs[-1] += " " + shlex.quote(opt)
    return LSF.render("lsf.sh.j2", modules=modules, env=env, worker=worker_argv,
                      name=launch.job_name, directives=pairs, array_size=array_size,
                      tasks_file=tasks_file, pre_sleep=pre_sleep)


def _job_ids(job_ids: Sequence[str]) -> list[str]:
    return LSF.job_ids(job_ids, _JOB_ID, "an LSF job id (`123` or `123[4]`)")


def dependency_after_ok(job_ids: Sequence[str]) -> str:
    """`done(1) && done(2)`: every job (every element of an array) ended with exit 0."""
    return " && ".join(f"done({j})" for j in _job_ids(job_ids))


def dependency_first_to_end(job_ids: Sequence[str]) -> str:
    """`ended(1) || ended(2)`: once any of them ended, however."""
    return " || ".join(f"ended({j})" for j in _job_ids(job_ids))


def array_spec(n: int, throttle: int | None) -> str:
    """The `[1-N]%k` suffix of an array's job name (LSF indices start at 1)."""
    if n < 1 or (throttle is not None and throttle < 1):
        raise ValueError(f"bad array request n={n} throttle={throttle}")
    return f"[1-{n}]" + (f"%{throttle}" if throttle else "")


def begin_at(delay: float, now: float | None = None) -> list[str]:
    """`-b YYYY:MM:DD:HH:MM`, rounded up to the next whole minute (LSF's granularity)."""
    at = (time.time() if now is None else now) + delay
    return ["-b", time.strftime("%Y:%m:%d:%H:%M", time.localtime(math.ceil(at / 60) * 60))]


def submit_argv(script_path: str, options: Sequence[str], *, dependency: str | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    argv = ["bsub", *options, *extra]
    if dependency:
        argv += ["-w", dependency]
    return [*argv, script_path]


def parse_submit(stdout: str) -> str:
    return submitted(stdout, _SUBMIT_OUT, "bsub").group(1)


def status_argv(user: str | None = None) -> list[str]:
    """One bjobs for the user's jobs incl. recently finished ones (-a), array elements one
    record each; names are filtered by `parse_queue`."""
    who = ["-u", _check(user, "user")] if user else []
    return ["bjobs", "-a", *who, "-o", STATUS_FIELDS, "-json"]


def _value(rec: Mapping[str, Any], key: str) -> str:
    text = str(rec.get(key) or "").strip()
    return "" if text == "-" else text


def _start(text: str) -> float | None:
    text = re.sub(r"\s+[A-Z]$", "", text)  # a trailing L/E/X flag on estimated times
    for fmt in ("%b %d %H:%M", "%b %d %H:%M:%S", "%Y/%m/%d-%H:%M:%S"):
        try:
            parsed = time.strptime(text, fmt)
        except ValueError:
            continue
        year = parsed.tm_year if "%Y" in fmt else time.localtime().tm_year
        return time.mktime((year, *parsed[1:6], 0, 0, -1))
    return None


def parse_queue(stdout: str, name_prefix: str) -> list[QueueEntry]:
    """Jobs keyed `123` or `123[4]` whose names start with `name_prefix`, from `status_argv`
    output (an element's name loses its `[4]`)."""
    out: list[QueueEntry] = []
    records = json.loads(stdout).get("RECORDS") or [] if stdout.strip() else []
    for rec in records:
        name, jid, idx = _value(rec, "JOB_NAME"), _value(rec, "JOBID"), _value(rec, "JOBINDEX")
        if not name.startswith(name_prefix) or not jid:
            continue
        key = f"{jid}[{idx}]" if idx not in ("", "0") else jid
        reason = _value(rec, "EXIT_REASON")
        state = map_state(_value(rec, "STAT"), reason)
        code = _value(rec, "EXIT_CODE")
        host = _value(rec, "EXEC_HOST").split(":", 1)[0].split("*")[-1] or None
        out.append(QueueEntry(key, re.sub(r"\[\d+\]$", "", name), JobStatus(
            state, exit_code=int(code) if code.isdigit() and state is JobState.FAILED else
            0 if state is JobState.COMPLETED else None,
            node=host, started_at=_start(_value(rec, "START_TIME")),
            message=reason or _value(rec, "PEND_REASON") or None)))
    return out


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    return ["bkill", *_job_ids(job_ids)]


class LsfExecutor(BatchExecutor):
    kind = "lsf"
    site_keys = frozenset({"user"})
    hosts_dispatcher = True
    script_mode = 0o755  # bsub runs the script as the job's command

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None, pre_sleep: int = 0) -> str:
        return render_script(job, options=job_options(job, str(log_dir)),
                                 worker_argv=worker, modules=self.modules, env=self.env,
                                 array_size=None, pre_sleep=pre_sleep)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        dep = dependency_after_ok(job.after_ok) if job.after_ok else None
        return submit_argv(str(script), job_options(job, str(script.parent)),
                               dependency=dep)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        return [parse_submit(stdout)]

    def queue(self) -> list[QueueEntry]:
        # Jobs cleaned from mbatchd (CLEAN_PERIOD passed) are GONE, judged by result.json.
        try:
            out = self.command(status_argv(self.user))
        except SubmitError as exc:  # LSB_BJOBS_CONSISTENT_EXIT_CODE=Y: no jobs → exit 255
            if exc.transient or not any(m in exc.stderr for m in NO_JOBS):
                raise
            return []
        return parse_queue(out, NAME_PREFIX)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return cancel_argv(job_ids)

    def dispatcher_script(self, launch: TaskLaunch, argv: list[str], log_dir: Path,
                          delay: float) -> str:
        """`-b` has minute granularity, so a spacing under a minute is a `sleep` in the job."""
        return self.job_script(launch, argv, log_dir,
                               pre_sleep=math.ceil(delay) if 0 < delay < 60 else 0)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        """Waits for the first in-flight job to end: `-w` joins conditions with `||`."""
        begin = begin_at(delay) if delay >= 60 else []
        dep = dependency_first_to_end(after_any) if after_any else None
        return submit_argv(str(script), job_options(launch, str(script.parent)),
                               dependency=dep, extra=begin)

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        return True  # a job waited on is already cleaned: bsub refuses the condition
