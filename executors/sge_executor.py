"""SgeExecutor: Son of Grid Engine's pure pieces (executors/sge.py) run through a BatchExecutor.

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

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.dispatch import protocol
from akoflow.executor import JobRef, JobState, JobStatus, SubmitError, TaskLaunch

from . import sge
from .base import BatchExecutor, Transport

log = logging.getLogger(__name__)
NAME_PREFIX = "akoflow."
ARRAY_TAG = ".array."  # array job names: akoflow.<workflow id>.array.<digest>
SIBLING = "+"  # `<dispatcher name>+<leader id>`: a member of a dispatcher group


class SgeExecutor(BatchExecutor):
    kind = "sge"
    site_keys = frozenset({
        "array_throttle", "arrays", "dispatcher_max_wait", "dispatcher_watchers", "gpu_resource",
        "memory_resource", "parallel_environment", "qacct", "qacct_per_poll", "time_limit_grace",
        "user",
    })
    hosts_dispatcher = True

    def __init__(self, site: str, config: Mapping[str, Any],
                 transport: Transport | None = None) -> None:
        super().__init__(site, config, transport)
        self.user = config.get("user")
        mem = config.get("memory_resource", "h_vmem")
        self.options = sge.SiteOptions(
            parallel_environment=config.get("parallel_environment") or None,
            memory_resources=tuple(str(m) for m in ([mem] if isinstance(mem, str) else
                                                    mem or [])),
            gpu_resource=str(config.get("gpu_resource", "gpu")),
            time_limit_grace=float(config.get("time_limit_grace", 30)))
        self.use_qacct = bool(config.get("qacct", True))
        self.qacct_per_poll = int(config.get("qacct_per_poll", 4))
        self.arrays = bool(config.get("arrays", True))
        throttle = config.get("array_throttle")
        self.throttle = int(throttle) if throttle else None
        self.watchers = max(1, int(config.get("dispatcher_watchers", 8)))
        self.max_wait = float(config.get("dispatcher_max_wait", 300))
        self._accounted: dict[str, JobStatus] = {}

    def job_env(self) -> dict[str, str]:
        """Exported in every job script: SGE jobs do not inherit the submitter's environment
        (Slurm's do), so akoflow's own settings (AKOFLOW_HOME, ...) are passed on by name."""
        own = {k: v for k, v in os.environ.items() if k.startswith("AKOFLOW_")}
        return {**own, **self.env}

    def _render(self, ln: TaskLaunch, worker: list[str], log_dir: Path, **kw: Any) -> str:
        return sge.render_script(ln, worker_argv=worker, modules=self.modules,
                                 env=self.job_env(), log_dir=str(log_dir), site=self.options,
                                 **kw)

    # -- tasks ------------------------------------------------------------------------------
    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """One qsub per launch, or one `-t 1-N` array per group of same-shaped launches."""
        ids: dict[int, str] = {}
        try:
            for group in _groups(launches):
                if len(group) > 1 and self.arrays:
                    ids.update(zip(group, self._submit_array([launches[i] for i in group])))
                    continue
                for i in group:
                    ids[i] = self._submit_one(launches[i])
        except SubmitError:
            if ids:  # all or nothing: the dispatcher resubmits the whole batch
                self.cancel([JobRef(j, "", "", 0.0) for j in ids.values()])
            raise
        return [ids[i] for i in range(len(launches))]

    def _submit_one(self, ln: TaskLaunch) -> str:
        job = replace(ln, resources=self.with_defaults(ln.resources))
        path = ln.attempt_dir / "job.sh"
        path.write_text(self._render(job, self.worker_argv(ln), ln.attempt_dir))
        return sge.parse_submit(self.command(sge.submit_argv(str(path), hold=ln.after_ok)))[0]

    def _submit_array(self, launches: Sequence[TaskLaunch]) -> list[str]:
        """Launches of one shape as an array `akoflow.<wf>.array.<digest>`; task N runs the
        attempt on line N of its tasks file (`<attempt dir><TAB><job name>`)."""
        first = launches[0]
        digest = hashlib.sha1("\n".join(ln.job_name for ln in launches).encode()).hexdigest()
        name = f"{NAME_PREFIX}{first.workflow_id}{ARRAY_TAG}{digest[:12]}"
        adir = first.run_dir / "arrays"
        adir.mkdir(parents=True, exist_ok=True)
        tasks = adir / f"{name}.tasks"
        tasks.write_text("".join(f"{ln.attempt_dir}\t{ln.job_name}\n" for ln in launches))
        job = replace(first, job_name=name, resources=self.with_defaults(first.resources))
        path = adir / f"{name}.sh"
        path.write_text(self._render(job, self.worker_argv(), adir, array_size=len(launches),
                                     tasks_file=str(tasks)))
        out = self.command(sge.submit_argv(str(path), hold=first.after_ok,
                                           array_size=len(launches), throttle=self.throttle))
        ids = sge.parse_submit(out)
        if len(ids) != len(launches):
            self.cancel([JobRef(ids[0].split(".")[0], "", "", 0.0)])
            raise SubmitError(f"qsub made {len(ids)} array tasks for {len(launches)} launches",
                              transient=False, stdout=out)
        return ids

    def _queue(self) -> list[sge.QueueEntry]:
        return sge.parse_queue(self.command(sge.status_argv(self.user)), NAME_PREFIX)

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        try:
            queue = {e.job_id: e for e in self._queue()}
        except SubmitError as exc:
            log.warning("qstat failed; every job's state is unknown: %s", exc)
            return {j.job_name: JobStatus(JobState.UNKNOWN, message=str(exc)) for j in jobs}
        out: dict[str, JobStatus] = {}
        broken: list[str] = []
        budget = self.qacct_per_poll if self.use_qacct else 0
        for ref in jobs:
            entry = queue.get(ref.job_id or "")
            if entry is not None:
                out[ref.job_name] = entry.status
                if "E" in entry.state_code and "d" not in entry.state_code:
                    broken.append(entry.job_id)
                continue
            st = JobStatus(JobState.GONE)
            if ref.job_id and ref.job_id in self._accounted:
                st = self._accounted[ref.job_id]
            elif ref.job_id and budget > 0 and not (Path(ref.attempt_dir)
                                                    / protocol.RESULT).exists():
                budget -= 1
                st = self._qacct(ref.job_id) or st
            out[ref.job_name] = st
        if broken:  # error state never clears by itself: fail and remove those jobs
            self.cancel([JobRef(j, "", "", 0.0) for j in broken])
        return out

    def _qacct(self, job_id: str) -> JobStatus | None:
        try:
            found = sge.parse_qacct(self.command(sge.qacct_argv(job_id), retries=0))
        except SubmitError:  # not (yet) in the accounting file, or no qacct here
            return None
        if found is not None:
            self._accounted[job_id] = found
        return found

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = list(dict.fromkeys(j.job_id for j in jobs if j.job_id))
        if not ids:
            return
        try:  # pending members of dispatcher groups led by these ids go with them
            leaders = set(ids)
            ids += [e.job_id for e in self._queue() if e.status.state is JobState.PENDING
                    and e.name.rpartition(SIBLING)[2] in leaders and SIBLING in e.name]
        except SubmitError as exc:
            log.info("qstat before qdel failed: %s", exc)
        try:
            self.command(sge.cancel_argv(ids), retries=1)
        except SubmitError as exc:  # some had already ended: the others are still deleted
            log.info("qdel: %s", exc)

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        wanted = set(job_names)
        return {e.name: e.job_id for e in self._queue() if e.name in wanted}

    # -- the dispatcher as SGE jobs ---------------------------------------------------------
    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """Queue a dispatcher group (see the module docstring); returns the leader's id."""
        launch = self.dispatcher_launch(name, log_dir)
        path = log_dir / "dispatcher.sh"
        path.write_text(self._render(launch, list(argv), log_dir, watchdog=False))
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
        entries = [e for e in self._queue()
                   if e.name == name or e.name.startswith(name + SIBLING)]
        waiting = {e.job_id for e in entries
                   if e.name == name and e.status.state is JobState.PENDING}
        out = []
        for e in entries:
            leader = e.name[len(name) + 1:] if e.name != name else e.job_id
            out.append((leader if leader in waiting else e.job_id, e.status.state))
        return out


def _groups(launches: Sequence[TaskLaunch]) -> list[list[int]]:
    """Indices of launches that can share one array script, in submission order."""
    groups: dict[str, list[int]] = {}
    for i, ln in enumerate(launches):
        key = json.dumps([ln.resources, ln.node, sorted(ln.after_ok), str(ln.run_dir)],
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    return list(groups.values())
