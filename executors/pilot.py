"""PilotExecutor: a batch site with `packing:`, many short activities in few allocations.

The site resolver builds this executor instead of the scheduler's own for a profile with a
`packing:` block (akoflow/sites.py); it wraps that scheduler's adapter. Activities a pilot can
hold (pilot_config.Packing.holds) wait in the workflow's backlog and go to the queue of a
pilot with room (pilot_fleet.py); the rest go out as the adapter's ordinary jobs, held while
the site's job limits leave no room (pilot_jobs.py). Allocations are the adapter's
dispatcher jobs sized by the packing block: the chained dispatcher is itself the first
allocation (dispatch/packing.py leads from inside it), and more are queued, one at a time,
while work waits with every pilot full, up to `max_allocations`.

The dispatcher stays the only writer of the manifest: job ids of packed attempts are their
attempt directories (known before submission, like the local executor's), and everything
pilots do comes back as files. Scheduler listings are shared and rationed (pilot_jobs.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.port import (
    DispatcherHost,
    Executor,
    ExecutorError,
    InProcessRunner,
    JobRef,
    JobState,
    JobStatus,
    Node,
    SubmitError,
    TaskLaunch,
    executor_class,
    protocol,
)
from akoflow.port.records import AttemptOutcome

from . import pilot_files as pf
from . import pilot_grow as grow
from . import pilot_serve
from .base import BatchExecutor
from .batch_commands import over_limit
from .local_groups import claim_for_cancel
from .pilot_agent import launch_of
from .pilot_config import Packing
from .pilot_fleet import Fleet, Waiting
from .pilot_grow import Packed
from .pilot_here import Agents, started_here
from .pilot_jobs import ACTIVE, HeldJobs, SchedulerView
from .pilot_limits import Limits, cluster_limits, profile_limits

log = logging.getLogger(__name__)


class PilotExecutor(Executor, InProcessRunner, DispatcherHost):
    """In-process for the dispatcher (it hands packed attempts to pilots and reads their
    outcomes from the pilots' events) and a host of dispatcher jobs (the allocations)."""

    kind = "pilot"
    bounded = False  # pilots hold a backlog of their own: the dispatcher claims all ready
    prefetch = 0.0
    hosts_dispatcher = True  # (as its scheduler's adapter says, once built)
    chains_after_ok = False

    def __init__(self, site: str, config: Mapping[str, Any]) -> None:
        super().__init__(site, config)
        self.pack = Packing.of(config.get("packing") or {}, site)
        inner = str(config.get("executor"))
        cls = executor_class(inner)
        if not issubclass(cls, BatchExecutor):
            raise ExecutorError(f"site {site}: packing needs a batch scheduler (slurm, sge, "
                                f"pbs, lsf, flux), not {inner}")
        allocation = self.pack.allocation(inner, config.get("dispatcher") or {})
        self.batch: BatchExecutor = cls(site, {**config, "dispatcher": allocation})
        self.hosts_dispatcher = self.batch.hosts_dispatcher
        self.python = str(config["python"]) if config.get("python") else None
        self.workflows: dict[Path, Packed] = {}
        self.agents = Agents()
        self.lead_started = 0.0
        self._limits: Limits | None = None
        self._dispatching = False  # this process dispatches (polls), not just cancels

    # -- per workflow -------------------------------------------------------------------------
    def _wf(self, run_dir: Path) -> Packed:
        w = self.workflows.get(run_dir)
        if w is None:
            directory = pf.pilots_dir(run_dir)
            directory.mkdir(parents=True, exist_ok=True)
            view = SchedulerView(self.batch, directory, self.pack.status_interval,
                                 self.limits())
            wf = run_dir.name.rsplit("-", 2)[-2] if run_dir.name.count("-") >= 2 else "0"
            w = self.workflows[run_dir] = Packed(
                run_dir, Fleet(run_dir, prefetch=self.pack.prefetch, margin=self.pack.margin),
                view, HeldJobs(self.batch, view, directory,
                               lambda: grow.spare(self.workflows[run_dir])),
                f"akoflow.{wf}.pilot.{run_dir.name}")
        return w

    def limits(self) -> Limits:
        if self._limits is None:
            self._limits = profile_limits(self.config.get("packing") or {}).tighter(
                cluster_limits(self.batch))
        return self._limits

    def _tick(self, w: Packed) -> bool:
        """Read the pilots, take a listing when due and something waits on the scheduler,
        feed the queues, ask for allocations, submit held jobs; True if something ended."""
        ended = w.fleet.refresh()
        if w.view.due() and (w.fleet.busy() or w.held.held or w.held.ids or grow.asked(w)):
            before = w.view.now.ts
            if w.view.refresh() and w.view.now.ts != before:
                self._judge_allocations(w)
        w.fleet.feed()
        for adir in w.fleet.misfits():
            self._hold(w, Path(adir))
        grow.step(w, self.pack, self.batch, self._ask)
        w.held.flush()
        return ended or bool(w.fleet.reports or w.fleet.changes)

    def _judge_allocations(self, w: Packed) -> None:
        """Pilots whose allocation the fresh listing no longer shows running are over."""
        running = {e.job_id for e in w.view.entries() if e.status.state in ACTIVE}
        running |= set(w.view.now.since)
        jobs = {p.job for p in w.fleet.pilots.values() if not p.gone}
        w.fleet.allocations_over({j for j in jobs if j not in running})

    def _ask(self, w: Packed) -> None:
        w.asked_at = time.time()
        argv = [*self._akoflow(), "pilot", "--run-dir", str(w.run_dir), "--site", self.site,
                "--spawn"]
        try:
            job = self.batch.submit_dispatcher(w.name, argv, after_any=[], delay=0,
                                               log_dir=pf.pilots_dir(w.run_dir) / "logs")
        except SubmitError as exc:
            if over_limit(str(exc)):
                w.asked_at = time.time() + w.view.interval
            log.warning("no new allocation for now: %s", exc)
            return
        w.view.submitted([job], w.name)
        log.info("asked for allocation %s (%d waiting)", job, len(w.fleet.backlog))

    def headroom(self, run_dir: Path) -> float:
        return self._wf(run_dir).view.headroom()

    def _akoflow(self) -> list[str]:
        from akoflow.port import akoflow_argv

        return akoflow_argv(self.python)

    # -- the Executor port --------------------------------------------------------------------
    def planned_job_id(self, launch: TaskLaunch) -> str:
        return str(launch.attempt_dir)

    def task_wrapper(self, launch: TaskLaunch) -> list[str]:
        return self.batch.task_wrapper(launch)

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        if not launches:
            return []
        self._dispatching = True
        w = self._wf(launches[0].run_dir)
        packed = [ln for ln in launches if self.pack.holds(ln.resources, self.batch.defaults)]
        ordinary = [ln for ln in launches if ln not in packed]
        for ln in ordinary:  # a bad request fails its batch before anything is queued
            job = replace(ln, resources=self.batch.with_defaults(ln.resources))
            self.batch.job_script(job, self.batch.worker_argv(ln), ln.attempt_dir)
        ids = w.held.submit(ordinary) if ordinary else {}
        w.fleet.add([Waiting.of(str(ln.attempt_dir), ln.resources) for ln in packed])
        self._tick(w)
        return [ids.get(str(ln.attempt_dir), str(ln.attempt_dir)) for ln in launches]

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        self._dispatching = True
        out: dict[str, JobStatus] = {}
        by_wf: dict[Path, list[JobRef]] = {}
        for ref in jobs:
            by_wf.setdefault(pf.run_dir_of(ref.attempt_dir), []).append(ref)
        for run_dir, refs in by_wf.items():
            w = self._wf(run_dir)
            self._tick(w)
            fresh, w.polled_at = w.view.now.ts > w.polled_at, w.view.now.ts
            gone: list[JobRef] = []
            for ref in refs:
                st = self._status(w, ref, fresh, gone)
                if st is not None:
                    out[ref.job_name] = st
            if gone:
                accounted = self.batch.accounted(gone)
                for ref in gone:
                    out[ref.job_name] = accounted.get(ref.job_id or "") or JobStatus(
                        JobState.GONE)
        return out

    def _status(self, w: Packed, ref: JobRef, fresh: bool, gone: list[JobRef]
                ) -> JobStatus | None:
        adir = ref.attempt_dir
        job = w.held.ids.get(adir) if ref.job_id in (None, adir) else ref.job_id
        if job is None:  # packed, or an ordinary launch still held
            if adir in w.held.held:
                return JobStatus(JobState.PENDING)
            if adir in w.held.failed:
                return w.held.failed.pop(adir)
            st = w.fleet.changes.pop(adir, None) or w.fleet.status(adir)
            return st if st is not None or adir in w.fleet.reports else self._unknown(w, ref)
        if not fresh:
            return None  # between listings: the dispatcher reads its result.json
        state = w.view.state(self.batch.canonical(job))
        if state is None:
            gone.append(JobRef(job, ref.job_name, adir, ref.submitted_at))
            return None
        entry = next((e for e in w.view.entries() if e.job_id == job), None)
        return entry.status if entry is not None else JobStatus(state)

    def _unknown(self, w: Packed, ref: JobRef) -> JobStatus:
        """An attempt this process never saw (its dispatcher died between the claim and
        the queue): judged by its files, then waiting again as it was meant to."""
        adir = Path(ref.attempt_dir)
        if not (adir / protocol.TASK_SH).exists():
            return JobStatus(JobState.MISSING, message="attempt was never prepared")
        if (adir / protocol.PID).exists() or (adir / protocol.RESULT).exists():
            return JobStatus(JobState.GONE, message="started outside any known pilot or job")
        launch = launch_of(adir)
        if launch is None:
            return JobStatus(JobState.MISSING, message="unreadable task.sh")
        if self.pack.holds(launch.resources, self.batch.defaults):
            w.fleet.add([Waiting.of(str(adir), launch.resources)])
        else:
            self._hold(w, adir)
        return JobStatus(JobState.PENDING)

    def _hold(self, w: Packed, adir: Path) -> None:
        """An attempt that goes out as an ordinary job after all (its launch rebuilt from
        task.sh's header, its job name as the dispatcher gave it)."""
        launch = launch_of(adir)
        if launch is None:
            w.held.failed[str(adir)] = JobStatus(JobState.FAILED, message="unreadable task.sh")
            return
        name = protocol.job_name(launch.workflow_id, launch.activity, launch.attempt)
        w.held.held[str(adir)] = replace(launch, job_name=name)

    def poll_changes(self) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        for w in self.workflows.values():
            self._tick(w)
            out.update(w.fleet.changes)
            w.fleet.changes.clear()
        return out

    def collect_reports(self) -> dict[str, AttemptOutcome]:
        out: dict[str, AttemptOutcome] = {}
        for w in self.workflows.values():
            out.update(w.fleet.reports)
            w.fleet.reports.clear()
            for adir, job in list(w.held.ids.items()):
                o = protocol.read_result(Path(adir))
                if o is not None:  # an ordinary job's worker wrote its report
                    out[adir] = out[job] = o
                    del w.held.ids[adir]
        return out

    def busy(self) -> bool:
        return any(w.fleet.busy() or w.held.held or w.held.ids for w in self.workflows.values())

    def wait(self, timeout: float) -> None:
        """Feed pilots and watch their events until an attempt ends or `timeout` passes."""
        end = time.time() + timeout
        pause = 0.002
        while True:
            if any(self._tick(w) for w in list(self.workflows.values())):
                return
            now = time.time()
            if now >= end:
                return
            time.sleep(min(pause, end - now))
            pause = min(0.01, pause * 1.5)

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        raw: list[JobRef] = []
        for ref in jobs:
            if not ref.attempt_dir or ref.job_id not in (None, ref.attempt_dir):
                raw.append(ref)
                continue
            w = self._wf(pf.run_dir_of(ref.attempt_dir))
            adir = ref.attempt_dir
            if w.held.held.pop(adir, None) is not None:
                continue
            if adir in w.held.ids:
                raw.append(JobRef(w.held.ids[adir], ref.job_name, adir, ref.submitted_at))
                continue
            w.fleet.refresh()
            claim_for_cancel(Path(adir))  # a queued one can never start after this
            w.fleet.cancel([adir])
        if raw:
            self.batch.cancel(raw)

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        """Nothing to find: every intent has its job id (the attempt directory) before it
        is submitted; one whose task.sh is missing was never submitted."""
        return {}

    def nodes(self) -> list[Node]:
        return self.batch.nodes()

    # -- dispatcher jobs (the chain) ----------------------------------------------------------
    def submit_dispatcher(self, name: str, argv: Sequence[str], *, after_any: Sequence[str],
                          delay: float, log_dir: Path) -> str:
        """A dispatcher link is an allocation of the packing size. It waits for the first
        allocation (or ordinary job) holding in-flight work to end; never over a limit."""
        w = self._wf(log_dir.parent)
        if w.view.headroom() < 1:
            raise SubmitError(f"{self.site}: {w.view.limits.max_submit:g} jobs queued, the "
                              "site's limit: try later", transient=True)
        deps = list(dict.fromkeys(self._job_of(w, j) for j in after_any))
        job = self.batch.submit_dispatcher(name, argv, after_any=[d for d in deps if d],
                                           delay=delay, log_dir=log_dir)
        w.view.submitted([job], name)
        return job

    def _job_of(self, w: Packed, job_id: str) -> str | None:
        if "/" not in job_id:
            return job_id
        if job_id in w.held.ids:
            return w.held.ids[job_id]
        pilot = w.fleet.where.get(job_id)
        return w.fleet.pilots[pilot].job if pilot else None

    def dispatcher_jobs(self, name: str) -> list[tuple[str, JobState]]:
        if len(self.workflows) != 1:
            return self.batch.dispatcher_jobs(name)
        [w] = self.workflows.values()
        if w.view.now.ts == 0.0:
            w.view.refresh(force=True)
        return w.view.named(name)

    def cancel_ids(self, job_ids: Sequence[str]) -> None:
        self.batch.cancel_ids(job_ids)

    # -- the allocation this process runs in (dispatch/packing.py) ----------------------------
    def lead(self, run_dir: Path, job_id: str) -> None:
        """This dispatcher runs inside an allocation of the site: start its agents, so it
        is the workflow's first pilot."""
        w = self._wf(run_dir)
        w.fleet.own_job = job_id
        self.lead_started = started_here()
        self.agents.start(kind=self.batch.kind, python=self.python, run_dir=run_dir,
                          site=self.site, started=self.lead_started, parent=os.getpid(),
                          lead=True)

    def lead_deadline(self) -> float:
        """When this allocation stops taking work (its walltime less a margin)."""
        return self.lead_started + self.pack.time - self.pack.margin

    def lead_alive(self) -> bool:
        return self.agents.alive()

    def work_left(self, run_dir: Path) -> bool:
        w = self._wf(run_dir)
        return bool(w.fleet.backlog or w.fleet.where or w.held.held)

    @property
    def idle_timeout(self) -> float:
        return self.pack.idle_timeout

    def retire(self, run_dir: Path, *, finished: bool) -> None:
        """This dispatcher leaves: its own agents end; when the workflow is over (or has
        nothing left for pilots), the others are told to end and unstarted requests go."""
        self.agents.stop()
        w = self._wf(run_dir)
        if finished or not self.work_left(run_dir):
            w.fleet.stop()
            grow.cancel_asked(w, self.batch)

    def close(self) -> None:
        if self.agents.procs:
            self.agents.stop()
        for run_dir, w in self.workflows.items():
            if self._dispatching and not (w.fleet.busy() or w.held.held or w.held.ids):
                self.retire(run_dir, finished=True)

    # -- the agent side (`akoflow pilot`, inside an allocation): pilot_serve.py -----------
    def serve(self, run_dir: Path, *, index: int = 0, started: float | None = None,
              parent: int | None = None, spawn: bool = False, lead: bool = False) -> int:
        return pilot_serve.serve(self, run_dir, index=index, started=started, parent=parent,
                                 spawn=spawn, lead=lead)
