"""BatchExecutor: what every batch-scheduler adapter shares; the adapters fill in hooks.

Like psij's batch executors, the base owns the workflow and a scheduler adapter only says how
its scheduler spells things. The base: submission (one job per launch, or one array per group
of same-shaped launches in chunks the scheduler accepts; all or nothing, rolled back on a
refusal), the status poll (one queue listing; accounting, where the scheduler has it, for jobs
that left the listing), lookup by name, cancel, the dispatcher job, and every command, run
through a `Transport` (a local subprocess here; SSH later) as an argv list with a timeout,
retrying what a scheduler reports as temporary (batch_commands.py). The hooks: `job_script`,
`submit_argv`, `job_ids`, `queue`, `cancel_argv`, and optionally `accounted`, `stuck`,
`canonical`, `array_limit`, `dispatcher_argv`. Each scheduler is one module: its state map,
argv builders, parsers and executor class, its script in templates/; what they share is in
batch_script.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.port import (
    DispatcherHost,
    Executor,
    JobRef,
    JobState,
    JobStatus,
    Resources,
    SpecError,
    SubmitError,
    TaskLaunch,
    akoflow_argv,
)

from .batch_commands import Transport, is_transient, over_limit
from .batch_script import Array, QueueEntry, Request

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."
ARRAY_TAG = ".array."  # array job names: akoflow.<workflow id>.array.<digest>

class BatchExecutor(Executor, DispatcherHost):
    """Base of the scheduler adapters: submit, poll, lookup, cancel, dispatcher jobs."""

    hosts_dispatcher = False  # each scheduler that can says so
    chains_after_ok = False
    site_keys = frozenset({
        "binds", "command_retries", "command_timeout", "container", "container_binary",
        "defaults", "dispatcher", "env", "modules", "python",
    })
    # The adapter renders array scripts (`job_script` with an Array): same-shaped launches
    # then go out as arrays unless the site says `arrays: false`.
    supports_arrays = False
    queue_reuse = 0.0  # seconds one poll's listing also answers `dispatcher_jobs`
    default_array_limit = 1 << 31  # elements per array when `array_limit` cannot say
    script_mode: int | None = None  # chmod of job scripts the scheduler runs as commands
    dispatcher_memory = True  # the dispatcher job asks for the site's `dispatcher.memory`
    # Jobs start without the submitter's environment: export akoflow's own (AKOFLOW_HOME, ...)
    exports_own_env = False

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config)
        self.transport = transport or Transport()
        self.retries = int(config.get("command_retries", 3))
        self.timeout = float(config.get("command_timeout", 60))
        self.modules = [str(m) for m in config.get("modules") or []]
        own = {k: v for k, v in os.environ.items()
               if self.exports_own_env and k.startswith("AKOFLOW_")}
        self.env = {**own, **{str(k): str(v) for k, v in (config.get("env") or {}).items()}}
        self.defaults = {str(k): str(v) for k, v in (config.get("defaults") or {}).items()}
        self.python = str(config.get("python") or sys.executable)  # on the compute nodes
        self.user = config.get("user")
        self.arrays = self.supports_arrays and bool(config.get("arrays", True))
        throttle = config.get("array_throttle")
        self.throttle = int(throttle) if throttle else None
        if self.throttle is not None and self.throttle < 1:
            raise SpecError(f"site {site}: array_throttle must be at least 1, got {throttle!r}")
        self._listed: tuple[float, list[QueueEntry]] | None = None  # (when, last listing)
        limit = config.get("max_array_size")
        self._array_limit = int(limit) if limit else 0  # 0: ask the scheduler once

    # -- hooks: what the scheduler module says -------------------------------------------------
    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None) -> str:
        """The job script of `job` (resources with the site's defaults) running `worker`."""
        raise NotImplementedError

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        """The command that queues `script` (with `job.after_ok` as its dependencies)."""
        raise NotImplementedError

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        """The submit command's output as one job id, or one per array element."""
        raise NotImplementedError

    def queue(self) -> list[QueueEntry]:
        """One listing of the user's akoflow jobs (names starting with NAME_PREFIX)."""
        raise NotImplementedError

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def accounted(self, gone: Sequence[JobRef]) -> dict[str, JobStatus]:
        """How jobs that left the listing ended, by job id, where the scheduler keeps
        accounting; {} leaves them GONE, judged by their result files."""
        return {}

    def stuck(self, entry: QueueEntry) -> bool:
        """A listed job that will never run by itself (it is reported, then cancelled)."""
        return False

    def canonical(self, job_id: str | None) -> str:
        """A job id as the listing spells it ("" for none)."""
        return job_id or ""

    def shape(self, launch: TaskLaunch) -> object:
        """What launches must share to run as elements of one array script: resources as
        schedulers count them (whole cores, MiB), so requests that differ by bytes share."""
        res = self.with_defaults(launch.resources)
        req = Request.of(res)
        return [req.cpus, req.memory_mib, req.time_limit, req.gpus, res.extra, res.node_selector]

    def array_limit(self) -> float:
        """The scheduler's own cap on array elements (asked once; inf: none; SubmitError:
        unknown)."""
        return self.default_array_limit

    def max_array_size(self) -> int:
        """Elements per array: the site's `max_array_size`, else the scheduler's cap."""
        if not self._array_limit:
            try:
                self._array_limit = int(min(self.array_limit(), 1 << 31))
            except SubmitError as exc:
                log.warning("%s array limit unknown (%s); using %d", self.kind, exc,
                            self.default_array_limit)
                self._array_limit = self.default_array_limit
        return max(1, self._array_limit)

    def task_wrapper(self, launch: TaskLaunch) -> list[str]:
        """Run the task in Singularity/Apptainer when the site profile says `container:
        singularity` (or apptainer) and the activity has an image. Only then is the
        Singularity adapter (and spython, a core dependency, with it) imported."""
        if not launch.image or str(self.config.get("container") or "none") == "none":
            return []
        from . import singularity

        if singularity.is_container_runtime(self.config):
            return singularity.wrapper_argv(self.config, launch)
        return []

    def dispatcher_script(self, launch: TaskLaunch, argv: list[str], log_dir: Path,
                          delay: float) -> str:
        return self.job_script(launch, argv, log_dir)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        """The command that queues the dispatcher job: it starts once any of `after_any`
        ended (or at once), not before `delay` seconds from now."""
        raise NotImplementedError

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        """The scheduler refused a dispatcher's dependency (a job already purged): queue it
        without one; the next cycle sees that job's result."""
        return False

    # -- submission ---------------------------------------------------------------------------
    def worker_argv(self, launch: TaskLaunch | None = None) -> list[str]:
        """What a job script execs: `akoflow worker <attempt dir>`; without a launch, for an
        array whose elements append their own attempt dir."""
        argv = [*akoflow_argv(self.python), "worker"]
        return [*argv, str(launch.attempt_dir)] if launch else argv

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """One job per launch, or one array per group of same-shaped launches (chunks of
        `max_array_size`). All or nothing: what was queued before a refusal is cancelled,
        and the dispatcher resubmits the whole batch."""
        ids: dict[int, str] = {}
        groups = self._groups(launches) if self.arrays else [[i] for i in range(len(launches))]
        try:
            for group in groups:
                if len(group) == 1:
                    ids[group[0]] = self._submit_one(launches[group[0]])
                    continue
                size = self.max_array_size()
                for first in range(0, len(group), size):
                    chunk = group[first:first + size]
                    ids.update(zip(chunk, self._submit_array([launches[i] for i in chunk])))
        except (SubmitError, SpecError):
            if ids:
                self.cancel([JobRef(j, "", "", 0.0) for j in ids.values()])
            raise
        return [ids[i] for i in range(len(launches))]

    def _groups(self, launches: Sequence[TaskLaunch]) -> list[list[int]]:
        """Indices of launches that can share one array script, in submission order: the
        same shape, node, dependencies, run directory and container wrapper."""
        groups: dict[str, list[int]] = {}
        for i, ln in enumerate(launches):
            key = json.dumps([self.shape(ln), ln.node, sorted(ln.after_ok), str(ln.run_dir),
                              ln.wrapper], sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)
        return list(groups.values())

    def _submit_one(self, ln: TaskLaunch) -> str:
        job = replace(ln, resources=self.with_defaults(ln.resources))
        path = ln.attempt_dir / "job.sh"
        self.write_script(path, self.job_script(job, self.worker_argv(ln), ln.attempt_dir))
        return self.job_ids(self.command(self.submit_argv(path, job, None)), None)[0]

    def _submit_array(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """Launches of one shape as one array `akoflow.<wf>.array.<digest>`."""
        first = launches[0]
        digest = hashlib.sha1("\n".join(ln.job_name for ln in launches).encode()).hexdigest()
        name = f"{NAME_PREFIX}{first.workflow_id}{ARRAY_TAG}{digest[:12]}"
        adir = first.run_dir / "arrays"
        adir.mkdir(parents=True, exist_ok=True)
        array = Array(len(launches), adir / f"{name}.tasks")
        _write(array.tasks, "".join(f"{ln.attempt_dir}\t{ln.job_name}\n" for ln in launches))
        job = replace(first, job_name=name, resources=self.with_defaults(first.resources))
        path = adir / f"{name}.sh"
        self.write_script(path, self.job_script(job, self.worker_argv(), adir, array))
        return self.job_ids(self.command(self.submit_argv(path, job, array)), array)

    def write_script(self, path: Path, text: str) -> None:
        _write(path, text)
        if self.script_mode is not None:
            path.chmod(self.script_mode)

    # -- status, lookup, cancel ---------------------------------------------------------------
    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """States from one queue listing. A job missing from it is GONE unless accounting
        says how it ended (the dispatcher then judges it by its result.json); an unreadable
        listing leaves every state UNKNOWN rather than guessing."""
        try:
            listed = {e.job_id: e for e in self._listing()}
        except (SubmitError, ValueError) as exc:
            log.warning("%s failed; every job's state is unknown: %s", type(self).kind, exc)
            return {ref.job_name: JobStatus(JobState.UNKNOWN, message=str(exc)[:200])
                    for ref in jobs}
        out: dict[str, JobStatus] = {}
        gone: list[JobRef] = []
        stuck: list[str] = []
        for ref in jobs:
            entry = listed.get(self.canonical(ref.job_id))
            if entry is None:
                gone.append(ref)
                continue
            out[ref.job_name] = entry.status
            if self.stuck(entry):
                stuck.append(entry.job_id)
        accounted = self.accounted(gone) if gone else {}
        for ref in gone:
            out[ref.job_name] = accounted.get(ref.job_id or "") or JobStatus(JobState.GONE)
        if stuck:  # never runs by itself: reported as it is, then removed from the queue
            self.cancel([JobRef(j, "", "", 0.0) for j in stuck])
        return out

    def _listing(self) -> list[QueueEntry]:
        entries = self.queue()
        self._listed = (time.monotonic(), entries)
        return entries

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        """Job ids by name (crash repair); where a name was reused, the newest job. Array
        elements carry their array's name: they are found through its tasks file."""
        wanted = set(job_names)
        entries = self.newest_last(self.queue())
        found = {e.name: e.job_id for e in entries if e.name in wanted}
        elements: dict[str, str] = {}  # newest last, so the newest job of a name wins
        if len(found) < len(wanted) and any(ARRAY_TAG in e.name for e in entries):
            for job_id, (tasks, line) in self.array_elements(entries).items():
                name = Array.name_at(tasks, line)
                if name in wanted:
                    elements[name] = job_id
        return {**elements, **found}

    def array_elements(self, entries: list[QueueEntry]) -> dict[str, tuple[str, int]]:
        """Listed array elements as job id -> (their array's tasks file, their line in it),
        where the scheduler can tell; {} leaves them to be resubmitted after a crash."""
        return {}

    def newest_last(self, entries: list[QueueEntry]) -> list[QueueEntry]:
        """By job id (sequence numbers): if another manifest of this user reused a name, ours
        is the job submitted last (its intent was recorded just before the crash)."""
        return sorted(entries, key=lambda e: [int(p) for p in re.findall(r"\d+", e.job_id)])

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = [j for j in dict.fromkeys(self.canonical(r.job_id) for r in jobs) if j]
        if ids:
            self.cancel_ids(ids)

    def cancel_ids(self, job_ids: Sequence[str]) -> None:
        """Jobs that already ended leave nothing to stop: a failure is logged (idempotent).
        Some clients refuse a whole list over one such id: then each goes on its own (not
        when the controller is down: that would cost a timeout per id)."""
        argv = self.cancel_argv(job_ids)
        try:
            self.command(argv, retries=1)
        except SubmitError as exc:
            log.info("%s: %s", argv[0], exc)
            for job_id in job_ids if len(job_ids) > 1 and not exc.transient else []:
                try:
                    self.command(self.cancel_argv([job_id]), retries=0)
                except SubmitError:
                    pass

    # -- the dispatcher as a batch job --------------------------------------------------------
    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """The dispatcher as a small batch job (resources from the site's `dispatcher:`)."""
        launch = self.dispatcher_launch(name, log_dir)
        path = log_dir / "dispatcher.sh"
        self.write_script(path, self.dispatcher_script(launch, list(argv), log_dir, delay))
        return self.queue_dispatcher(path, launch, after_any, delay)

    def queue_dispatcher(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                         delay: float) -> str:
        """Queue the dispatcher's script with `dispatcher_argv`; returns its job id."""
        try:
            out = self.command(self.dispatcher_argv(script, launch, after_any, delay))
        except SubmitError as exc:
            if not after_any or exc.transient or not self.dependency_refused(exc, after_any):
                raise
            log.info("dependency refused (%s); queueing the dispatcher without it", exc)
            out = self.command(self.dispatcher_argv(script, launch, [], delay))
        return self.job_ids(out, None)[0]

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        """Dispatcher jobs named `name`, from this cycle's listing while it is fresh
        (`queue_reuse`); jobs queued since are the caller's own new link, which it keeps."""
        fresh = self._listed is not None and time.monotonic() - self._listed[0] < self.queue_reuse
        entries = self._listed[1] if fresh and self._listed else self._listing()
        return [(e.job_id, e.status.state) for e in entries if e.name == name]

    def dispatcher_launch(self, name: str, log_dir: Path) -> TaskLaunch:
        """The dispatcher job as a launch, its log directory created: resources from the
        site's `dispatcher:` (1 cpu and 10 minutes unless it says otherwise) under the
        site's defaults."""
        res = dict(self.config.get("dispatcher") or {})
        resources = Resources(
            cpu=float(res.get("cpu", 1)), time_limit=res.get("time_limit", 600),
            memory=res.get("memory") if self.dispatcher_memory else None,
            extra={str(k): str(v) for k, v in (res.get("extra") or {}).items()})
        log_dir.mkdir(parents=True, exist_ok=True)
        return TaskLaunch(
            workflow_id=0, workflow="", activity_id=0, activity="", attempt=0, job_name=name,
            attempt_dir=log_dir, work_dir=log_dir, run_dir=log_dir, script="",
            resources=self.with_defaults(resources))

    # -- commands and settings ----------------------------------------------------------------
    @property
    def min_poll_interval(self) -> float:
        return float(self.config.get("poll_interval", 2.0))

    def command(self, argv: Sequence[str], *, retries: int | None = None) -> str:
        """stdout of `argv`; transient failures are retried with backoff (1, 2, 4 s ...)."""
        tries = self.retries if retries is None else retries
        delay = 1.0
        for attempt in range(tries + 1):
            result = self.transport.run(argv, self.timeout)
            if result.returncode == 0:
                return result.stdout
            limited = over_limit(f"{result.stdout}\n{result.stderr}")
            transient = limited or is_transient(result)
            if not transient or attempt == tries or limited:
                raise SubmitError(
                    f"{argv[0]} failed (exit {result.returncode}): "
                    f"{(result.stderr or result.stdout).strip()[:300]}",
                    transient=transient, argv=argv, exit_code=result.returncode,
                    stdout=result.stdout, stderr=result.stderr)
            log.warning("%s failed transiently (%s); retrying in %.0fs", argv[0],
                        result.stderr.strip()[:120], delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def with_defaults(self, resources: Resources) -> Resources:
        """The site's default partition/account/qos/... under the activity's own keys."""
        return resources.with_extra(self.defaults)


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a crash never leaves half a script or tasks file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
