"""SlurmExecutor: Slurm's pure pieces (executors/slurm.py) run through a BatchExecutor.

Each attempt runs `akoflow worker <attempt dir>` in a batch job rendered from
templates/slurm.sh.j2; the worker writes result.json, which the dispatcher ingests. Launches of
the same shape (resources, placement, dependencies) submitted together go out as one job array
per MaxArraySize chunk: element N runs the attempt on line N+1 of the array's tasks file, whose
path is also the array's `--comment`, so a dispatcher repairing a crash finds every element's
job id again (`lookup`). Status is one `squeue` per poll for all of the user's akoflow jobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.executor import (
    JobRef,
    JobState,
    JobStatus,
    Node,
    SubmitError,
    TaskLaunch,
)

from . import slurm, slurm_nodes
from .base import BatchExecutor, Transport

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."
ARRAY_TAG = ".array."  # array job names: akoflow.<workflow id>.array.<digest>
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's own default MaxArraySize
QUEUE_REUSE = 10.0  # seconds a poll's squeue output answers `dispatcher_jobs` too
_MAX_ARRAY = re.compile(r"^MaxArraySize\s*=\s*(\d+)", re.MULTILINE)


class SlurmExecutor(BatchExecutor):
    kind = "slurm"
    site_keys = frozenset({"accounting", "array_throttle", "arrays", "max_array_size", "user"})
    hosts_dispatcher = True
    chains_after_ok = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.user = config.get("user")
        self.arrays = bool(config.get("arrays", True))
        throttle = config.get("array_throttle")
        self.throttle = int(throttle) if throttle else None
        self._max_array = int(config["max_array_size"]) if config.get("max_array_size") else 0
        # sacct tells how jobs that left squeue ended, where slurmdbd runs: `accounting:
        # auto` (default) asks sacct once whether accounting is enabled.
        acct = str(config.get("accounting", "auto")).lower()
        self._sacct: bool | None = None if acct == "auto" else acct in ("yes", "true", "on")
        self._queue: tuple[float, str] | None = None  # (when, output) of the last squeue

    def task_wrapper(self, launch: TaskLaunch) -> list[str]:
        """Run the task in Singularity/Apptainer when the site profile says `container:
        singularity` (or apptainer) and the activity has an image (only then is the
        Singularity adapter, and spython with it, imported: a plain `pip install akoflow`
        has no spython)."""
        if not launch.image or str(self.config.get("container") or "none") == "none":
            return []
        from . import singularity

        if singularity.is_container_runtime(self.config):
            return singularity.wrapper_argv(self.config, launch)
        return []

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """One sbatch per shape group (an array when it holds several launches)."""
        ids: dict[int, str] = {}
        try:
            for group in self._groups(launches):
                if len(group) == 1 or not self.arrays:
                    for i in group:
                        ids[i] = self._submit_one(launches[i])
                    continue
                size = self.max_array_size()
                for first in range(0, len(group), size):
                    chunk = group[first:first + size]
                    elements = self._submit_array([launches[i] for i in chunk])
                    ids.update(zip(chunk, elements))
        except SubmitError:
            if ids:  # all or nothing: the dispatcher resubmits the whole batch
                self.cancel([JobRef(j, "", "", 0.0) for j in ids.values()])
            raise
        return [ids[i] for i in range(len(launches))]

    def _groups(self, launches: Sequence[TaskLaunch]) -> list[list[int]]:
        """Indices of launches that can share one array script, in submission order: those
        whose sbatch options come out the same (memory is asked in MiB, so requests that
        differ by bytes share an array), with the same node and dependencies."""
        groups: dict[str, list[int]] = {}
        for i, ln in enumerate(launches):
            options = slurm.resource_options(self.with_defaults(ln.resources))
            key = json.dumps([options, ln.node, sorted(ln.after_ok), str(ln.run_dir),
                              ln.wrapper], default=str)
            groups.setdefault(key, []).append(i)
        return list(groups.values())

    def max_array_size(self) -> int:
        """The cluster's MaxArraySize (one `scontrol show config`, then cached)."""
        if not self._max_array:
            try:
                text = self.command(["scontrol", "show", "config"], retries=1)
                m = _MAX_ARRAY.search(text)
                self._max_array = int(m.group(1)) if m else DEFAULT_MAX_ARRAY_SIZE
            except SubmitError as exc:
                log.warning("MaxArraySize unknown (%s); using %d", exc, DEFAULT_MAX_ARRAY_SIZE)
                self._max_array = DEFAULT_MAX_ARRAY_SIZE
        return max(1, self._max_array)

    def _submit_array(self, launches: Sequence[TaskLaunch]) -> list[str]:
        first = launches[0]
        digest = hashlib.sha1("\n".join(ln.job_name for ln in launches).encode()).hexdigest()
        name = f"{NAME_PREFIX}{first.workflow_id}{ARRAY_TAG}{digest[:12]}"
        adir = first.run_dir / "arrays"
        adir.mkdir(parents=True, exist_ok=True)
        tasks = adir / f"{name}.tasks"
        _write(tasks, "".join(f"{ln.attempt_dir}\t{ln.job_name}\n" for ln in launches))
        job = replace(first, job_name=name, resources=self.with_defaults(first.resources))
        script = slurm.render_script(job, worker_argv=self.worker_argv(),
                                     modules=self.modules, env=self.env, log_dir=str(adir),
                                     array_size=len(launches), tasks_file=str(tasks),
                                     comment=str(tasks))
        path = adir / f"{name}.sh"
        _write(path, script)
        dependency = slurm.dependency_after_ok(first.after_ok) if first.after_ok else None
        spec, _ = slurm.array_spec(len(launches), self.throttle, len(launches))[0]
        array_id = slurm.parse_submit(self.command(slurm.submit_argv(
            str(path), dependency=dependency, array=spec)))
        return [f"{array_id}_{i}" for i in range(len(launches))]

    def _submit_one(self, ln: TaskLaunch) -> str:
        job = replace(ln, resources=self.with_defaults(ln.resources))
        script = slurm.render_script(job, worker_argv=self.worker_argv(ln),
                                     modules=self.modules, env=self.env,
                                     log_dir=str(ln.attempt_dir), array_size=None)
        path = ln.attempt_dir / "job.sh"
        path.write_text(script)
        dependency = slurm.dependency_after_ok(ln.after_ok) if ln.after_ok else None
        return slurm.parse_submit(self.command(slurm.submit_argv(str(path),
                                                                 dependency=dependency)))

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        queue = slurm.parse_status(self._squeue(), NAME_PREFIX)
        out: dict[str, JobStatus] = {}
        gone: list[JobRef] = []
        for ref in jobs:
            st = queue.get(ref.job_id or "")
            if st is None:
                gone.append(ref)
            else:
                out[ref.job_name] = st
        accounted = self._accounted([r.job_id for r in gone if r.job_id])
        for ref in gone:
            # Gone from squeue (MinJobAge passed): sacct's word where accounting runs, else
            # GONE, and the dispatcher judges the job by its result.json.
            out[ref.job_name] = accounted.get(ref.job_id or "") or JobStatus(JobState.GONE)
        return out

    def accounting(self) -> bool:
        """Whether sacct answers on this cluster (asked once)."""
        if self._sacct is None:
            result = self.transport.run(["sacct", "--noheader", "-X", "-j", "1",
                                         "--format=JobID"], self.timeout)
            self._sacct = result.returncode == 0
            if not self._sacct:
                log.info("sacct unavailable (%s): jobs that leave squeue are judged by "
                         "their result files", (result.stderr or result.stdout).strip()[:120])
        return self._sacct

    def _accounted(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """One bounded sacct query for jobs no longer in squeue; {} when unavailable."""
        if not job_ids or not self.accounting():
            return {}
        try:
            return slurm.parse_sacct(self.command(slurm.sacct_argv(list(job_ids)[:1000]),
                                                  retries=0))
        except SubmitError as exc:  # accounting is optional: never fail a poll over it
            log.info("sacct failed: %s", exc)
            return {}

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = [j.job_id for j in jobs if j.job_id]
        if not ids:
            return
        self.cancel_ids(slurm.cancel_argv(ids))

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        """Job ids by name; array elements through their array's tasks file (`--comment`)."""
        wanted = set(job_names)
        entries = slurm.parse_queue(self.command(slurm.status_argv(self.user)), NAME_PREFIX)
        # Newest first: if another manifest of this user reused a name, ours is the job
        # submitted last (its intent was recorded just before the crash).
        entries.sort(key=lambda e: [int(p) for p in e.job_id.split("_") if p.isdigit()],
                     reverse=True)
        found: dict[str, str] = {}
        for e in entries:
            if e.name in wanted:
                found.setdefault(e.name, e.job_id)
        if len(found) < len(wanted) and any(ARRAY_TAG in e.name for e in entries):
            comments = slurm.parse_comments(self.command(slurm.comment_argv(self.user)))
            for e in entries:
                _, _, index = e.job_id.partition("_")
                if ARRAY_TAG not in e.name or not index.isdigit():
                    continue
                name = _task_name(comments.get(e.job_id, ""), int(index))
                if name in wanted:
                    found.setdefault(name, e.job_id)
        return found

    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """The dispatcher as a small batch job (resources from the site's `dispatcher:`)."""
        begin = {"slurm.begin": f"now+{max(1, int(delay))}"} if delay > 0 else None
        launch = self.dispatcher_launch(name, log_dir, extra=begin)
        script = slurm.render_script(launch, worker_argv=list(argv), modules=self.modules,
                                     env=self.env, log_dir=str(log_dir), array_size=None)
        path = log_dir / "dispatcher.sh"
        path.write_text(script)
        dependency = slurm.dependency_first_to_end(after_any) if after_any else None
        return slurm.parse_submit(self.command(slurm.submit_argv(str(path),
                                                                 dependency=dependency)))

    def nodes(self) -> list[Node]:
        """One `scontrol show node --oneliner`; free room as Slurm would allocate it."""
        return slurm_nodes.parse_scontrol(self.command(slurm_nodes.scontrol_argv(), retries=1))

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        """Dispatcher jobs from this cycle's status query when it is fresh (one squeue per
        cycle); jobs queued since then are the caller's own new link, which it keeps."""
        fresh = self._queue is not None and time.monotonic() - self._queue[0] < QUEUE_REUSE
        text = self._queue[1] if fresh and self._queue else self._squeue()
        entries = slurm.parse_queue(text, NAME_PREFIX)
        return [(e.job_id, e.status.state) for e in entries if e.name == name]

    def _squeue(self) -> str:
        text = self.command(slurm.status_argv(self.user))
        self._queue = (time.monotonic(), text)
        return text


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _task_name(tasks_file: str, index: int) -> str | None:
    """The job name on line `index` + 1 of an array's tasks file."""
    try:
        with open(tasks_file) as fh:
            for i, line in enumerate(fh):
                if i == index:
                    return line.rstrip("\n").partition("\t")[2] or None
    except OSError:
        return None
    return None
