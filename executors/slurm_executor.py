"""SlurmExecutor: Slurm's pure pieces (executors/slurm.py) on the BatchExecutor's hooks.

Each attempt runs `akoflow worker <attempt dir>` in a batch job rendered from
templates/slurm.sh.j2. Same-shaped launches go out as one job array per MaxArraySize chunk:
element N runs the attempt on line N+1 of the array's tasks file, whose path is also the
array's `--comment`, so a dispatcher repairing a crash finds every element's job id again
(`lookup`). Status is one `squeue` per poll for all of the user's akoflow jobs, and `sacct`
(where slurmdbd runs) for those that left it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.port import JobRef, JobStatus, Node, SubmitError, TaskLaunch

from . import slurm, slurm_nodes
from .base import ARRAY_TAG, NAME_PREFIX, Array, BatchExecutor, Transport
from .batch_script import QueueEntry

log = logging.getLogger(__name__)
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's own default MaxArraySize
_MAX_ARRAY = re.compile(r"^MaxArraySize\s*=\s*(\d+)", re.MULTILINE)


class SlurmExecutor(BatchExecutor):
    kind = "slurm"
    site_keys = frozenset({"accounting", "array_throttle", "arrays", "max_array_size", "user"})
    hosts_dispatcher = True
    chains_after_ok = True
    supports_arrays = True
    queue_reuse = 10.0  # one squeue per cycle answers the chain's `dispatcher_jobs` too

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self._max_array = int(config["max_array_size"]) if config.get("max_array_size") else 0
        # sacct tells how jobs that left squeue ended, where slurmdbd runs: `accounting:
        # auto` (default) asks sacct once whether accounting is enabled.
        acct = str(config.get("accounting", "auto")).lower()
        self._sacct: bool | None = None if acct == "auto" else acct in ("yes", "true", "on")

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

    # -- submission hooks ---------------------------------------------------------------------
    def shape(self, launch: TaskLaunch) -> object:
        """sbatch options as they come out: memory is asked in MiB, so requests that differ
        by bytes share an array."""
        return slurm.resource_options(self.with_defaults(launch.resources))

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

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None) -> str:
        tasks = str(array.tasks) if array else None
        return slurm.render_script(job, worker_argv=worker, modules=self.modules, env=self.env,
                                   log_dir=str(log_dir), array_size=array.size if array else None,
                                   tasks_file=tasks, comment=tasks)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        dependency = slurm.dependency_after_ok(job.after_ok) if job.after_ok else None
        spec = slurm.array_spec(array.size, self.throttle, array.size)[0][0] if array else None
        return slurm.submit_argv(str(script), dependency=dependency, array=spec)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        job = slurm.parse_submit(stdout)
        return [f"{job}_{i}" for i in range(array.size)] if array else [job]

    def dispatcher_launch(self, name: str, log_dir: Path, delay: float = 0.0, *,
                          memory: bool = True) -> TaskLaunch:
        launch = super().dispatcher_launch(name, log_dir, delay, memory=memory)
        if delay > 0:
            launch.resources = replace(launch.resources, extra={
                **launch.resources.extra, "slurm.begin": f"now+{max(1, int(delay))}"})
        return launch

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        dependency = slurm.dependency_first_to_end(after_any) if after_any else None
        return slurm.submit_argv(str(script), dependency=dependency)

    # -- status hooks -------------------------------------------------------------------------
    def queue(self) -> list[QueueEntry]:
        return slurm.parse_queue(self.command(slurm.status_argv(self.user)), NAME_PREFIX)

    def accounted(self, gone: Sequence[JobRef]) -> dict[str, JobStatus]:
        """Gone from squeue (MinJobAge passed): sacct's word, in one bounded query."""
        job_ids = [r.job_id for r in gone if r.job_id][:1000]
        if not job_ids or not self.accounting():
            return {}
        try:
            return slurm.parse_sacct(self.command(slurm.sacct_argv(job_ids), retries=0))
        except SubmitError as exc:  # accounting is optional: never fail a poll over it
            log.info("sacct failed: %s", exc)
            return {}

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

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return slurm.cancel_argv(job_ids)

    def newest_last(self, entries: list[QueueEntry]) -> list[QueueEntry]:
        """By job id: if another manifest of this user reused a name, ours is the job
        submitted last (its intent was recorded just before the crash)."""
        return sorted(entries, key=lambda e: [int(p) for p in e.job_id.split("_")
                                              if p.isdigit()])

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        """Job ids by name; array elements through their array's tasks file (`--comment`)."""
        wanted = set(job_names)
        entries = self.newest_last(self.queue())
        found = {e.name: e.job_id for e in entries if e.name in wanted}
        if len(found) == len(wanted) or not any(ARRAY_TAG in e.name for e in entries):
            return found
        comments = slurm.parse_comments(self.command(slurm.comment_argv(self.user)))
        elements: dict[str, str] = {}
        for e in entries:
            _, _, index = e.job_id.partition("_")
            if ARRAY_TAG in e.name and index.isdigit():
                name = _task_name(comments.get(e.job_id, ""), int(index))
                if name in wanted:
                    elements[name] = e.job_id
        return {**elements, **found}

    def nodes(self) -> list[Node]:
        """One `scontrol show node --oneliner`; free room as Slurm would allocate it."""
        return slurm_nodes.parse_scontrol(self.command(slurm_nodes.scontrol_argv(), retries=1))


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
