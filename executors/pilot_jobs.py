"""A packed site's view of its scheduler: one queue listing at a time, and the jobs it counts.

Packing exists because schedulers are slow and capped, so what a packed workflow asks of
its scheduler is kept small: at most one queue listing per `status_interval` (30 s by
default) for the whole workflow, shared by every dispatcher process of it through
`pilots/listing.json` (the listing, when it was taken, and the jobs submitted or cancelled
since). It answers for pilot allocations, ordinary jobs, the dispatcher chain and the
headroom under MaxSubmitJobs / MaxJobs (executors/pilot_limits.py). Pilots say more about
themselves through their files than a listing would; the listing is for what files cannot
tell: a job that is pending, or an allocation that died without a word.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from akoflow.port import JobState, JobStatus, SpecError, SubmitError, TaskLaunch

from .base import NAME_PREFIX, BatchExecutor
from .batch_commands import over_limit
from .batch_script import QueueEntry
from .pilot_files import Tail, append
from .pilot_limits import Limits

log = logging.getLogger(__name__)
LISTING = "listing.json"
ACTIVE = frozenset({JobState.PENDING, JobState.RUNNING})


@dataclass
class Listing:
    ts: float = 0.0  # 0: never listed
    entries: list[QueueEntry] = field(default_factory=list)
    # job id -> (name, when): submitted after the listing was taken
    since: dict[str, tuple[str, float]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # cancelled after

    def to_json(self) -> str:
        rows = [[e.job_id, e.name, e.status.state.value, e.status.node, e.status.started_at,
                 e.status.message, e.state_code] for e in self.entries]
        since = {j: [n, t] for j, (n, t) in self.since.items()}
        return json.dumps({"ts": self.ts, "entries": rows, "since": since,
                           "gone": sorted(self.gone)}, separators=(",", ":"))

    @classmethod
    def of(cls, text: str) -> Listing:
        data = json.loads(text)
        entries = [QueueEntry(r[0], r[1], JobStatus(JobState(r[2]), node=r[3], started_at=r[4],
                                                    message=r[5]), r[6])
                   for r in data.get("entries") or []]
        since = {str(j): (str(v[0]), float(v[1])) for j, v in (data.get("since") or {}).items()}
        return cls(float(data.get("ts") or 0.0), entries, since, set(data.get("gone") or []))


class SchedulerView:
    """The listing of one workflow's packed site, with its age limit and job counts."""

    def __init__(self, batch: BatchExecutor, directory: Path, interval: float,
                 limits: Limits) -> None:
        self.batch = batch
        self.path = directory / LISTING
        self.interval = interval
        self.limits = limits
        self.calls = 0  # listings this process took
        self.now = self._read()

    def _read(self) -> Listing:
        try:
            return Listing.of(self.path.read_text())
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return Listing()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{LISTING}.{os.getpid()}.tmp")
        tmp.write_text(self.now.to_json())
        os.replace(tmp, self.path)

    # -- the listing --------------------------------------------------------------------------
    def due(self) -> bool:
        return time.time() - self.now.ts >= self.interval

    def refresh(self, *, force: bool = False) -> bool:
        """Take a new listing if the last is older than the interval (or never was);
        whether one was taken. A failed listing keeps the old one (unknown is not gone)."""
        if not (force or self.due()):
            return False
        started = time.time()
        try:
            entries = self.batch.queue()
        except (SubmitError, ValueError) as exc:
            log.warning("%s listing failed; keeping the last one: %s", self.batch.kind, exc)
            return False
        finally:
            self.calls += 1
        listed = {e.job_id for e in entries}
        # Submitted a moment before the listing and not in it yet: still counted as queued
        # (a job that ended and left the queue meanwhile is dropped with the next one).
        since = {j: (n, t) for j, (n, t) in self.now.since.items()
                 if j not in listed and j not in self.now.gone and started - t < 5.0}
        self.now = Listing(started, entries, since, set())
        self._write()
        return True

    def submitted(self, job_ids: list[str], name: str) -> None:
        if not job_ids:
            return
        now = time.time()
        for j in job_ids:
            self.now.since[j] = (name, now)
        self._write()

    def cancelled(self, job_ids: list[str]) -> None:
        if job_ids:
            self.now.gone |= set(job_ids)
            self._write()

    # -- what it says -------------------------------------------------------------------------
    def state(self, job_id: str) -> JobState | None:
        """A job's state: PENDING if submitted since the listing, None if not listed."""
        if job_id in self.now.gone:
            return JobState.CANCELLED
        for e in self.now.entries:
            if e.job_id == job_id:
                return e.status.state
        return JobState.PENDING if job_id in self.now.since else None

    def entries(self) -> list[QueueEntry]:
        return self.now.entries

    def named(self, name: str) -> list[tuple[str, JobState]]:
        """Jobs called `name` that are queued or running, as far as this view knows."""
        out = [(e.job_id, e.status.state) for e in self.now.entries
               if e.name == name and e.job_id not in self.now.gone]
        out += [(j, JobState.PENDING) for j, (n, _) in self.now.since.items()
                if n == name and j not in self.now.gone]
        return out

    def active(self) -> int:
        """akoflow's jobs (array elements one by one) queued or running, with those
        submitted since the listing; cancelled ones no longer count."""
        listed = sum(1 for e in self.now.entries
                     if e.status.state in ACTIVE and e.job_id not in self.now.gone)
        return listed + sum(1 for j in self.now.since if j not in self.now.gone)

    def running(self) -> int:
        return sum(1 for e in self.now.entries
                   if e.status.state is JobState.RUNNING and e.job_id not in self.now.gone)

    def headroom(self) -> float:
        """How many more jobs may be queued now; infinite without limits."""
        if self.limits.max_submit == math.inf:
            return math.inf
        if self.now.ts == 0.0:
            self.refresh(force=True)  # with a limit, never guess what is queued
        return max(0.0, self.limits.max_submit - self.active())

    def may_run_more(self) -> bool:
        return self.running() < self.limits.max_jobs


class HeldJobs:
    """Ordinary jobs of a packed site (activities no pilot can run): submitted at once
    while the site's job limits allow, otherwise held, in order, until they do. A held
    launch is known to the manifest by its attempt directory; its scheduler job id, once
    it has one, is kept in `pilots/jobs` for dispatchers that come later."""

    def __init__(self, batch: BatchExecutor, view: SchedulerView, directory: Path,
                 spare: Callable[[], float]) -> None:
        self.batch = batch
        self.view = view
        self.spare = spare  # jobs that may be queued now (the chain's share kept)
        self.path = directory / "jobs"
        self.held: dict[str, TaskLaunch] = {}
        self.ids: dict[str, str] = {}  # attempt dir -> scheduler job id
        self.failed: dict[str, JobStatus] = {}  # refused for good after being held
        self.blocked_until = 0.0
        for line in Tail(self.path).lines():
            adir, _, job = line.partition("\t")
            if job:
                self.ids[adir] = job

    def submit(self, launches: list[TaskLaunch]) -> dict[str, str]:
        """Submit what the limits allow now; the job id of each launch as the manifest
        will know it (the attempt directory for one that waits)."""
        for ln in launches:
            self.held[str(ln.attempt_dir)] = ln
        self.flush(raise_errors=True)
        return {str(ln.attempt_dir): self.ids.get(str(ln.attempt_dir), str(ln.attempt_dir))
                for ln in launches}

    def flush(self, *, raise_errors: bool = False) -> None:
        if not self.held or time.time() < self.blocked_until:
            return
        room = self.spare()
        take = list(self.held.values())[:len(self.held) if room == math.inf else int(room)]
        if not take:
            return
        try:
            ids = self.batch.submit(take)
        except SubmitError as exc:
            if exc.transient:  # over a limit, or the controller is busy: later
                self.blocked_until = time.time() + (
                    self.view.interval if over_limit(str(exc)) else 5.0)
                log.info("ordinary jobs held: %s", exc)
                return
            if raise_errors:
                raise
            self._fail(take, str(exc))
            return
        except SpecError as exc:
            if raise_errors:
                raise
            self._fail(take, str(exc))
            return
        for ln, job in zip(take, ids):
            self.held.pop(str(ln.attempt_dir), None)
            self.ids[str(ln.attempt_dir)] = job
        append(self.path, [f"{ln.attempt_dir}\t{j}" for ln, j in zip(take, ids)])
        self.view.submitted(ids, NAME_PREFIX)

    def _fail(self, launches: list[TaskLaunch], why: str) -> None:
        for ln in launches:
            self.held.pop(str(ln.attempt_dir), None)
            self.failed[str(ln.attempt_dir)] = JobStatus(
                JobState.FAILED, message=f"the scheduler refused it: {why}"[:300])
