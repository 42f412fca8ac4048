"""SlurmExecutor: Slurm's pure pieces (executors/slurm.py) run through a BatchExecutor.

Each attempt is one `sbatch` of a script rendered from templates/slurm.sh.j2 that execs
`akoflow worker <attempt dir>` on the node; the worker writes result.json, which the
dispatcher ingests. Status is one `squeue` per poll for all of the user's akoflow jobs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.executor import JobRef, JobState, JobStatus, SubmitError, TaskLaunch

from . import slurm
from .base import BatchExecutor, Transport

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."


class SlurmExecutor(BatchExecutor):
    kind = "slurm"
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.user = config.get("user")
        self.python = str(config.get("python") or sys.executable)

    def worker_argv(self, launch: TaskLaunch) -> list[str]:
        return [self.python, "-m", "akoflow", "worker", str(launch.attempt_dir)]

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        ids: list[str] = []
        try:
            for ln in launches:
                ids.append(self._submit_one(ln))
        except SubmitError:
            if ids:  # all or nothing: the dispatcher resubmits the whole batch
                self.cancel([JobRef(j, "", "", 0.0) for j in ids])
            raise
        return ids

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
        queue = slurm.parse_status(self.command(slurm.status_argv(self.user)), NAME_PREFIX)
        out: dict[str, JobStatus] = {}
        for ref in jobs:
            st = queue.get(ref.job_id or "")
            # Gone from squeue (MinJobAge passed): the dispatcher judges it by result.json.
            out[ref.job_name] = st if st is not None else JobStatus(JobState.GONE)
        return out

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = [j.job_id for j in jobs if j.job_id]
        if not ids:
            return
        try:
            self.command(slurm.cancel_argv(ids), retries=1)
        except SubmitError as exc:  # jobs that already ended: nothing left to stop
            log.info("scancel: %s", exc)

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        wanted = set(job_names)
        entries = slurm.parse_queue(self.command(slurm.status_argv(self.user)), NAME_PREFIX)
        return {e.name: e.job_id for e in entries if e.name in wanted}

    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """The dispatcher as a small batch job (resources from the site's `dispatcher:`)."""
        res = dict(self.config.get("dispatcher") or {})
        extra = {str(k): str(v) for k, v in (res.get("extra") or {}).items()}
        if delay > 0:
            extra["slurm.begin"] = f"now+{max(1, int(delay))}"
        resources = {"cpu": float(res.get("cpu", 1)), "memory": res.get("memory"),
                     "time_limit": res.get("time_limit", 600), "extra": extra}
        launch = TaskLaunch(
            workflow_id=0, workflow="", activity_id=0, activity="", attempt=0, job_name=name,
            attempt_dir=log_dir, work_dir=log_dir, run_dir=log_dir, script="",
            resources=self.with_defaults(resources))
        log_dir.mkdir(parents=True, exist_ok=True)
        script = slurm.render_script(launch, worker_argv=list(argv), modules=self.modules,
                                     env=self.env, log_dir=str(log_dir), array_size=None)
        path = log_dir / "dispatcher.sh"
        path.write_text(script)
        dependency = slurm.dependency_first_to_end(after_any) if after_any else None
        return slurm.parse_submit(self.command(slurm.submit_argv(str(path),
                                                                 dependency=dependency)))

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        entries = slurm.parse_queue(self.command(slurm.status_argv(self.user)), NAME_PREFIX)
        return [(e.job_id, e.status.state) for e in entries if e.name == name]
