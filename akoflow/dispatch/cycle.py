"""One stateless dispatch cycle: ingest → reconcile → advance → submit → finalize → notify.

Everything a cycle knows comes from the manifest and the attempt directories, so any step can
crash at any line and the next cycle repairs it. Advancing (PENDING → READY, retries,
skipping descendants) happens inside the manifest's completion transaction.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from akoflow.dispatch import cache, protocol
from akoflow.dispatch import declared as declared_files
from akoflow.dispatch.ahead import LookaheadMixin
from akoflow.dispatch.ingest import Lineage, ingest
from akoflow.dispatch.placing import Placer
from akoflow.dispatch.types import (
    ACTIVE,
    Claim,
    CycleReport,
    DispatchConfig,
    failure_reason,
    with_status,
)
from akoflow.executor import (
    ENDED_STATES,
    NEVER_SATISFIED,
    Executor,
    ExecutorError,
    JobRef,
    JobState,
    JobStatus,
    SpecError,
    SubmitError,
    TaskLaunch,
)
from akoflow.manifest import (
    ActivityRecord,
    AttemptOutcome,
    Intent,
    LiveAttempt,
    Manifest,
    Reason,
    Status,
    Submitted,
    WorkflowRecord,
    WorkflowStatus,
)
from akoflow.manifest.states import WORKFLOW_ENDED
from akoflow.scheduling.placement import Decision
from akoflow.spec.names import ident

log = logging.getLogger(__name__)
MAX_SUBMIT_BACKOFF = 60.0  # seconds
Resolver = Callable[[str], Executor]
Notifier = Callable[[Manifest, int, float], object]


class Dispatcher(LookaheadMixin):
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
        self.resolve = resolve
        self.config = config or DispatchConfig()
        self.notifier = notifier
        self.lineage = Lineage(manifest, wf_id)
        self.executors: dict[str, Executor] = {}
        self.reload_every = reload_every
        self._live: dict[int, LiveAttempt] = {}
        self._loaded_at = 0.0
        self._last_poll: dict[str, float] = {}
        self._found: dict[str, dict[str, str]] = {}  # per cycle: executor -> lookup result
        self.placer = Placer(manifest, wf_id, self.config.submit_limit)
        self._check_ahead = True  # look for stale `afterok` jobs (first cycle, failures)
        # runtime -> (no submission before, current delay): transient submit failures back
        # off exponentially instead of creating an abandoned attempt every cycle
        self._backoff: dict[str, tuple[float, float]] = {}
        self._never_satisfied: set[int] = set()  # attempts the scheduler says can never run
        self._deferred: list[tuple[Submitted, Executor, JobRef]] = []
        self._declarations: dict[int, dict[str, list[str]]] | None = None
        self._uses_cache = manifest.uses_cache(wf_id)
        self._wf: WorkflowRecord | None = None

    def _workflow(self) -> WorkflowRecord:
        """The workflow row: its fixed fields are read once, its status every cycle."""
        if self._wf is None:
            self._wf = self.m.get_workflow(self.wf_id, texts=False)
            return self._wf
        return replace(self._wf, status=self.m.workflow_status(self.wf_id))

    def executor(self, runtime: str) -> Executor:
        ex = self.executors.get(runtime)
        if ex is None:
            ex = self.resolve(runtime)
            self.executors[runtime] = ex
        return ex

    def cycle(self, *, force_poll: bool = True) -> CycleReport:
        report = CycleReport()
        now = time.time()
        wf = self._workflow()
        if wf.status == WorkflowStatus.PENDING.value:
            self.m.mark_workflow_started(self.wf_id)
        cancelled = wf.status == WorkflowStatus.CANCELLED.value
        # A cancel from another process: stop at once what this process still holds queued
        # or started since (the workflow's status would end the loop before the next reload).
        full = force_poll or cancelled or now - self._loaded_at >= self.reload_every
        if full:
            self._flush_deferred()
            fresh = {la.attempt_id: la for la in self.m.live_attempts(self.wf_id)}
            self._stop_cancelled([la for aid, la in self._live.items() if aid not in fresh])
            self._live = fresh
            self._loaded_at = now
        observed = self._observe(full)
        with self.m.transaction():
            self._apply_deferred()
            for la, outcome, status in observed:
                self._settle(la, outcome, status, report, now)
            # Jobs queued ahead of a parent that just failed must go before that parent is
            # resubmitted (they wait on its old job id): withdraw them first, then claim.
            stale = self._check_ahead or any(
                c.status in (Status.FAILED, Status.READY) for c in report.completions)
            if not stale:
                batches = self._reuse_and_claim(wf, report, cancelled)
        if stale:
            self._withdraw_stale_ahead()
            with self.m.transaction():
                batches = self._reuse_and_claim(wf, report, cancelled)
        report.submitted = sum(self._launch_batch(ex, b) for ex, b in batches)
        if not cancelled:
            report.submitted += self._submit_ahead(wf)
        # Nothing can be over while attempts are in flight: skip the count then.
        final = None if self._live else self.m.finalize_workflow(self.wf_id)
        report.workflow_status = final or self.m.workflow_status(self.wf_id)
        report.finished = report.workflow_status in WORKFLOW_ENDED
        if report.finished:
            self._flush_deferred()
        report.live = len(self._live)
        if self.notifier is not None and self.m.webhooks_of(self.wf_id):
            try:
                self.notifier(self.m, self.wf_id, self.config.notify_budget)
            except Exception as exc:  # delivery must never stall or break the workflow
                log.warning("webhook delivery failed: %s", exc)
        return report

    def _reuse_and_claim(self, wf: WorkflowRecord, report: CycleReport,
                         cancelled: bool) -> list[tuple[Executor, list[Claim]]]:
        if cancelled:
            return []
        if self._uses_cache:
            self._reuse_cached(wf, report)
        return self._claim(wf)

    def _reuse_cached(self, wf: WorkflowRecord, report: CycleReport) -> None:
        """Finish ready activities from the cache; a reuse can make children ready that are
        cached too, so repeat until nothing more is reused (before anything is claimed)."""
        reused = True
        while reused:
            reused = False
            for act in self.m.ready_cacheable(self.wf_id, self.config.submit_limit):
                if cache.reuse(self.m, wf, act):
                    report.cached += 1
                    reused = True

    def _stop_cancelled(self, gone: list[LiveAttempt]) -> None:
        """Attempts that left the live set behind our back (a `cancel` from another
        process) may still sit in an executor's queue or run: stop them."""
        for la in gone:
            rec = self.m.attempt_by_id(la.attempt_id)
            if rec is not None and rec.status == Status.CANCELLED.value:
                self.executor(la.executor).cancel(
                    [JobRef(la.job_id, la.job_name, la.attempt_dir, la.submitted_at)])

    # -- steps 2-3: ingest and reconcile ----------------------------------------------------
    def _observe(
        self, full: bool
    ) -> list[tuple[LiveAttempt, AttemptOutcome | None, JobStatus | None]]:
        """Ask each executor once: changes (in-process ones) or one batched status query."""
        by_exec: dict[str, list[LiveAttempt]] = defaultdict(list)
        self._found = {}
        for la in self._live.values():
            by_exec[la.executor].append(la)
        out: list[tuple[LiveAttempt, AttemptOutcome | None, JobStatus | None]] = []
        now = time.time()
        for name, group in by_exec.items():
            ex = self.executor(name)
            statuses: dict[str, JobStatus] = {}
            changes = None if full else ex.poll_changes()
            if changes is not None:
                by_job = {la.job_id or la.attempt_dir: la for la in group}
                statuses = {by_job[j].job_name: st for j, st in changes.items() if j in by_job}
                reports = ex.collect_reports()
                group = [by_job[j] for j in set(changes) | set(reports) if j in by_job]
            elif full or now - self._last_poll.get(name, 0.0) >= ex.min_poll_interval:
                self._last_poll[name] = now
                refs = [JobRef(la.job_id, la.job_name, la.attempt_dir, la.submitted_at)
                        for la in group]
                try:
                    statuses = ex.poll(refs)
                except ExecutorError as exc:
                    log.warning("status query of %s failed (treated as unknown): %s", name, exc)
                reports = ex.collect_reports()
            else:
                reports = ex.collect_reports()
            for la in group:
                st = statuses.get(la.job_name)
                outcome = reports.pop(la.job_id or la.attempt_dir, None)
                if outcome is None and (st is None or st.state not in ACTIVE):
                    outcome = protocol.read_result(Path(la.attempt_dir))
                if outcome is not None or st is not None:
                    out.append((la, outcome, st))
        return out

    def _settle(self, la: LiveAttempt, outcome: AttemptOutcome | None, st: JobStatus | None,
                report: CycleReport, now: float) -> None:
        if outcome is not None:
            done = ingest(self.m, self.wf_id, la, outcome, self.lineage)
            self._live.pop(la.attempt_id, None)
            if done is not None:
                report.completions.append(done)
                if self._uses_cache and done.status is Status.FINISHED:
                    act = self.m.activity_by_id(done.activity_id)
                    if act is not None and act.cache:
                        cache.remember(self.m, self._workflow(), act, outcome.files)
            return
        assert st is not None
        ex = self.executor(la.executor)
        if st.state is JobState.RUNNING and la.status != Status.RUNNING.value:
            self.m.record_started(self.wf_id, la.attempt_id, st.started_at or now, st.node)
            self._live[la.attempt_id] = with_status(la, Status.RUNNING)
        elif st.state is JobState.PENDING and st.message == NEVER_SATISFIED:
            self._never_satisfied.add(la.attempt_id)
            self._check_ahead = True
        elif st.state is JobState.PENDING and la.status == Status.SUBMITTING.value:
            self.m.record_submitted(self.wf_id, [Submitted(
                la.attempt_id, la.job_id or "", Status.QUEUED)])
            self._live[la.attempt_id] = with_status(la, Status.QUEUED)
        elif (st.state in ENDED_STATES or st.state in (JobState.GONE, JobState.MISSING)) and \
                self._ended_without_result(la, st, ex, now):
            self._live.pop(la.attempt_id, None)

    def _lookup(self, ex: Executor, la: LiveAttempt) -> str | None:
        """The job id of an intent whose submission went unrecorded: one lookup per
        executor and cycle for all such intents (a crash mid-array leaves hundreds)."""
        found = self._found.get(la.executor)
        if found is None:
            names = [x.job_name for x in self._live.values() if x.executor == la.executor
                     and x.status == Status.SUBMITTING.value and not x.job_id]
            found = self._found[la.executor] = ex.lookup(names or [la.job_name])
        return found.get(la.job_name)

    def _ended_without_result(
        self, la: LiveAttempt, st: JobStatus, ex: Executor, now: float
    ) -> bool:
        """Settle a job that ended with no worker report; False while still in doubt."""
        adir = Path(la.attempt_dir)
        if la.status == Status.SUBMITTING.value and (
                not la.job_id or st.state is JobState.MISSING):
            # The dispatcher died between recording the intent and the executor taking it:
            # find the job by name, or know it was never submitted (resubmit, no retry used).
            found = self._lookup(ex, la)
            if found is None:
                self.m.abandon_attempt(self.wf_id, la.attempt_id,
                                       "intent never reached the executor; resubmitting")
                return True
            self.m.record_submitted(self.wf_id, [Submitted(la.attempt_id, found,
                                                            Status.QUEUED)])
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

    # -- step 5: submit ---------------------------------------------------------------------
    def _claim(self, wf: WorkflowRecord) -> list[tuple[Executor, list[Claim]]]:
        """Record intents (SUBMITTING) for ready activities, inside the cycle's transaction.

        Each site is asked only for what it can take: a bounded executor (this machine) for
        what has room now, so a cycle costs O(what changes), not O(what is ready).
        """
        batches = []
        for runtime in self.m.ready_runtimes(self.wf_id):
            if self._backoff.get(runtime, (0.0, 0.0))[0] > time.time():
                continue  # its last submission failed transiently: wait before the next
            decisions: list[Decision | None]
            try:
                ex: Executor | None = self.executor(runtime)
                acts, decisions = self.placer.placeable(ex, runtime, wf)  # type: ignore[arg-type]
                why = ""
            except ExecutorError as exc:
                ex, why = None, str(exc)
                acts = self.m.ready_activities(self.wf_id, self.config.submit_limit, runtime)
                decisions = [None] * len(acts)
            if not acts:
                continue
            launches = [self._launch(wf, a) for a in acts]
            for ln, d in zip(launches, decisions):
                if d is not None and d.node is not None and not ex.bounded:  # type: ignore[union-attr]
                    ln.node = d.node  # enacted by the scheduler (--nodelist, nodeName, ...)
            planned = [None if ex is None else ex.planned_job_id(ln) for ln in launches]
            intents = [
                Intent(a.id, a.attempts + 1, runtime, ln.job_name, str(ln.attempt_dir),
                       ln.resources, d.node if d is not None else ln.node, jid,
                       d.as_record() if d is not None and d.scores else None)
                for a, ln, jid, d in zip(acts, launches, planned, decisions)
            ]
            ids = self.m.begin_attempts(self.wf_id, intents)
            claimed = [Claim(aid, ln, jid) for aid, ln, jid in zip(ids, launches, planned)
                       if aid is not None]
            if ex is None:
                for c in claimed:
                    self.m.fail_activity(self.wf_id, c.attempt_id, Reason.SUBMIT_ERROR.value,
                                         why)
            elif claimed:
                batches.append((ex, claimed))
        return batches

    def _declared(self) -> dict[int, dict[str, list[str]]]:
        if self._declarations is None:
            self._declarations = self.m.declarations(self.wf_id)
        return self._declarations

    def _inputs_present(self, ex: Executor, claims: list[Claim]) -> list[Claim]:
        """Fail, without running it, each claim whose declared inputs are not all there."""
        declared = self._declared()
        if not declared or not ex.shares_work_dir:
            return claims
        ready = []
        for c in claims:
            inputs = declared.get(c.launch.activity_id, {}).get("inputs") or []
            gone = declared_files.first_missing(c.launch.work_dir, inputs)
            if gone is None:
                ready.append(c)
            else:
                self.m.fail_activity(self.wf_id, c.attempt_id, Reason.MISSING_INPUT.value,
                                     declared_files.message("input", gone, c.launch.work_dir))
        return ready

    def _launch_batch(self, ex: Executor, claims: list[Claim]) -> int:
        claims = self._inputs_present(ex, claims)
        if not claims:
            return 0
        try:
            for c in claims:  # a refused image or bind fails this batch, not the cycle
                c.launch.wrapper = ex.task_wrapper(c.launch)
                protocol.prepare_attempt(c.launch)
            job_ids = ex.submit([c.launch for c in claims])
        except (SubmitError, SpecError) as exc:
            if isinstance(exc, SubmitError) and exc.transient:
                _, delay = self._backoff.get(ex.site, (0.0, 0.0))
                delay = min(MAX_SUBMIT_BACKOFF, max(1.0, delay * 2))
                self._backoff[ex.site] = (time.time() + delay, delay)
            with self.m.transaction():
                for c in claims:
                    if isinstance(exc, SubmitError) and exc.transient:
                        self.m.abandon_attempt(self.wf_id, c.attempt_id,
                                               f"submit failed (will retry): {exc}")
                    else:
                        reason = (Reason.SUBMIT_ERROR if isinstance(exc, SubmitError)
                                  else Reason.SPEC_ERROR)
                        self.m.fail_activity(self.wf_id, c.attempt_id, reason.value, str(exc))
            return 0
        self._backoff.pop(ex.site, None)
        now = time.time()
        done = [Submitted(c.attempt_id, jid, Status.QUEUED, ts=now)
                for c, jid in zip(claims, job_ids)]
        for c, jid in zip(claims, job_ids):
            self._live[c.attempt_id] = LiveAttempt(
                c.attempt_id, c.launch.activity_id, c.launch.activity, c.launch.attempt,
                Status.QUEUED.value, ex.site, c.launch.job_name, jid, str(c.launch.attempt_dir),
                time.time(), None, Status.QUEUED.value)
        if all(c.planned is not None for c in claims):
            # Ids were known up front, so recording them can wait for the next cycle's
            # transaction: a crash before then is repaired by polling those ids.
            self._deferred.extend(
                (s, ex, JobRef(s.job_id, c.launch.job_name, str(c.launch.attempt_dir), 0.0))
                for s, c in zip(done, claims))
        else:
            self._record_submitted(done, ex, claims)
        return len(claims)

    def _record_submitted(self, done: list[Submitted], ex: Executor,
                          claims: list[Claim]) -> None:
        orphans = set(self.m.record_submitted(self.wf_id, done))
        if orphans:  # cancelled while we were submitting: take the jobs back
            ex.cancel([JobRef(s.job_id, c.launch.job_name, str(c.launch.attempt_dir),
                              time.time()) for s, c in zip(done, claims)
                       if s.attempt_id in orphans])

    def _apply_deferred(self) -> None:
        if not self._deferred:
            return
        items, self._deferred = self._deferred, []
        orphans = set(self.m.record_submitted(self.wf_id, [s for s, _, _ in items]))
        for s, ex, ref in items:
            if s.attempt_id in orphans:  # cancelled while we were submitting
                self._live.pop(s.attempt_id, None)
                ex.cancel([ref])

    def _flush_deferred(self) -> None:
        if self._deferred:
            with self.m.transaction():
                self._apply_deferred()

    def _launch(self, wf: WorkflowRecord, act: ActivityRecord) -> TaskLaunch:
        number = act.attempts + 1
        launch = TaskLaunch(
            workflow_id=wf.id, workflow=wf.name, activity_id=act.id, activity=act.name,
            attempt=number, job_name=protocol.job_name(wf.id, act.name, number),
            attempt_dir=protocol.attempt_dir(wf.run_dir, act.name, number),
            work_dir=Path(wf.work_dir), run_dir=Path(wf.run_dir), script=act.run,
            env=act.env_dict(), resources=act.resources_dict(), image=act.image,
            sample_interval=self._sample_interval(act.runtime), namespace=wf.namespace,
        )
        if act.container != "{}":
            c = act.container_dict()
            self._containerize(launch, c)
            launch.sample_interval = float(c.get("sample_interval") or launch.sample_interval)
        launch.observe = protocol.observation(launch, self.executor(act.runtime).config)
        return launch

    def _sample_interval(self, runtime: str) -> float:
        """The environment's override, else the site profile's, else 15 s."""
        if self.config.sample_interval:
            return self.config.sample_interval
        return float(self.executor(runtime).config.get("sample_interval") or 15.0)

    def _containerize(self, launch: TaskLaunch, c: dict[str, Any]) -> None:
        """Mount, volumes and storage policy; `standalone` gives every activity its own
        volume under the run directory, with its parents' volumes as inputs."""
        launch.mount_path = c.get("mount_path")
        launch.volumes = [(str(h), str(t)) for h, t in c.get("volumes") or []]
        launch.storage = dict(c.get("storage") or {})
        launch.keep_disk = bool(c.get("keep_disk"))
        if launch.storage.get("type") == "standalone":
            launch.parents = self.m.parent_names(launch.activity_id)
            vols = launch.run_dir / "volumes"
            launch.work_dir = vols / ident(launch.activity)
            launch.inputs = [vols / ident(p) for p in launch.parents]

    def close(self) -> None:
        self._flush_deferred()
        for ex in self.executors.values():
            ex.close()

