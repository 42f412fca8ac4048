"""LsfExecutor: LSF's pure pieces (executors/lsf.py) on the BatchExecutor's hooks.

Each attempt is one `bsub` (options on its command line) of a script rendered from
templates/lsf.sh.j2 that execs `akoflow worker <attempt dir>`; status is one `bjobs -a -json`
per poll for the user's jobs, kept to akoflow's by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from akoflow.port import SubmitError, TaskLaunch

from . import lsf
from .base import NAME_PREFIX, Array, BatchExecutor
from .batch_script import QueueEntry


class LsfExecutor(BatchExecutor):
    kind = "lsf"
    site_keys = frozenset({"user"})
    hosts_dispatcher = True
    script_mode = 0o755  # bsub runs the script as the job's command

    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None, pre_sleep: int = 0) -> str:
        return lsf.render_script(job, options=lsf.job_options(job, str(log_dir)),
                                 worker_argv=worker, modules=self.modules, env=self.env,
                                 array_size=None, pre_sleep=pre_sleep)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        dep = lsf.dependency_after_ok(job.after_ok) if job.after_ok else None
        return lsf.submit_argv(str(script), lsf.job_options(job, str(script.parent)),
                               dependency=dep)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        return [lsf.parse_submit(stdout)]

    def queue(self) -> list[QueueEntry]:
        # Jobs cleaned from mbatchd (CLEAN_PERIOD passed) are GONE, judged by result.json.
        try:
            out = self.command(lsf.status_argv(self.user))
        except SubmitError as exc:  # LSB_BJOBS_CONSISTENT_EXIT_CODE=Y: no jobs → exit 255
            if exc.transient or not any(m in exc.stderr for m in lsf.NO_JOBS):
                raise
            return []
        return lsf.parse_queue(out, NAME_PREFIX)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return lsf.cancel_argv(job_ids)

    def dispatcher_script(self, launch: TaskLaunch, argv: list[str], log_dir: Path,
                          delay: float) -> str:
        """`-b` has minute granularity, so a spacing under a minute is a `sleep` in the job."""
        return self.job_script(launch, argv, log_dir,
                               pre_sleep=math.ceil(delay) if 0 < delay < 60 else 0)

    def dispatcher_argv(self, script: Path, launch: TaskLaunch, after_any: Sequence[str],
                        delay: float) -> list[str]:
        """Waits for the first in-flight job to end: `-w` joins conditions with `||`."""
        begin = lsf.begin_at(delay) if delay >= 60 else []
        dep = lsf.dependency_first_to_end(after_any) if after_any else None
        return lsf.submit_argv(str(script), lsf.job_options(launch, str(script.parent)),
                               dependency=dep, extra=begin)

    def dependency_refused(self, exc: SubmitError, after_any: Sequence[str]) -> bool:
        return True  # a job waited on is already cleaned: bsub refuses the condition
