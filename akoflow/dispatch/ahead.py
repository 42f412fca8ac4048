"""Scheduler chaining: children queued ahead of their parents with `afterok`.

On schedulers that hold a job until its dependencies succeed (Slurm, PBS, LSF, SGE, Flux),
PENDING children of queued or running parents are submitted with their parents' job ids,
so the scheduler starts them the moment the parents succeed, without waiting for the next
dispatcher. When a parent fails or is retried, or the scheduler says a dependency can never
be met, those jobs are withdrawn. A mixin of `Dispatcher` (cycle.py), whose state it uses.
"""

from __future__ import annotations

from collections import defaultdict

from akoflow.dispatch.types import Claim, DispatchConfig
from akoflow.executor import Executor, JobRef, TaskLaunch
from akoflow.manifest import ActivityRecord, Intent, LiveAttempt, Manifest, Status, WorkflowRecord


class LookaheadMixin:
    m: Manifest
    wf_id: int
    config: DispatchConfig
    executors: dict[str, Executor]
    _live: dict[int, LiveAttempt]
    _check_ahead: bool
    _never_satisfied: set[int]

    def executor(self, runtime: str) -> Executor:
        raise NotImplementedError

    def _launch(self, wf: WorkflowRecord, act: ActivityRecord) -> TaskLaunch:
        raise NotImplementedError

    def _launch_batch(self, ex: Executor, claims: list[Claim]) -> int:
        raise NotImplementedError

    def _submit_ahead(self, wf: WorkflowRecord) -> int:
        """Queue PENDING children of queued/running parents on schedulers that hold them
        (`afterok`), a bounded number of levels per cycle: the scheduler starts them the
        moment their parents succeed, without waiting for the next dispatcher."""
        # Placement by a policy needs each node's free room at submission: such sites get
        # no lookahead (a child queued ahead could not be placed by the policy).
        runtimes = [rt for rt, ex in self.executors.items() if ex.chains_after_ok
                    and int(ex.config.get("lookahead", 1)) > 0
                    and not (wf.schedule or ex.config.get("placement"))]
        if not runtimes or self.config.lookahead <= 0:
            return 0
        total = 0
        for _ in range(self.config.lookahead):
            budget = self.config.ahead_limit - self.m.count_ahead(self.wf_id)
            with self.m.transaction():
                found = self.m.ahead_candidates(self.wf_id, runtimes,
                                                min(budget, self.config.submit_limit))
                by_runtime: dict[str, list[Claim]] = defaultdict(list)
                for act, parents in found:
                    ln = self._launch(wf, act)
                    ln.after_ok = parents
                    [aid] = self.m.begin_attempts(self.wf_id, [Intent(
                        act.id, act.attempts + 1, act.runtime, ln.job_name,
                        str(ln.attempt_dir), ln.resources, None, None, ahead=True)])
                    if aid is not None:
                        by_runtime[act.runtime].append(Claim(aid, ln, None))
            if not by_runtime:
                break
            total += sum(self._launch_batch(self.executor(rt), claims)
                         for rt, claims in by_runtime.items())
        return total

    def _withdraw_stale_ahead(self) -> None:
        """Cancel jobs queued ahead whose dependencies can no longer be met (a parent
        failed or is being retried, or they were skipped, or the scheduler reports them
        never satisfiable). Skipped ones stay SKIPPED; others wait for their parents again."""
        self._check_ahead = False
        stale = {la.attempt_id: la for la in self.m.stale_ahead(self.wf_id)}
        for aid in self._never_satisfied:
            la = self._live.get(aid)
            if la is not None:
                stale.setdefault(aid, la)
        self._never_satisfied.clear()
        by_exec: dict[str, list[LiveAttempt]] = defaultdict(list)
        for la in stale.values():
            by_exec[la.executor].append(la)
        for name, group in by_exec.items():
            self.executor(name).cancel([JobRef(la.job_id, la.job_name, la.attempt_dir,
                                               la.submitted_at) for la in group])
            for la in group:
                self._live.pop(la.attempt_id, None)
                if la.activity_status == Status.SKIPPED.value:
                    self.m.cancel_attempt(self.wf_id, la.attempt_id,
                                          "skipped: a parent failed")
                else:
                    self.m.withdraw_attempt(self.wf_id, la.attempt_id,
                                            "withdrawn: its dependencies cannot be met now")
