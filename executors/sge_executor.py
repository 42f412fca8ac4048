"""SgeExecutor: Son of Grid Engine's pure pieces (executors/sge.py) on the BatchExecutor's hooks.

Each attempt runs `akoflow worker <attempt dir>` in a job rendered from templates/sge.sh.j2;
launches of the same shape submitted together go out as one `-t 1-N [-tc K]` array. `lookup`
finds single jobs by name; array tasks are not found by name (a crash between an array's
intent and its qsub resubmits it; task.sh refuses a second start of a claimed attempt).
Status is one `qstat -xml` per poll; a job gone from it is judged by its result.json and,
when that is missing, by a bounded `qacct -j` (h_rt kill → TIMEOUT, qdel →
CANCELLED). A job in SGE's error state (Eqw) never runs by itself: it is reported FAILED and
deleted, so nothing lingers in the queue.

The dispatcher as SGE jobs ("wake on the FIRST in-flight job to end"): `-hold_jid a,b` waits
for ALL of a and b, so a link's dispatcher is a small group of identical jobs, one per watched
job: the leader `akoflow.<wf>.dispatcher` holds on the first in-flight job and each sibling
`akoflow.<wf>.dispatcher+<leader id>` on one other. Whichever is released first runs the cycle;
`dispatcher_jobs` reports pending siblings under their leader's id while the leader waits, so
the chain's "cancel every other pending dispatcher" removes the whole group (`cancel` deletes a
leader's pending siblings with it). At most `dispatcher_watchers` jobs are watched; beyond
that one more sibling with no hold starts after `dispatcher_max_wait` seconds, so the chain
never waits on jobs it does not watch for longer than that. A hold on a job that has already
ended is ignored by SGE: that member starts at once, which is right (something ended).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from akoflow.port import JobRef, JobState, JobStatus, SubmitError, TaskLaunch, protocol

from . import sge
from .base import NAME_PREFIX, Array, BatchExecutor, Transport
from .batch_script import QueueEntry

log = logging.getLogger(__name__)
SIBLING = "+"  # `<dispatcher name>+<leader id>`: a member of a dispatcher group


class SgeExecutor(BatchExecutor):
    kind = "sge"
    site_keys = frozenset({
        "array_throttle", "arrays", "dispatcher_max_wait", "dispatcher_watchers", "gpu_resource",
        "memory_resource", "parallel_environment", "qacct", "qacct_per_poll", "time_limit_grace",
        "user",
    })
    hosts_dispatcher = True
    supports_arrays = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        mem = config.get("memory_resource", "h_vmem")
        self.options = sge.SiteOptions(
            parallel_environment=config.get("parallel_environment") or None,
            memory_resources=tuple(str(m) for m in ([mem] if isinstance(mem, str) else
                                                    mem or [])),
            gpu_resource=str(config.get("gpu_resource", "gpu")),
            time_limit_grace=float(config.get("time_limit_grace", 30)))
        self.use_qacct = bool(config.get("qacct", True))
        self.qacct_per_poll = int(config.get("qacct_per_poll", 4))
        self.watchers = max(1, int(config.get("dispatcher_watchers", 8)))
        self.max_wait = float(config.get("dispatcher_max_wait", 300))
        self._qacct: dict[str, JobStatus] = {}  # job id -> what qacct said (it never changes)
        self._max_array: int | None = None

    def job_env(self) -> dict[str, str]:
        """Exported in every job script: SGE jobs do not inherit the submitter's environment
        (Slurm's do), so akoflow's own settings (AKOFLOW_HOME, ...) are passed on by name."""
        own = {k: v for k, v in os.environ.items() if k.startswith("AKOFLOW_")}
        return {**own, **self.env}

    # -- submission hooks ---------------------------------------------------------------------
    def job_script(self, job: TaskLaunch, worker: list[str], log_dir: Path,
                   array: Array | None = None, watchdog: bool = True) -> str:
        return sge.render_script(job, worker_argv=worker, modules=self.modules,
                                 env=self.job_env(), log_dir=str(log_dir), site=self.options,
                                 array_size=array.size if array else None,
                                 tasks_file=str(array.tasks) if array else None,
                                 watchdog=watchdog)

    def submit_argv(self, script: Path, job: TaskLaunch, array: Array | None) -> list[str]:
        return sge.submit_argv(str(script), hold=job.after_ok,
                               array_size=array.size if array else None,
                               throttle=self.throttle if array else None)

    def job_ids(self, stdout: str, array: Array | None) -> list[str]:
        ids = sge.parse_submit(stdout)
        if array is not None and len(ids) != array.size:
            self.cancel([JobRef(ids[0].split(".")[0], "", "", 0.0)])
            raise SubmitError(f"qsub made {len(ids)} array tasks for {array.size} launches",
                              transient=False, stdout=stdout)
        return ids

    def max_array_size(self) -> int:
        """The cell's `max_aj_tasks` (one `qconf -sconf`, then kept; 0 there means none);
        SGE's default, 75000, when it cannot be read."""
        if self._max_array is None:
            from .pilot_limits import parse_qconf

            try:
                found = parse_qconf(self.command(["qconf", "-sconf"], retries=1),
                                    "max_aj_tasks")
            except SubmitError as exc:
                log.info("max_aj_tasks unknown (%s); using 75000", exc)
                found = 75000
            self._max_array = int(min(found, 1 << 31))
        return self._max_array

    # -- status hooks -------------------------------------------------------------------------
    def queue(self) -> list[QueueEntry]:
        return sge.parse_queue(self.command(sge.status_argv(self.user)), NAME_PREFIX)

    def stuck(self, entry: QueueEntry) -> bool:
        """Error state (Eqw) never clears by itself: the job is failed and deleted."""
        return "E" in entry.state_code and "d" not in entry.state_code

    def accounted(self, gone: Sequence[JobRef]) -> dict[str, JobStatus]:
        """A bounded number of `qacct -j` per poll, only for jobs that left no result."""
        out: dict[str, JobStatus] = {}
        budget = self.qacct_per_poll if self.use_qacct else 0
        for ref in gone:
            if not ref.job_id:
                continue
            if ref.job_id in self._qacct:
                out[ref.job_id] = self._qacct[ref.job_id]
            elif budget > 0 and not (Path(ref.attempt_dir) / protocol.RESULT).exists():
                budget -= 1
                found = self._ask_qacct(ref.job_id)
                if found is not None:
                    out[ref.job_id] = found
        return out

    def _ask_qacct(self, job_id: str) -> JobStatus | None:
        try:
            found = sge.parse_qacct(self.command(sge.qacct_argv(job_id), retries=0))
        except SubmitError:  # not (yet) in the accounting file, or no qacct here
            return None
        if found is not None:
            self._qacct[job_id] = found
        return found

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return sge.cancel_argv(job_ids)

    def cancel_ids(self, job_ids: Sequence[str]) -> None:
        """Pending members of dispatcher groups led by these ids go with them."""
        ids = list(job_ids)
        try:
            leaders = set(ids)
            ids += [e.job_id for e in self.queue() if e.status.state is JobState.PENDING
                    and e.name.rpartition(SIBLING)[2] in leaders and SIBLING in e.name]
        except SubmitError as exc:
            log.info("qstat before qdel failed: %s", exc)
        super().cancel_ids(ids)

    # -- the dispatcher as SGE jobs -----------------------------------------------------------
    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """Queue a dispatcher group (see the module docstring); returns the leader's id."""
        launch = self.dispatcher_launch(name, log_dir)
        path = log_dir / "dispatcher.sh"
        self.write_script(path, self.job_script(launch, list(argv), log_dir, watchdog=False))
        start = time.time() + delay if delay > 0 else None
        watched = list(dict.fromkeys(after_any))[:self.watchers]
        qsub = [sge.submit_argv(str(path), hold=[j], start_at=start) for j in watched[1:]]
        if len(set(after_any)) > len(watched):
            qsub.append(sge.submit_argv(str(path), start_at=time.time() + self.max_wait))
        leader = sge.parse_submit(self.command(
            sge.submit_argv(str(path), hold=watched[:1], start_at=start)))[0]
        for argv_ in qsub:  # siblings: `-N` on the command line overrides the script's
            try:
                self.command([*argv_[:2], "-N", f"{name}{SIBLING}{leader}", *argv_[2:]])
            except SubmitError as exc:  # the leader alone still ends up running
                log.warning("could not queue a dispatcher sibling: %s", exc)
        return leader

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        entries = [e for e in self.queue()
                   if e.name == name or e.name.startswith(name + SIBLING)]
        waiting = {e.job_id for e in entries
                   if e.name == name and e.status.state is JobState.PENDING}
        out = []
        for e in entries:
            leader = e.name[len(name) + 1:] if e.name != name else e.job_id
            out.append((leader if leader in waiting else e.job_id, e.status.state))
        return out
