"""One stateless dispatch cycle: ingest → reconcile → advance → submit → finalize → notify.

Everything a cycle knows comes from the manifest and the attempt directories, so any step can
crash at any line and the next cycle repairs it. Each cycle commits twice, always in this
order: what was observed (ingest and reconcile; advancing PENDING → READY, retries and
skipping descendants happen inside the manifest's completion transaction), then the claims
of step 4, after any jobs queued ahead of a parent that just failed have been withdrawn.
Chaining the next dispatcher job comes after the cycle and is the runner's (runner.py).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from akoflow.dispatch import cache
from akoflow.dispatch.ahead import Lookahead
from akoflow.dispatch.ingest import Lineage, ingest
from akoflow.dispatch.submitting import Batch, Submitter
from akoflow.dispatch.types import (
    ACTIVE,
    CycleReport,
    DispatchConfig,
    Resolver,
    Sites,
    failure_reason,
)
from akoflow.manifest import LiveAttempt, Manifest, Submitted, WorkflowRecord
from akoflow.manifest.states import WORKFLOW_ENDED
from akoflow.port import (
    ALLOCATION_ENDED,
    ENDED_STATES,
    NEVER_SATISFIED,
    AttemptOutcome,
    Executor,
    ExecutorError,
    JobRef,
    JobState,
    JobStatus,
    Reason,
    Status,
    WorkflowStatus,
    in_process,
    protocol,
)

log = logging.getLogger(__name__)
Notifier = Callable[[Manifest, int, float], object]
__all__ = ["Dispatcher", "Notifier", "Resolver"]


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What one look at the executors found about a live attempt."""

    attempt: LiveAttempt
    outcome: AttemptOutcome | None  # the worker's report, when it ended
    state: JobStatus | None  # the scheduler's word, when it gave one


class Dispatcher:
    """Acts on one workflow. Its in-memory view of live attempts is an optimisation that
    is reloaded from the manifest every `reload_every` seconds, never the truth."""

    def __init__(
        self,
        manifest: Manifest,
        wf_id: int,
        resolve: Resolver,
        config: DispatchConfig | None = None,
        notifier: Notifier | None = None,
        reload_every: float = 2.0,
    ) -> None:
        self.m = manifest
        self.wf_id = wf_id
        self.config = config or DispatchConfig()
        self.notifier = notifier
        self.reload_every = reload_every
        self.sites = Sites(resolve)
        self.lineage = Lineage(manifest, wf_id)
        self.live: dict[int, LiveAttempt] = {}
        self.submitter = Submitter(manifest, wf_id, self.sites, self.config, self.live)
        self.lookahead = Lookahead(manifest, wf_id, self.sites, self.config, self.submitter,
                                   self.live)
        self._loaded_at = 0.0
        self._last_poll: dict[str, float] = {}
        self._found: dict[str, dict[str, str]] = {}  # per cycle: site -> lookup result
        self._uses_cache = manifest.uses_cache(wf_id)
        self._wf: WorkflowRecord | None = None

    def cycle(self, *, force_poll: bool = True) -> CycleReport:
        report = CycleReport()
        wf = self._workflow()
        if wf.status == WorkflowStatus.PENDING.value:
            self.m.mark_workflow_started(self.wf_id)
        cancelled = wf.status == WorkflowStatus.CANCELLED.value
        # A cancel from another process: stop at once what this process still holds queued
        # or started since (the workflow's status would end the loop before the next reload).
        full = force_poll or cancelled or time.time() - self._loaded_at >= self.reload_every
        if full:
            self._reload()
        observed = self._observe(full)
        with self.m.transaction():
            self.submitter.record_deferred()
            self.ingest([o for o in observed if o.outcome is not None], report)
            self.reconcile([o for o in observed if o.outcome is None])
        self.advance(report)
        report.submitted = self.submit(wf, report, cancelled)
        self.finalize(report)
        self.notify()
        return report

    # -- 1. ingest ---------------------------------------------------------------------------
    def ingest(self, reported: list[Observed], report: CycleReport) -> None:
        """Apply the workers' reports: each ends its attempt, and advances the workflow in
        the same transaction (step 3)."""
        for o in reported:
            assert o.outcome is not None
            done = ingest(self.m, self.wf_id, o.attempt, o.outcome, self.lineage)
            self.live.pop(o.attempt.attempt_id, None)
            if done is None:
                continue
            report.completions.append(done)
            if self._uses_cache and done.status is Status.FINISHED:
                act = self.m.activity_by_id(done.activity_id)
                if act is not None and act.cache:
                    cache.remember(self.m, self._workflow(), act, o.outcome.files)

    # -- 2. reconcile ------------------------------------------------------------------------
    def reconcile(self, states: list[Observed]) -> None:
        """The schedulers' word on attempts without a report: started, queued, never to
        run, or ended with nothing written (judged by its files; LOST only after a grace)."""
        now = time.time()
        for o in states:
            la, st = o.attempt, o.state
            assert st is not None
            if st.state is JobState.RUNNING and la.status != Status.RUNNING.value:
                self.m.record_started(self.wf_id, la.attempt_id, st.started_at or now, st.node)
                self.live[la.attempt_id] = replace(la, status=Status.RUNNING.value)
            elif st.state is JobState.PENDING and st.message == NEVER_SATISFIED:
                self.lookahead.never_runs(la.attempt_id)
            elif st.state is JobState.PENDING and la.status == Status.SUBMITTING.value:
                self.m.record_submitted(self.wf_id, [Submitted(
                    attempt_id=la.attempt_id, job_id=la.job_id or "", status=Status.QUEUED)])
                self.live[la.attempt_id] = replace(la, status=Status.QUEUED.value)
            elif (st.state in ENDED_STATES or st.state in (JobState.GONE, JobState.MISSING)) \
                    and self._ended_without_result(la, st, self.sites(la.site), now):
                self.live.pop(la.attempt_id, None)

    # -- 3. advance --------------------------------------------------------------------------
    def advance(self, report: CycleReport) -> None:
        """Readiness, retries and skips were settled with each completion (a counter of
        unfinished parents per activity); what is left is for lookahead to hear of them."""
        self.lookahead.settled(report.completions)

    # -- 4. submit ---------------------------------------------------------------------------
    def submit(self, wf: WorkflowRecord, report: CycleReport, cancelled: bool) -> int:
        """Withdraw stranded `afterok` jobs, reuse cached results, claim ready activities
        (one transaction), hand the batches over, then queue children ahead."""
        self.lookahead.withdraw_stale()
        batches: list[Batch] = []
        with self.m.transaction():
            if not cancelled:
                self._reuse_cached(wf, report)
                batches = self.submitter.claim(wf)
        submitted = sum(self.submitter.submit(ex, claims) for ex, claims in batches)
        if not cancelled:
            submitted += self.lookahead.submit_ahead(wf)
        return submitted

    # -- 5. finalize -------------------------------------------------------------------------
    def finalize(self, report: CycleReport) -> None:
        """Settle the workflow once nothing is unfinished (nothing can be over while
        attempts are in flight: the count is skipped then)."""
        final = None if self.live else self.m.finalize_workflow(self.wf_id)
        report.workflow_status = final or self.m.workflow_status(self.wf_id)
        report.finished = report.workflow_status in WORKFLOW_ENDED
        if report.finished:
            self.submitter.flush()
        report.live = len(self.live)

    # -- 6. notify ---------------------------------------------------------------------------
    def notify(self) -> None:
        """Deliver due webhooks within the cycle's time budget; never fails the cycle."""
        if self.notifier is None or not self.m.webhooks_of(self.wf_id):
            return
        try:
            self.notifier(self.m, self.wf_id, self.config.notify_budget)
        except Exception as exc:  # delivery must never stall or break the workflow
            log.warning("webhook delivery failed: %s", exc)

    # -- the live view -----------------------------------------------------------------------
    def _workflow(self) -> WorkflowRecord:
        """The workflow row: its fixed fields are read once, its status every cycle."""
        if self._wf is None:
            self._wf = self.m.get_workflow(self.wf_id, texts=False)
            return self._wf
        return replace(self._wf, status=self.m.workflow_status(self.wf_id))

    def _reload(self) -> None:
        """Read the live attempts again; stop those that left the set behind our back (a
        `cancel` from another process) and may still sit in an executor's queue or run."""
        self.submitter.flush()
        fresh = {la.attempt_id: la for la in self.m.live_attempts(self.wf_id)}
        for aid, la in list(self.live.items()):
            rec = None if aid in fresh else self.m.attempt_by_id(aid)
            if rec is not None and rec.status == Status.CANCELLED.value:
                self.sites(la.site).cancel(
                    [JobRef(la.job_id, la.job_name, la.attempt_dir, la.submitted_at)])
        self.live.clear()
        self.live.update(fresh)
        self._loaded_at = time.time()

    def _reuse_cached(self, wf: WorkflowRecord, report: CycleReport) -> None:
        """Finish ready activities from the cache; a reuse can make children ready that are
        cached too, so repeat until nothing more is reused (before anything is claimed)."""
        reused = self._uses_cache
        while reused:
            reused = False
            for act in self.m.ready_cacheable(self.wf_id, self.config.submit_limit):
                if cache.reuse(self.m, wf, act):
                    report.cached += 1
                    reused = True

    def _observe(self, full: bool) -> list[Observed]:
        """Ask each site once: changes (in-process executors) or one batched status query,
        with the reports its workers left."""
        by_site: dict[str, list[LiveAttempt]] = defaultdict(list)
        self._found = {}
        for la in self.live.values():
            by_site[la.site].append(la)
        out: list[Observed] = []
        now = time.time()
        for site, group in by_site.items():
            ex = self.sites(site)
            runner = in_process(ex)
            statuses: dict[str, JobStatus] = {}
            if runner is not None and not full:
                changes = runner.poll_changes()
                by_job = {la.job_id or la.attempt_dir: la for la in group}
                statuses = {by_job[j].job_name: st for j, st in changes.items() if j in by_job}
                reports = runner.collect_reports()
                group = [by_job[j] for j in set(changes) | set(reports) if j in by_job]
            elif full or now - self._last_poll.get(site, 0.0) >= ex.min_poll_interval:
                self._last_poll[site] = now
                refs = [JobRef(la.job_id, la.job_name, la.attempt_dir, la.submitted_at)
                        for la in group]
                try:
                    statuses = ex.poll(refs)
                except ExecutorError as exc:
                    log.warning("status query of %s failed (treated as unknown): %s", site, exc)
                reports = runner.collect_reports() if runner is not None else {}
            else:
                reports = {}
            for la in group:
                st = statuses.get(la.job_name)
                outcome = reports.pop(la.job_id or la.attempt_dir, None)
                if outcome is None and (st is None or st.state not in ACTIVE):
                    outcome = protocol.read_result(Path(la.attempt_dir))
                if outcome is not None or st is not None:
                    out.append(Observed(attempt=la, outcome=outcome, state=st))
        return out

    def _lookup(self, ex: Executor, la: LiveAttempt) -> str | None:
        """The job id of an intent whose submission went unrecorded: one lookup per
        site and cycle for all such intents (a crash mid-array leaves hundreds)."""
        found = self._found.get(la.site)
        if found is None:
            names = [x.job_name for x in self.live.values() if x.site == la.site
                     and x.status == Status.SUBMITTING.value and not x.job_id]
            found = self._found[la.site] = ex.lookup(names or [la.job_name])
        return found.get(la.job_name)

    def _ended_without_result(
        self, la: LiveAttempt, st: JobStatus, ex: Executor, now: float
    ) -> bool:
        """Settle a job that ended with no worker report; False while still in doubt."""
        adir = Path(la.attempt_dir)
        if st.message == ALLOCATION_ENDED and st.exit_code is None:
            # A packed task whose allocation ended under it (dispatch/packing.py): one that
            # never started is withdrawn, one that did runs again; neither uses a retry.
            if st.state is JobState.CANCELLED:
                self.m.withdraw_attempt(self.wf_id, la.attempt_id, st.message)
            else:
                self.m.requeue_attempt(self.wf_id, la.attempt_id, st.message)
            return True
        if la.status == Status.SUBMITTING.value and (
                not la.job_id or st.state is JobState.MISSING):
            # The dispatcher died between recording the intent and the executor taking it:
            # find the job by name, or know it was never submitted (resubmit, no retry used).
            found = self._lookup(ex, la)
            if found is None:
                self.m.abandon_attempt(self.wf_id, la.attempt_id,
                                       "intent never reached the executor; resubmitting")
                return True
            self.m.record_submitted(self.wf_id, [Submitted(
                attempt_id=la.attempt_id, job_id=found, status=Status.QUEUED)])
            return False
        if st.exit_code is not None:
            # The task recorded its exit code but no worker report exists (its dispatcher
            # died first): finish it from what is on disk, with partial provenance.
            outcome = AttemptOutcome(
                exit_code=st.exit_code,
                reason=None if st.exit_code == 0 else failure_reason(st.state),
                started_at=la.started_at, finished_at=now, node=st.node,
                message="recovered from the exit code file; metrics incomplete")
            protocol.attach_streams(adir, outcome)
            ingest(self.m, self.wf_id, la, outcome, self.lineage)
            return True
        if st.state not in (JobState.GONE, JobState.MISSING, JobState.COMPLETED):
            self.m.fail_activity(self.wf_id, la.attempt_id, failure_reason(st.state),
                                 st.message or f"scheduler reports {st.state.value}")
            return True
        if now - la.submitted_at >= self.config.lost_grace or (
                st.state is JobState.GONE and (adir / protocol.PID).exists()):
            self.m.fail_activity(self.wf_id, la.attempt_id, Reason.LOST.value,
                                 st.message or "job vanished without a result")
            return True
        return False

    def close(self) -> None:
        self.submitter.flush()
        self.sites.close()
