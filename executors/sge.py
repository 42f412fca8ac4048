"""Son of Grid Engine: the pure pieces (options, argv builders, parsers, script rendering).

Nothing here runs a command; `SgeExecutor` runs these argv lists through a transport. Parsers
are tested on REAL output of the SGE 8.1.9 test cell (tests/executors/captured/sge_*.txt).

Dependencies. SGE has one kind: `-hold_jid a,b` releases a job when ALL of a, b have ended,
whatever their exit (afterany), and silently drops ids it does not know (already ended).
- afterok (`TaskLaunch.after_ok`): every job script records its worker's exit code in
  `<run_dir>/.akoflow-sge/<JOB_ID>[.<TASK_ID>]`; a child is held on its parents with
  `-hold_jid` and, when it starts, its script checks that each parent's file says 0. If one
  does not (failed, killed by h_rt, never ran), the child exits without running the worker;
  the dispatcher has by then failed the parent and SKIPPED the child. A parent that ended
  before the child was queued (the ignored-hold case) is checked the same way.
  (SGE's own "exit 100 keeps dependants held" is not used: it leaves the parent in Eqw.)
- any-of (the dispatcher waking on the FIRST in-flight job to end): see sge_executor.py.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from akoflow.port import JobState, JobStatus, Resources, SpecError, SubmitError, TaskLaunch

from .batch_script import MIB, Dialect, QueueEntry
from .batch_script import local_time as _start

log = logging.getLogger(__name__)

# Scheduler-agnostic `resources.extra` keys → qsub options; `sge.<option>` passes others, except
# those akoflow sets itself or that would break tracking (name, logs, arrays, holds, sync).
SGE: Final = Dialect(
    name="SGE", where="an SGE directive", prefix="sge.", hint="sge.<qsub-option>",
    aliases={"queue": "q", "partition": "q", "project": "P", "account": "P", "features": "l",
             "constraint": "l",
             "pe": "pe"},  # the parallel environment for cpu > 1 (overrides the site's)
    reserved=frozenset({"N", "o", "e", "j", "t", "tc", "hold_jid", "hold_jid_ad", "terse",
                        "b", "sync", "S", "C", "i", "r", "now", "cwd", "wd", "shell", "@",
                        "pe", "clear"}),
    option=re.compile(r"^[A-Za-z][A-Za-z0-9_]*$"),
    value=re.compile(r"^[A-Za-z0-9_@%+=:,./*!&|()\[\]-]+$"))  # e.g. `-l arch=lx*`
_check = SGE.check
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._+-]{0,199}$")  # SGE names may not start with a digit
_JOB_ID = re.compile(r"^\d+(\.\d+)?$")  # `123` or an array task `123.4`
_TERSE = re.compile(r"^(\d+)(?:\.(\d+)-(\d+):(\d+))?$")  # `9` or `9.1-3:1`
STATUS_DIR: Final = ".akoflow-sge"  # under run_dir: one exit-code file per ended job

# Every state string qstat(1) prints: letters d(eletion) E(rror) h(old) r(unning)
# R(estarted) s/S/T (suspended by user / queue / threshold) t(ransferring) q w (queued waiting).
# Unknown strings → UNKNOWN: a misread makes the dispatcher wait, never fail or succeed a task.
STATE_MAP: Final[dict[str, JobState]] = {
    "qw": JobState.PENDING,  # queued, waiting for a slot
    "hqw": JobState.PENDING,  # held: -hold_jid, -h or -a start time not reached
    "hRwq": JobState.PENDING,  # restarted (rescheduled) and held again
    "Rq": JobState.PENDING,  # rescheduled, queued again
    "Rqw": JobState.PENDING,  # rescheduled, waiting
    "hRqw": JobState.PENDING,  # rescheduled and held
    "r": JobState.RUNNING,  # running
    "t": JobState.RUNNING,  # being transferred to its execd: allocated, starting
    "Rr": JobState.RUNNING,  # running again after a restart
    "Rt": JobState.RUNNING,  # restarted, transferring
    "s": JobState.RUNNING,  # suspended by qmod -sj: keeps its slot, will resume
    "ts": JobState.RUNNING,  # suspended while transferring
    "S": JobState.RUNNING,  # its queue is suspended: keeps its slot
    "tS": JobState.RUNNING,  # queue suspended while transferring
    "T": JobState.RUNNING,  # suspended by a queue's suspend_threshold
    "tT": JobState.RUNNING,  # threshold-suspended while transferring
    "Rs": JobState.RUNNING,  # restarted, suspended
    "RS": JobState.RUNNING,  # restarted, queue suspended
    "RT": JobState.RUNNING,  # restarted, threshold-suspended
    "Eqw": JobState.FAILED,  # error state (could not start; job exit 100): never runs by itself
    "Ehqw": JobState.FAILED,  # error state and held
    "EhRqw": JobState.FAILED,  # error state after a restart
    "dr": JobState.CANCELLED,  # qdel'ed while running: being killed
    "dt": JobState.CANCELLED,  # qdel'ed while transferring
    "dRr": JobState.CANCELLED,  # qdel'ed, restarted and running
    "dRt": JobState.CANCELLED,  # qdel'ed, restarted and transferring
    "ds": JobState.CANCELLED,  # qdel'ed while suspended
    "dS": JobState.CANCELLED,  # qdel'ed while its queue is suspended
    "dT": JobState.CANCELLED,  # qdel'ed while threshold-suspended
    "dqw": JobState.CANCELLED,  # qdel'ed while queued
    "dhqw": JobState.CANCELLED,  # qdel'ed while held
    "dEqw": JobState.CANCELLED,  # qdel'ed while in error state
}


def map_state(code: str) -> JobState:
    return SGE.state(STATE_MAP, code.strip())


def format_time(seconds: float) -> str:
    """`H:MM:SS`, whole seconds rounded up, at least 1 s (h_rt's own format)."""
    total = max(1, math.ceil(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


@dataclass(frozen=True)
class SiteOptions:
    """How this cell names its resources (site profile keys, see site-configs/sge.yaml)."""

    parallel_environment: str | None = None  # `-pe <pe> N` for cpu > 1
    memory_resources: tuple[str, ...] = ("h_vmem",)  # `-l <r>=<per-slot MiB>M` each
    gpu_resource: str = "gpu"
    time_limit_grace: float = 30.0  # h_rt = time limit + grace: the worker times out first


def _number(raw: float | str | None, key: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SpecError(f"{key} must be a number, got {raw!r}") from None
    if not value >= 0 or math.isinf(value):
        raise SpecError(f"{key} must be a positive number, got {raw!r}")
    return value or None  # 0: not requested


def resource_options(resources: Resources, site: SiteOptions) -> list[str]:
    """akoflow's resources as qsub options (`-l h_rt=…`, `-pe smp 4`, `-q all.q`, …)."""
    opts: list[str] = []
    limits: list[str] = []
    extra = {str(k): str(v) for k, v in resources.extra.items()}
    slots = math.ceil((_number(resources.cpu, "cpu") or 1) - 1e-9)
    pe = extra.pop("pe", None) or site.parallel_environment
    if slots > 1:
        if not pe:
            raise SpecError(f"cpu {slots} needs an SGE parallel environment; set "
                            "`parallel_environment:` in the site profile (or resource `pe`)")
        opts.append(f"-pe {_check(pe, 'parallel environment')} {slots}")
    memory = _number(resources.memory, "memory")
    if memory:  # SGE memory requests are per slot
        per_slot = max(1, math.ceil(memory / slots / MIB))
        limits += [f"{_check(r, 'memory resource')}={per_slot}M" for r in site.memory_resources]
    limit = _number(resources.time_limit, "time_limit")
    if limit:
        limits.append(f"h_rt={format_time(limit + site.time_limit_grace)}")
    gpus = _number(resources.gpus, "gpus")
    if gpus:
        limits.append(f"{_check(site.gpu_resource, 'gpu resource')}={math.ceil(gpus)}")
    for key, label in sorted(resources.node_selector.items()):
        limits.append(f"{_check(str(key), 'node_selector key')}={_check(str(label), key)}")
    for key, option, value in SGE.extra(extra):
        if key not in SGE.aliases:  # passed through; None: a flag such as -notify
            opts.append(f"-{option}" if value is None else f"-{option} {value}")
        elif option == "l":  # features: boolean complexes, `ssd,bigmem` → ssd=TRUE,bigmem=TRUE
            limits += [f"{_check(f, f'resource {key!r}')}=TRUE" for f in str(value).split(",")
                       if f]
        else:
            opts.append(f"-{option} {_check(str(value), f'resource {key!r}')}")
    if limits:
        opts.insert(0, f"-l {','.join(limits)}")
    return opts


def render_script(
    launch: TaskLaunch, *, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, site: SiteOptions, array_size: int | None = None,
    tasks_file: str | None = None, watchdog: bool = True,
) -> str:
    """The qsub script for one launch, or for an array (`-t 1-N`, on the qsub command line) of
    launches sharing `launch`'s resources; task N runs the attempt dir on line N of
    `tasks_file`, passed as the worker's last argument."""
    name = _check(launch.job_name, "job name", _NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    stem = "$JOB_NAME.$JOB_ID.$TASK_ID" if array_size else "$JOB_NAME.$JOB_ID"
    directives = [f"-N {name}", f"-o {logs}/{stem}.out", f"-e {logs}/{stem}.err",
                  "-S /bin/bash", "-r n", *resource_options(launch.resources, site)]
    if launch.node:
        directives.append(f"-l hostname={_check(launch.node, 'node')}")
    if array_size and not tasks_file:
        raise SpecError("an array script needs the tasks_file its tasks read")
    return SGE.render(
        "sge.sh.j2", modules=modules, env=env, worker=worker_argv, name=name,
        directives=directives, array_size=array_size, tasks_file=shlex.quote(tasks_file or ""),
        watchdog=watchdog,
        attempt_dir=shlex.quote(str(launch.attempt_dir)),
        status_dir=shlex.quote(f"{launch.run_dir}/{STATUS_DIR}"),
        after_ok=_job_ids(launch.after_ok) if launch.after_ok else [],
    )


def _job_ids(job_ids: Sequence[str]) -> list[str]:
    return SGE.job_ids(job_ids, _JOB_ID, "an SGE job id (`123` or `123.4`)")


def hold_list(job_ids: Sequence[str]) -> str:
    """`-hold_jid` value: whole jobs (an array task `9.2` holds on array 9), deduplicated."""
    return ",".join(dict.fromkeys(j.split(".", 1)[0] for j in _job_ids(job_ids)))


def submit_argv(script_path: str, *, hold: Sequence[str] = (), array_size: int | None = None,
                throttle: int | None = None, start_at: float | None = None) -> list[str]:
    """`qsub -terse`: prints only `id` (or `id.1-N:1` for an array), so parsing is exact."""
    argv = ["qsub", "-terse"]
    if hold:
        argv += ["-hold_jid", hold_list(hold)]
    if array_size:
        if array_size < 1 or (throttle is not None and throttle < 1):
            raise ValueError(f"bad array request n={array_size} throttle={throttle}")
        argv += ["-t", f"1-{array_size}"] + (["-tc", str(throttle)] if throttle else [])
    if start_at is not None:
        argv += ["-a", time.strftime("%Y%m%d%H%M.%S", time.localtime(math.ceil(start_at)))]
    return [*argv, script_path]


def parse_submit(stdout: str) -> list[str]:
    """Job ids from `qsub -terse`: `["9"]`, or one `9.N` per task of an array."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    m = _TERSE.match(lines[-1]) if lines else None
    if m is None:
        raise SubmitError(f"qsub printed no job id: {stdout.strip()[:200]!r}",
                          transient=False, stdout=stdout)
    if m.group(2) is None:
        return [m.group(1)]
    first, last, step = (int(m.group(i)) for i in (2, 3, 4))
    return [f"{m.group(1)}.{t}" for t in range(first, last + 1, step)]


def status_argv(user: str | None = None) -> list[str]:
    """One `qstat -xml` for the user's pending, running and error-state jobs."""
    return ["qstat", "-xml", *(["-u", _check(user, "user")] if user else [])]


def expand_tasks(text: str, limit: int = 100_000) -> list[int]:
    """qstat's task list (`1`, `2,3`, `4-10:2`) as numbers; bounded against huge ranges."""
    out: list[int] = []
    for part in text.split(","):
        m = re.match(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$", part.strip())
        if m is None:
            raise ValueError(f"unreadable task range {part!r}")
        first = int(m.group(1))
        last, step = int(m.group(2) or first), int(m.group(3) or 1)
        out += range(first, min(last, first + limit * step) + 1, step)
    return out


def parse_queue(stdout: str, name_prefix: str) -> list[QueueEntry]:
    """`qstat -xml` job entries whose name starts with `name_prefix`, one per array task."""
    try:
        root = ET.fromstring(stdout)
    except ET.ParseError as exc:
        raise SubmitError(f"unreadable qstat -xml output: {exc}", transient=True,
                          stdout=stdout[:2000]) from None
    entries = []
    for el in root.iter("job_list"):
        name = el.findtext("JB_name", "")
        if not name.startswith(name_prefix):
            continue
        job, code = el.findtext("JB_job_number", ""), el.findtext("state", "")
        queue = el.findtext("queue_name", "") or ""
        started = _start(el.findtext("JAT_start_time", "")) if queue else None
        status = JobStatus(map_state(code), node=queue.partition("@")[2] or None,
                           started_at=started, message=f"SGE state {code}")
        tasks = el.findtext("tasks", "") or ""
        try:
            ids = [f"{job}.{t}" for t in expand_tasks(tasks)] if tasks else [job]
        except ValueError:
            log.warning("job %s: unreadable task list %r", job, tasks)
            continue
        entries += [QueueEntry(i, name, status, code) for i in ids]
    return entries


def qacct_argv(job_id: str) -> list[str]:
    job, _, task = _job_ids([job_id])[0].partition(".")
    return ["qacct", "-j", job, *(["-t", task] if task else [])]


def parse_qacct(stdout: str) -> JobStatus | None:
    """The outcome of the last `qacct -j` record, or None when it says nothing certain.

    `failed` 37 (qmaster enforced h_rt, h_cpu or h_vmem) → TIMEOUT; 100 with a signal exit
    (137) is a qdel → CANCELLED; other `failed` codes (could not start) and non-zero exits →
    FAILED. A clean exit 0 returns None: success is judged by the worker's result.json only.
    """
    rec: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("====="):
            rec = {}
        key, _, value = line.partition(" ")
        rec[key] = value.strip()
    failed, status = rec.get("failed", ""), rec.get("exit_status", "").split(" ", 1)[0]
    code = failed.split(":", 1)[0].strip()
    if not code.isdigit() or not status.isdigit():
        return None
    text = f"qacct: failed {failed}, exit_status {rec.get('exit_status')}"
    if code == "37":
        return JobStatus(JobState.TIMEOUT, message=text)
    if code == "100" and int(status) > 128:
        return JobStatus(JobState.CANCELLED, message=text)
    if code != "0" or status != "0":
        return JobStatus(JobState.FAILED, message=text)
    return None


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    """`qdel` with explicit ids; `123.4` deletes one array task, `123` the whole job."""
    return ["qdel", *_job_ids(job_ids)]
