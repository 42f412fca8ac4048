"""LsfExecutor: LSF's pure pieces (executors/lsf.py) run through a BatchExecutor.

Each attempt is one `bsub` (options on its command line) of a script rendered from
templates/lsf.sh.j2 that execs `akoflow worker <attempt dir>`; status is one `bjobs -a -json`
per poll for the user's jobs, kept to akoflow's by name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.executor import JobRef, JobState, JobStatus, SubmitError, TaskLaunch

from . import lsf
from .base import BatchExecutor, Transport

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."


class LsfExecutor(BatchExecutor):
    kind = "lsf"
    site_keys = frozenset({"user"})
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.user = config.get("user")

    def _write(self, launch: TaskLaunch, path: Path, worker: list[str], log_dir: Path,
               pre_sleep: int = 0) -> list[str]:
        """Render and write the script; returns the bsub options it records."""
        options = lsf.job_options(launch, str(log_dir))
        path.write_text(lsf.render_script(launch, options=options, worker_argv=worker,
                                          modules=self.modules, env=self.env, array_size=None,
                                          pre_sleep=pre_sleep))
        path.chmod(0o755)  # bsub runs it as the job's command
        return options

    def _submit_one(self, ln: TaskLaunch) -> str:
        job = replace(ln, resources=self.with_defaults(ln.resources))
        path = ln.attempt_dir / "job.sh"
        options = self._write(job, path, self.worker_argv(ln), ln.attempt_dir)
        dep = lsf.dependency_after_ok(ln.after_ok) if ln.after_ok else None
        return lsf.parse_submit(self.command(lsf.submit_argv(str(path), options,
                                                             dependency=dep)))

    def _queue(self) -> dict[str, tuple[str, JobStatus]]:
        try:
            out = self.command(lsf.status_argv(self.user))
        except SubmitError as exc:  # LSB_BJOBS_CONSISTENT_EXIT_CODE=Y: no jobs → exit 255
            if exc.transient or not any(m in exc.stderr for m in lsf.NO_JOBS):
                raise
            return {}
        return lsf.parse_status(out, NAME_PREFIX)

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        # Cleaned from mbatchd (CLEAN_PERIOD passed): GONE, judged by result.json.
        return self.poll_listing(jobs, self._queue, "bjobs")

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = [j.job_id for j in jobs if j.job_id]
        if not ids:
            return
        self.cancel_ids(lsf.cancel_argv(ids))

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        return self.ids_by_name(self._queue(), job_names)

    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """The dispatcher as a small batch job waiting for the first in-flight job to end.
        `-b` has minute granularity, so a spacing under a minute is a `sleep` in the job."""
        launch = self.dispatcher_launch(name, log_dir)
        short = 0 < delay < 60
        path = log_dir / "dispatcher.sh"
        options = self._write(launch, path, list(argv), log_dir,
                              pre_sleep=math.ceil(delay) if short else 0)
        begin = lsf.begin_at(delay) if delay >= 60 else []
        dep = lsf.dependency_first_to_end(after_any) if after_any else None
        try:
            return lsf.parse_submit(self.command(lsf.submit_argv(
                str(path), options, dependency=dep, extra=begin)))
        except SubmitError as exc:
            if dep is None or exc.transient:
                raise
            # A job waited on is already cleaned: bsub refuses the condition. Start after
            # the spacing instead; the next cycle sees that job's result.
            log.info("bsub refused -w %r (%s); queueing the dispatcher without it", dep, exc)
            return lsf.parse_submit(self.command(lsf.submit_argv(str(path), options,
                                                                 extra=begin)))

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        return [(jid, st.state) for jid, (n, st) in self._queue().items() if n == name]
