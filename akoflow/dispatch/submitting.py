"""Step 4, submit: intents for ready activities, then their batches handed to the executors.

Intents (SUBMITTING, with the job name) are committed before an executor is called, so a crash
in between is repaired by looking the job up, never by submitting twice. A transient refusal
backs that site off exponentially; a permanent one fails the batch's activities.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from akoflow.dispatch import declared
from akoflow.dispatch.placing import Placer
from akoflow.dispatch.types import Claim, DispatchConfig, Sites
from akoflow.manifest import (
    ActivityRecord,
    Intent,
    LiveAttempt,
    Manifest,
    Submitted,
    WorkflowRecord,
)
from akoflow.port import (
    Executor,
    ExecutorError,
    JobRef,
    Reason,
    Resources,
    SpecError,
    Status,
    SubmitError,
    TaskLaunch,
    in_process,
    protocol,
)
from akoflow.port.names import ident
from akoflow.scheduling.placement import Decision

MAX_SUBMIT_BACKOFF = 60.0  # seconds
Batch = tuple[Executor, list[Claim]]


class Submitter:
    """Claims and submissions of one workflow's dispatcher; `live` is the dispatcher's view
    of live attempts, which submissions add to."""

    def __init__(self, manifest: Manifest, wf_id: int, sites: Sites, config: DispatchConfig,
                 live: dict[int, LiveAttempt]) -> None:
        self.m = manifest
        self.wf_id = wf_id
        self.sites = sites
        self.config = config
        self.live = live
        self.placer = Placer(manifest, wf_id, config.submit_limit)
        # site -> (no submission before, current delay): transient submit failures back off
        # exponentially instead of creating an abandoned attempt every cycle
        self._backoff: dict[str, tuple[float, float]] = {}
        # Submissions whose job ids were known up front, recorded in the next transaction.
        self._deferred: list[tuple[Submitted, Executor, JobRef]] = []
        self._declarations: dict[int, dict[str, list[str]]] | None = None  # declared files

    # -- claims (inside the cycle's transaction) ---------------------------------------------
    def claim(self, wf: WorkflowRecord) -> list[Batch]:
        """Record intents for ready activities, site by site, each asked only for what it can
        take: a bounded executor (this machine) for what has room now, so a cycle costs
        O(what changes), not O(what is ready)."""
        batches = []
        for site in self.m.ready_sites(self.wf_id):
            if self._backoff.get(site, (0.0, 0.0))[0] > time.time():
                continue  # its last submission failed transiently: wait before the next
            try:
                ex = self.sites(site)
                acts, decisions = self.placer.placeable(ex, site, wf)
            except ExecutorError as exc:  # no executor for the site: its ready work fails
                self._refuse(wf, site, str(exc))
                continue
            if not acts:
                continue
            launches = [self.launch(wf, a) for a in acts]
            runner = in_process(ex)
            for ln, d in zip(launches, decisions):
                if d is not None and d.node is not None and not (runner and runner.bounded):
                    ln.node = d.node  # enacted by the scheduler (--nodelist, nodeName, ...)
            planned = [runner.planned_job_id(ln) if runner else None for ln in launches]
            claims = self._begin(site, acts, launches, decisions, planned)
            if claims:
                batches.append((ex, claims))
        return batches

    def claim_ahead(self, site: str, act: ActivityRecord, launch: TaskLaunch) -> Claim | None:
        """The intent of a child queued ahead of its parents (PENDING → SUBMITTING)."""
        [aid] = self.m.begin_attempts(self.wf_id, [Intent(
            activity_id=act.id, number=act.attempts + 1, site=site, job_name=launch.job_name,
            attempt_dir=str(launch.attempt_dir), resources=launch.resources, ahead=True)])
        return None if aid is None else Claim(attempt_id=aid, launch=launch, planned=None)

    def _begin(self, site: str, acts: list[ActivityRecord], launches: list[TaskLaunch],
               decisions: list[Decision | None], planned: list[str | None]) -> list[Claim]:
        intents = [
            Intent(activity_id=a.id, number=a.attempts + 1, site=site, job_name=ln.job_name,
                   attempt_dir=str(ln.attempt_dir), resources=ln.resources,
                   node=d.node if d is not None else ln.node, job_id=jid,
                   scores=d.as_record() if d is not None and d.scores else None)
            for a, ln, jid, d in zip(acts, launches, planned, decisions)
        ]
        ids = self.m.begin_attempts(self.wf_id, intents)
        return [Claim(attempt_id=aid, launch=ln, planned=jid)
                for aid, ln, jid in zip(ids, launches, planned) if aid is not None]

    def _refuse(self, wf: WorkflowRecord, site: str, why: str) -> None:
        """Claim the site's ready activities and fail them: the site cannot run anything."""
        acts = self.m.ready_activities(self.wf_id, self.config.submit_limit, site)
        launches = [self.launch(wf, a) for a in acts]
        for c in self._begin(site, acts, launches, [None] * len(acts), [None] * len(acts)):
            self.m.fail_activity(self.wf_id, c.attempt_id, Reason.SUBMIT_ERROR.value, why)

    # -- submissions (after the commit) -------------------------------------------------------
    def submit(self, ex: Executor, claims: list[Claim]) -> int:
        """Hand a batch to its executor; how many were submitted (0 when it refused)."""
        claims = self._inputs_present(ex, claims)
        if not claims:
            return 0
        try:
            for c in claims:  # a refused image or bind fails this batch, not the cycle
                c.launch.wrapper = ex.task_wrapper(c.launch)
                protocol.prepare_attempt(c.launch)
            job_ids = ex.submit([c.launch for c in claims])
        except (SubmitError, SpecError) as exc:
            self._refused(ex, claims, exc)
            return 0
        self._backoff.pop(ex.site, None)
        now = time.time()
        done = [Submitted(attempt_id=c.attempt_id, job_id=jid, status=Status.QUEUED, ts=now)
                for c, jid in zip(claims, job_ids)]
        for c, jid in zip(claims, job_ids):
            ln = c.launch
            self.live[c.attempt_id] = LiveAttempt(
                attempt_id=c.attempt_id, activity_id=ln.activity_id, activity=ln.activity,
                number=ln.attempt, status=Status.QUEUED.value, site=ex.site,
                job_name=ln.job_name, job_id=jid, attempt_dir=str(ln.attempt_dir),
                submitted_at=now, started_at=None, activity_status=Status.QUEUED.value)
        if all(c.planned is not None for c in claims):
            # Ids were known up front, so recording them can wait for the next cycle's
            # transaction: a crash before then is repaired by polling those ids.
            self._deferred.extend(
                (s, ex, JobRef(s.job_id, c.launch.job_name, str(c.launch.attempt_dir), 0.0))
                for s, c in zip(done, claims))
        else:
            orphans = set(self.m.record_submitted(self.wf_id, done))
            if orphans:  # cancelled while we were submitting: take the jobs back
                ex.cancel([JobRef(s.job_id, c.launch.job_name, str(c.launch.attempt_dir),
                                  time.time()) for s, c in zip(done, claims)
                           if s.attempt_id in orphans])
        return len(claims)

    def _inputs_present(self, ex: Executor, claims: list[Claim]) -> list[Claim]:
        """Fail, without running it, each claim whose declared inputs are not all there."""
        if self._declarations is None:
            self._declarations = self.m.declarations(self.wf_id)
        if not self._declarations or not ex.shares_work_dir:
            return claims
        ready = []
        for c in claims:
            inputs = self._declarations.get(c.launch.activity_id, {}).get("inputs") or []
            gone = declared.first_missing(c.launch.work_dir, inputs)
            if gone is None:
                ready.append(c)
            else:
                self.m.fail_activity(self.wf_id, c.attempt_id, Reason.MISSING_INPUT.value,
                                     declared.message("input", gone, c.launch.work_dir))
        return ready

    def _refused(self, ex: Executor, claims: list[Claim], exc: SubmitError | SpecError) -> None:
        transient = isinstance(exc, SubmitError) and exc.transient
        if transient:
            _, delay = self._backoff.get(ex.site, (0.0, 0.0))
            delay = min(MAX_SUBMIT_BACKOFF, max(1.0, delay * 2))
            self._backoff[ex.site] = (time.time() + delay, delay)
        reason = Reason.SUBMIT_ERROR if isinstance(exc, SubmitError) else Reason.SPEC_ERROR
        with self.m.transaction():
            for c in claims:
                if transient:
                    self.m.abandon_attempt(self.wf_id, c.attempt_id,
                                           f"submit failed (will retry): {exc}")
                else:
                    self.m.fail_activity(self.wf_id, c.attempt_id, reason.value, str(exc))

    def record_deferred(self) -> None:
        """Record submissions whose ids were known up front (inside a transaction)."""
        if not self._deferred:
            return
        items, self._deferred = self._deferred, []
        orphans = set(self.m.record_submitted(self.wf_id, [s for s, _, _ in items]))
        for s, ex, ref in items:
            if s.attempt_id in orphans:  # cancelled while we were submitting
                self.live.pop(s.attempt_id, None)
                ex.cancel([ref])

    def flush(self) -> None:
        """Record deferred submissions now, in a transaction of their own."""
        if self._deferred:
            with self.m.transaction():
                self.record_deferred()

    # -- launches ----------------------------------------------------------------------------
    def launch(self, wf: WorkflowRecord, act: ActivityRecord) -> TaskLaunch:
        """What an executor needs to run the activity's next attempt."""
        number = act.attempts + 1
        launch = TaskLaunch(
            workflow_id=wf.id, workflow=wf.name, activity_id=act.id, activity=act.name,
            attempt=number, job_name=protocol.job_name(wf.id, act.name, number),
            attempt_dir=protocol.attempt_dir(wf.run_dir, act.name, number),
            work_dir=Path(wf.work_dir), run_dir=Path(wf.run_dir), script=act.run,
            env=act.env_dict(), resources=Resources.from_json(act.resources), image=act.image,
            sample_interval=self._sample_interval(act.runtime), namespace=wf.namespace,
        )
        if act.container != "{}":
            c = act.container_dict()
            self._containerize(launch, c)
            launch.sample_interval = float(c.get("sample_interval") or launch.sample_interval)
        launch.observe = protocol.observation(launch, self.sites(act.runtime).config)
        return launch

    def _sample_interval(self, site: str) -> float:
        """The environment's override, else the site profile's, else 15 s."""
        if self.config.sample_interval:
            return self.config.sample_interval
        return float(self.sites(site).config.get("sample_interval") or 15.0)

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
