"""PBS (PBS Pro / OpenPBS and Torque): state map, argv builders, parsers and executor.

Each attempt is one `qsub` of a script from templates/pbs.sh.j2; status is one `qstat` per poll,
kept to akoflow's jobs by name (a job gone from it is judged by result.json). The site's
`flavor:` says which PBS: they differ in arrays (Pro `-J 1-N%k`, Torque `-t 1-N%k`), resources
(Pro `select=1:ncpus=..`, Torque `nodes=1:ppn=..`), status (Pro `qstat -f -F json`, Torque
`qstat -x` XML) and exit codes. PBS has no "any of" dependency: the dispatcher waits for the
earliest-submitted job, the one most likely to end first (site-configs/pbs.yaml)."""

from __future__ import annotations

import json
import logging
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from akoflow.port import JobState, JobStatus, Node, Resources, SpecError, SubmitError, TaskLaunch

from . import pbs_nodes
from .base import NAME_PREFIX, BatchExecutor
from .batch_commands import Transport
from .batch_script import NAME, Array, Dialect, QueueEntry, Request, submitted

log = logging.getLogger(__name__)
FLAVORS: Final = ("pro", "torque")

# Scheduler-agnostic `resources.extra` keys → what they become; `pbs.<letter>` passes any other
# qsub option through, except name, logs, arrays, rerun, env, depend and shell.
PBS: Final = Dialect(
    name="PBS", where="a PBS directive", prefix="pbs.", hint="pbs.<qsub-option-letter>",
    aliases={"partition": "queue", "queue": "queue", "account": "account",
             "project": "account", "qos": "qos", "constraint": "features",
             "features": "features"},
    reserved=frozenset("NoejJtrVWSI"), option=re.compile(r"^[A-Za-z]$"), flags=False,
    value=re.compile(r"^[A-Za-z0-9_@%+=:,./\[\]()-]+$"))
_check = PBS.check
_JOB_ID = re.compile(r"^\d+(\[\d*\])?(\.[A-Za-z0-9._-]+)?$")  # 12.srv, 12[].srv, 12[3].srv

# Every job state qstat(1B) documents. Ended codes (F, X, C) are judged by Exit_status.
STATE_MAP: Final[dict[str, JobState]] = {
    "Q": JobState.PENDING,  # queued, eligible to run or be routed
    "H": JobState.PENDING,  # held (user/system hold, or waiting on a dependency)
    "W": JobState.PENDING,  # waiting for its execution time (-a) or a stage-in
    "T": JobState.PENDING,  # in transit to a new location
    "R": JobState.RUNNING,  # running
    "E": JobState.RUNNING,  # exiting after having run: the outcome is not final yet
    "S": JobState.RUNNING,  # suspended by the server; keeps its allocation, will resume
    "U": JobState.RUNNING,  # suspended because the workstation became busy; will resume
    "B": JobState.RUNNING,  # array job: at least one subjob has started
    "M": JobState.UNKNOWN,  # moved to another server: that server owns the truth
    "X": JobState.COMPLETED,  # subjob finished (or expired): judged by Exit_status
    "F": JobState.COMPLETED,  # finished (history, `qstat -x`): judged by Exit_status
    "C": JobState.COMPLETED,  # Torque: completed: judged by exit_status
}
_ENDED = frozenset("XFC")
# Negative Exit_status: the job was killed by PBS (pbs_job.h JOB_EXEC_*) — differs by flavor.
_WALLTIME = {"pro": -29, "torque": -11}  # JOB_EXEC_KILL_WALLTIME / JOB_EXEC_OVERLIMIT_WT
_MEMORY = {"pro": (-26, -27), "torque": (-10,)}  # KILL_VMEM, KILL_MEM / OVERLIMIT_MEM


def flavor_of(config: Mapping[str, Any]) -> str:
    flavor = str(config.get("flavor", "pro"))
    if flavor not in FLAVORS:
        raise SpecError(f"PBS flavor {flavor!r} is not one of: {', '.join(FLAVORS)}")
    return flavor


def map_state(code: str) -> JobState:
    return PBS.state(STATE_MAP, code.strip())


def exit_outcome(code: int | None, flavor: str) -> tuple[JobState, int | None, str | None]:
    """An ended job's state, shell-style exit code and message from its Exit_status."""
    if code is None:
        return JobState.CANCELLED, None, "ended without running (deleted)"
    if code == 0:
        return JobState.COMPLETED, 0, None
    if code == _WALLTIME[flavor]:
        return JobState.TIMEOUT, None, "killed at its walltime"
    if code in _MEMORY[flavor]:
        return JobState.OOM, None, "killed over its memory limit"
    if code < 0:
        return JobState.NODE_FAIL, None, f"PBS could not run the job (Exit_status {code})"
    if code > 256:
        return JobState.FAILED, 128 + code - 256, f"killed by signal {code - 256}"
    return JobState.FAILED, code, None


def format_walltime(seconds: float) -> str:
    total = max(1, math.ceil(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def resource_options(resources: Resources, flavor: str,
                     node: str | None = None) -> list[str]:
    """akoflow's resources as qsub options (`-l ...`, `-q ...`, `-A ...`)."""
    req = Request.of(resources)
    ncpus, mem, gpus = req.cpus, req.memory_mib, req.gpus
    named, features = PBS.choose(resources.extra, feature="features")
    features += PBS.selected(resources)
    qos = named.pop("qos", None)
    if qos and flavor == "pro":
        raise SpecError("resource 'qos': PBS Pro has no QOS; use a queue instead")
    extra_l = [f"qos={qos}"] if qos else []
    opts = [x for k, v in named.items()  # passed through (letters) or -q/-A, checked
            for x in ({"queue": "-q", "account": "-A"}.get(k, f"-{k}"), str(v))]
    if flavor == "pro":
        chunk = [f"ncpus={ncpus}"]
        if mem:
            chunk.append(f"mem={mem}mb")
        if gpus:
            chunk.append(f"ngpus={gpus}")
        if node:
            chunk.append(f"host={_check(node, 'node')}")
        chunk += [f if "=" in f else f"{f}=True" for f in features]
        limits = ["select=1:" + ":".join(chunk)]
    else:
        nodes = [_check(node, "node") if node else "1", f"ppn={ncpus}"]
        if gpus:
            nodes.append(f"gpus={gpus}")
        limits = ["nodes=" + ":".join(nodes + features)]
        if mem:
            limits.append(f"mem={mem}mb")
    if req.time_limit:
        limits.append(f"walltime={format_walltime(req.time_limit)}")
    return [*(x for lim in [*limits, *extra_l] for x in ("-l", lim)), *opts]


def render_script(
    launch: TaskLaunch, *, flavor: str, worker_argv: Sequence[str], modules: Sequence[str],
    env: Mapping[str, str], log_dir: str, array_size: int | None,
    tasks_file: str | None = None, pre_sleep: int = 0,
) -> str:
    """The qsub script for one launch, or for an array of `array_size` elements (1-based
    indices; element N runs the attempt on line N of `tasks_file`)."""
    name = _check(launch.job_name, "job name", NAME)
    logs = _check(log_dir.rstrip("/") or "/", "log_dir")
    if not array_size:
        out, err = f"{logs}/{name}.out", f"{logs}/{name}.err"
    elif flavor == "pro":  # Pro substitutes the subjob index into the path
        out, err = f"{logs}/{name}.^array_index^.out", f"{logs}/{name}.^array_index^.err"
    else:  # Torque appends `-<index>` to each element's path
        out, err = f"{logs}/{name}.out", f"{logs}/{name}.err"
    opts = ["-N", name, "-o", out, "-e", err, "-r", "n",
            *resource_options(launch.resources, flavor, launch.node)]
    # -V: the job gets qsub's environment (AKOFLOW_HOME, PATH), as sbatch does by default
    directives = [f"{a} {b}" for a, b in zip(opts[0::2], opts[1::2])] + ["-V"]
    return PBS.render(
        "pbs.sh.j2", modules=modules, env=env, worker=worker_argv, name=name, flavor=flavor,
        directives=directives, array_size=array_size, tasks_file=tasks_file,
        index_var="PBS_ARRAY_INDEX" if flavor == "pro" else "PBS_ARRAYID", pre_sleep=pre_sleep)


def _job_ids(job_ids: Sequence[str]) -> list[str]:
    return PBS.job_ids(job_ids, _JOB_ID, "a PBS job id (`12.server`, `12[].server`)")


def dependency_after_ok(job_ids: Sequence[str], flavor: str) -> str:
    """`depend=afterok:a:b`; on Torque an array parent needs `afterokarray`."""
    ids = _job_ids(job_ids)
    plain = [j for j in ids if flavor == "pro" or "[]" not in j]
    arrays = [j for j in ids if j not in plain]
    parts = ([f"afterok:{':'.join(plain)}"] if plain else []) + \
        ([f"afterokarray:{':'.join(arrays)}"] if arrays else [])
    return "depend=" + ",".join(parts)


def _sequence(job_id: str) -> int:
    return int(re.match(r"^\d+", job_id).group(0))  # type: ignore[union-attr]


def dependency_first_to_end(job_ids: Sequence[str]) -> str:
    """PBS has no OR of dependencies: wait for the earliest-submitted job to end."""
    return f"depend=afterany:{min(_job_ids(job_ids), key=_sequence)}"


def array_spec(n: int, throttle: int | None, flavor: str) -> list[str]:
    """`-J 1-N%k` (Pro; needs 2+ subjobs) or `-t 1-N%k` (Torque), 1-based."""
    if n < 1 or (throttle is not None and throttle < 1):
        raise ValueError(f"bad array request n={n} throttle={throttle}")
    if flavor == "pro" and n < 2:
        raise ValueError("a PBS Pro array needs at least two subjobs; submit one job instead")
    return ["-J" if flavor == "pro" else "-t", f"1-{n}" + (f"%{throttle}" if throttle else "")]


def begin_at(delay: float, now: float | None = None) -> list[str]:
    """`-a [[CC]YYMMDD]hhmm.SS`: not eligible before `delay` seconds from now."""
    when = time.localtime((time.time() if now is None else now) + max(1, math.ceil(delay)))
    return ["-a", time.strftime("%Y%m%d%H%M.%S", when)]


def submit_argv(script_path: str, *, dependency: str | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    argv = ["qsub", *extra]
    if dependency:
        argv += ["-W", dependency]
    return [*argv, script_path]


def parse_submit(stdout: str) -> str:
    return submitted(stdout, _JOB_ID, "qsub").group(0)


def status_argv(flavor: str) -> list[str]:
    """One query for every job incl. finished ones (-x) and array subjobs (-t)."""
    return ["qstat", "-f", "-F", "json", "-x", "-t"] if flavor == "pro" else \
        ["qstat", "-x", "-t"]


def _status(attrs: Mapping[str, Any], flavor: str) -> JobStatus:
    code = str(attrs.get("job_state", ""))
    host = str(attrs.get("exec_host") or "").split("/", 1)[0].split("+", 1)[0] or None
    started = attrs.get("start_time") or attrs.get("stime")
    start: float | None = None
    if started is not None:
        try:
            start = float(started)
        except ValueError:
            try:
                start = time.mktime(time.strptime(str(started), "%a %b %d %H:%M:%S %Y"))
            except ValueError:
                start = None
    if code in _ENDED:
        raw = attrs.get("Exit_status", attrs.get("exit_status"))
        state, exit_code, msg = exit_outcome(None if raw is None else int(raw), flavor)
        return JobStatus(state, exit_code=exit_code, node=host, started_at=start,
                         message=msg or attrs.get("comment"))
    return JobStatus(map_state(code), node=host, started_at=start,
                     message=attrs.get("comment"))


def parse_queue(stdout: str, flavor: str, name_prefix: str) -> list[QueueEntry]:
    """Jobs whose name starts with `name_prefix`, from `status_argv` output."""
    jobs: dict[str, Mapping[str, Any]] = {}
    if flavor == "pro":
        jobs = json.loads(stdout).get("Jobs") or {} if stdout.strip() else {}
    elif stdout.strip():
        for el in ET.fromstring(stdout).iter("Job"):
            jobs[el.findtext("Job_Id") or ""] = {c.tag: c.text or "" for c in el}
    return [QueueEntry(jid, str(a.get("Job_Name")), _status(a, flavor))
            for jid, a in jobs.items() if str(a.get("Job_Name", "")).startswith(name_prefix)]


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    return ["qdel", *_job_ids(job_ids)]


class PbsExecutor(BatchExecutor):
    kind = "pbs"
    site_keys = frozenset({"flavor"})
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.flavor = flavor_of(config)

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None) -> str:
        return render_script(job, flavor=self.flavor, worker_argv=worker, modules=self.modules,
                             env=self.env, log_dir=str(log_dir), array_size=None)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        dep = dependency_after_ok(job.after_ok, self.flavor) if job.after_ok else None
        return submit_argv(str(script), dependency=dep)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        return [parse_submit(stdout)]

    def queue(self) -> list[QueueEntry]:
        return parse_queue(self.command(status_argv(self.flavor)), self.flavor, NAME_PREFIX)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return cancel_argv(job_ids)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        """PBS cannot wait for the first of several jobs: it waits for the earliest-submitted
        in-flight job (see dependency_first_to_end)."""
        dep = dependency_first_to_end(after_any) if after_any else None
        return submit_argv(str(script), dependency=dep, extra=begin_at(delay) if delay > 0 else [])

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        return True  # the job waited on is already purged: qsub refuses the dependency

    def nodes(self) -> list[Node]:
        """One `pbsnodes` call: every node with its free cpus and memory."""
        text = self.command(pbs_nodes.argv(self.flavor), retries=1)
        try:
            return pbs_nodes.parse(self.flavor, text)
        except (ValueError, KeyError, TypeError, SyntaxError) as exc:  # ParseError: Syntax
            raise SubmitError(f"cannot read pbsnodes output: {exc}", transient=True) from None
