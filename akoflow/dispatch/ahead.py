"""Scheduler chaining: children queued ahead of their parents with `afterok` (part of step 4).

On schedulers that hold a job until its dependencies succeed and say so when they never can
(`DispatcherHost.chains_after_ok`: Slurm), PENDING children of queued or running parents are
submitted with their parents' job ids, so the scheduler starts them the moment the parents
succeed, without waiting for the next dispatcher. When a parent fails or is retried, or the
scheduler says a dependency can never be met, those jobs are withdrawn.
"""

from __future__ import annotations

from collections import defaultdict

from akoflow.dispatch.submitting import Submitter
from akoflow.dispatch.types import Claim, DispatchConfig, Sites
from akoflow.manifest import Completion, LiveAttempt, Manifest, WorkflowRecord
from akoflow.port import JobRef, Status, chains_after_ok


class Lookahead:
    """The lookahead of one workflow's dispatcher, a collaborator of its cycle."""

    def __init__(self, manifest: Manifest, wf_id: int, sites: Sites, config: DispatchConfig,
                 submitter: Submitter, live: dict[int, LiveAttempt]) -> None:
        self.m = manifest
        self.wf_id = wf_id
        self.sites = sites
        self.config = config
        self.submitter = submitter
        self.live = live
        self.check = True  # look for stale `afterok` jobs (first cycle, after failures)
        self.never_satisfied: set[int] = set()  # attempts the scheduler says can never run

    def never_runs(self, attempt_id: int) -> None:
        """The scheduler says this attempt's dependencies can never be met."""
        self.never_satisfied.add(attempt_id)
        self.check = True

    def settled(self, completions: list[Completion]) -> None:
        """A parent that failed or goes back to READY strands the jobs queued after it."""
        if any(c.status in (Status.FAILED, Status.READY) for c in completions):
            self.check = True

    def withdraw_stale(self) -> None:
        """Cancel jobs queued ahead whose dependencies can no longer be met (a parent
        failed or is being retried, or they were skipped, or the scheduler reports them
        never satisfiable). Skipped ones stay SKIPPED; others wait for their parents again.
        Before any claim: they wait on the old job id of a parent about to be resubmitted."""
        if not self.check:
            return
        self.check = False
        stale = {la.attempt_id: la for la in self.m.stale_ahead(self.wf_id)}
        for aid in self.never_satisfied:
            la = self.live.get(aid)
            if la is not None:
                stale.setdefault(aid, la)
        self.never_satisfied.clear()
        by_site: dict[str, list[LiveAttempt]] = defaultdict(list)
        for la in stale.values():
            by_site[la.site].append(la)
        for site, group in by_site.items():
            self.sites(site).cancel([JobRef(la.job_id, la.job_name, la.attempt_dir,
                                            la.submitted_at) for la in group])
            for la in group:
                self.live.pop(la.attempt_id, None)
                if la.activity_status == Status.SKIPPED.value:
                    self.m.cancel_attempt(self.wf_id, la.attempt_id,
                                          "skipped: a parent failed")
                else:
                    self.m.withdraw_attempt(self.wf_id, la.attempt_id,
                                            "withdrawn: its dependencies cannot be met now")

    def submit_ahead(self, wf: WorkflowRecord) -> int:
        """Queue PENDING children of queued/running parents on schedulers that hold them
        (`afterok`), a bounded number of levels per cycle."""
        # Placement by a policy needs each node's free room at submission: such sites get
        # no lookahead (a child queued ahead could not be placed by the policy).
        chained = [site for site, ex in self.sites.opened.items() if chains_after_ok(ex)
                   and int(ex.config.get("lookahead", 1)) > 0
                   and not (wf.schedule or ex.config.get("placement"))]
        if not chained or self.config.lookahead <= 0:
            return 0
        total = 0
        for _ in range(self.config.lookahead):
            budget = self.config.ahead_limit - self.m.count_ahead(self.wf_id)
            by_site: dict[str, list[Claim]] = defaultdict(list)
            with self.m.transaction():
                for act, parents in self.m.ahead_candidates(
                        self.wf_id, chained, min(budget, self.config.submit_limit)):
                    ln = self.submitter.launch(wf, act)
                    ln.after_ok = parents
                    claim = self.submitter.claim_ahead(act.runtime, act, ln)
                    if claim is not None:
                        by_site[act.runtime].append(claim)
            if not by_site:
                break
            total += sum(self.submitter.submit(self.sites(site), claims)
                         for site, claims in by_site.items())
        return total
