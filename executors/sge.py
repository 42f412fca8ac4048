"""Son of Grid Engine: its state letters, argv builders, parsers and executor.

Each attempt runs `akoflow worker <attempt dir>` in a job from templates/sge.sh.j2; same-shaped
launches go out as one `-t 1-N [-tc K]` array (after a crash it is resubmitted: task.sh refuses
a second start of a claimed attempt). Status is one `qstat -xml` per poll, and `qacct -j` for
jobs that left it with no result.json (sge_qacct.py); an Eqw job is reported FAILED and deleted.
SGE's one dependency, `-hold_jid a,b`, waits for ALL of a, b to end, however. So afterok is the
script's: each job writes its worker's exit code to `<run_dir>/.akoflow-sge/<JOB_ID>[.<TASK>]`
and a held child runs only if each parent's file says 0. Any-of (for the dispatcher):
sge_wake.py. Parsers are tested on REAL output of the SGE 8.1.9 test cell."""

from __future__ import annotations

import logging
import math
import re
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from akoflow.port import (
    JobRef,
    JobState,
    JobStatus,
    Resources,
    SpecError,
    SubmitError,
    TaskLaunch,
)

from .base import NAME_PREFIX, BatchExecutor
from .batch_commands import Transport
from .batch_script import MIB, Array, Dialect, QueueEntry, Request, submitted
from .batch_script import local_time as _start
from .sge_qacct import Qacct
from .sge_wake import DispatcherGroup

log = logging.getLogger(__name__)

# `resources.extra` aliases → qsub options; `sge.<option>` passes others, except those akoflow
# sets itself or that would break tracking (name, logs, arrays, holds, sync).
SGE: Final = Dialect(
    name="SGE", where="an SGE directive", prefix="sge.", hint="sge.<qsub-option>",
    aliases={"queue": "q", "partition": "q", "project": "P", "account": "P", "features": "l",
             "constraint": "l", "pe": "pe"},  # pe: for cpu > 1, overrides the site's
    reserved=frozenset({"N", "o", "e", "j", "t", "tc", "hold_jid", "hold_jid_ad", "terse", "b",
                        "sync", "S", "C", "i", "r", "now", "cwd", "wd", "shell", "@", "pe",
                        "clear"}),
    option=re.compile(r"^[A-Za-z][A-Za-z0-9_]*$"),
    value=re.compile(r"^[A-Za-z0-9_@%+=:,./*!&|()\[\]-]+$"))  # e.g. `-l arch=lx*`
_check = SGE.check
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._+-]{0,199}$")  # SGE names may not start with a digit
_JOB_ID = re.compile(r"^\d+(\.\d+)?$")  # `123` or an array task `123.4`
_TERSE = re.compile(r"^(\d+)(?:\.(\d+)-(\d+):(\d+))?$")  # `9` or `9.1-3:1`
STATUS_DIR: Final = ".akoflow-sge"  # under run_dir: one exit-code file per ended job

# qstat(1) states are letters; the strongest says what the job is: d(eletion), E(rror: could not
# start, never runs by itself), r(unning) t(ransferring) s/S/T (suspended by qmod, queue or
# threshold: keeps its slot), h(old) R(estarted) q(ueued) w(aiting). An unlisted letter makes
# the state UNKNOWN: a misread must make the dispatcher wait, never fail or succeed a task.
STATE_LETTERS: Final[tuple[tuple[str, JobState], ...]] = (
    ("d", JobState.CANCELLED), ("E", JobState.FAILED), ("rtsST", JobState.RUNNING),
    ("hRqw", JobState.PENDING))


def map_state(code: str) -> JobState:
    """The state of its strongest letter; UNKNOWN (logged) for an empty or unknown one."""
    letters = set(code.strip())
    for chars, state in STATE_LETTERS if letters <= set("dErtsSThRqw") else ():
        if letters & set(chars):
            return state
    return SGE.state({}, code.strip())  # logged as unknown


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

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> SiteOptions:
        mem = config.get("memory_resource", "h_vmem")
        return cls(config.get("parallel_environment") or None,
                   tuple(str(m) for m in ([mem] if isinstance(mem, str) else mem or [])),
                   str(config.get("gpu_resource", "gpu")),
                   float(config.get("time_limit_grace", 30)))


def resource_options(resources: Resources, site: SiteOptions) -> list[str]:
    """akoflow's resources as qsub options (`-l h_rt=…`, `-pe smp 4`, `-q all.q`, …)."""
    req, extra = Request.of(resources), dict(resources.extra)
    pe = extra.pop("pe", None) or site.parallel_environment  # "" too: the site's
    named, features = SGE.choose(extra, feature="l")  # boolean complexes
    opts = [f"-{k}" if v is None else f"-{k} {v}" for k, v in named.items()]  # None: -notify
    if req.cpus > 1:
        if not pe:
            raise SpecError(f"cpu {req.cpus} needs an SGE parallel environment; set "
                            "`parallel_environment:` in the site profile (or resource `pe`)")
        opts.insert(0, f"-pe {_check(pe, 'parallel environment')} {req.cpus}")
    limits = []
    if req.memory:  # SGE memory requests are per slot
        per_slot = max(1, math.ceil(req.memory / req.cpus / MIB))
        limits += [f"{_check(r, 'memory resource')}={per_slot}M" for r in site.memory_resources]
    if req.time_limit:
        limits.append(f"h_rt={format_time(req.time_limit + site.time_limit_grace)}")
    if req.gpus:
        limits.append(f"{_check(site.gpu_resource, 'gpu resource')}={req.gpus}")
    limits += [f"{_check(str(k), 'node_selector key')}={_check(str(v), k)}"
               for k, v in sorted(resources.node_selector.items())]
    limits += [f"{f}=TRUE" for f in features]
    return ([f"-l {','.join(limits)}"] if limits else []) + opts


def render_script(
    launch: TaskLaunch, *, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, site: SiteOptions, array_size: int | None = None,
    tasks_file: str | None = None, watchdog: bool = True,
) -> str:
    """The qsub script for one launch, or for an array (`-t 1-N` on the qsub line) sharing its
    resources: task N runs the attempt on line N of `tasks_file` (its last argument)."""
    name = _check(launch.job_name, "job name", _NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    stem = "$JOB_NAME.$JOB_ID.$TASK_ID" if array_size else "$JOB_NAME.$JOB_ID"
    directives = [f"-N {name}", f"-o {logs}/{stem}.out", f"-e {logs}/{stem}.err",
                  "-S /bin/bash", "-r n", *resource_options(launch.resources, site)]
    if launch.node:
        directives.append(f"-l hostname={_check(launch.node, 'node')}")
    return SGE.render(
        "sge.sh.j2", modules=modules, env=env, worker=worker_argv, name=name,
        directives=directives, array_size=array_size, tasks_file=tasks_file, watchdog=watchdog,
        attempt_dir=shlex.quote(str(launch.attempt_dir)),
        status_dir=shlex.quote(f"{launch.run_dir}/{STATUS_DIR}"),
        after_ok=_job_ids(launch.after_ok) if launch.after_ok else [])


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
        argv += ["-t", f"1-{array_size}"] + (["-tc", str(throttle)] if throttle else [])
    if start_at is not None:
        argv += ["-a", time.strftime("%Y%m%d%H%M.%S", time.localtime(math.ceil(start_at)))]
    return [*argv, script_path]


def parse_submit(stdout: str) -> list[str]:
    """Job ids from `qsub -terse`: `["9"]`, or one `9.N` per task of an array."""
    m = submitted(stdout, _TERSE, "qsub")
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


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    """`qdel` with explicit ids; `123.4` deletes one array task, `123` the whole job."""
    return ["qdel", *_job_ids(job_ids)]


class SgeExecutor(BatchExecutor):
    kind = "sge"
    site_keys = frozenset({"array_throttle", "arrays", "dispatcher_max_wait", "qacct", "user",
                           "dispatcher_watchers", "gpu_resource", "max_array_size",
                           "memory_resource", "parallel_environment", "qacct_per_poll",
                           "time_limit_grace"})
    hosts_dispatcher = True
    supports_arrays = True
    exports_own_env = True  # SGE jobs do not inherit the submitter's environment
    default_array_limit = 75000  # SGE's default max_aj_tasks

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.options = SiteOptions.of(config)
        self.accounting = Qacct(config, self.command, _job_ids)
        self.group = DispatcherGroup(config, self.command, self.queue, submit_argv,
                                     parse_submit)

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None, watchdog: bool = True) -> str:
        return render_script(job, worker_argv=worker, modules=self.modules, env=self.env,
                             log_dir=str(log_dir), site=self.options, watchdog=watchdog,
                             array_size=array.size if array else None,
                             tasks_file=str(array.tasks) if array else None)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        return submit_argv(str(script), hold=job.after_ok, array_size=array.size if array
                           else None, throttle=self.throttle if array else None)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        ids = parse_submit(stdout)
        if array is not None and len(ids) != array.size:
            self.cancel([JobRef(ids[0].split(".")[0], "", "", 0.0)])
            raise SubmitError(f"qsub made {len(ids)} array tasks for {array.size} launches",
                              transient=False, stdout=stdout)
        return ids

    def array_limit(self) -> float:
        """The cell's `max_aj_tasks` (0 there means none)."""
        from .pilot_limits import parse_qconf

        return parse_qconf(self.command(["qconf", "-sconf"], retries=1), "max_aj_tasks")

    def queue(self) -> list[QueueEntry]:
        return parse_queue(self.command(status_argv(self.user)), NAME_PREFIX)

    def stuck(self, entry: QueueEntry) -> bool:
        """Error state (Eqw) never clears by itself: the job is failed and deleted."""
        return "E" in entry.state_code and "d" not in entry.state_code

    def accounted(self, gone: Sequence[JobRef]) -> dict[str, JobStatus]:
        return self.accounting.judge(gone)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return cancel_argv(job_ids)

    def cancel_ids(self, job_ids: Sequence[str]) -> None:
        super().cancel_ids(self.group.with_siblings(job_ids))  # with pending group members

    def dispatcher_script(self, launch: TaskLaunch, argv: list[str], log_dir: Path,
                          delay: float) -> str:
        return self.job_script(launch, argv, log_dir, watchdog=False)

    def queue_dispatcher(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                         delay: float) -> str:
        return self.group.submit(launch.job_name, script, after_any, delay)

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        return self.group.jobs(name)
