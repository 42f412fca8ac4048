"""Completion, failure with retries, skipping of descendants, cancel and manual retry."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from akoflow.manifest.activities import ACT_COLS, ActivitiesMixin
from akoflow.manifest.guards import (
    activity_moving,
    attempt_moving,
    workflow_moving,
)
from akoflow.manifest.records import ActivityRecord, LiveAttempt
from akoflow.manifest.states import LIVE, TERMINAL
from akoflow.port import AttemptOutcome, FileEntry, Reason, Status, WorkflowStatus, text_path

_TERMINAL = tuple(s.value for s in TERMINAL)


def _file_row(wf_id: int, act_id: int, attempt_id: int, f: FileEntry) -> tuple[Any, ...]:
    """A files row; a name that is not UTF-8 is stored escaped, with its bytes in `raw`, so
    no file name a task can make can stop the dispatcher."""
    text, raw = text_path(f.path)
    return (wf_id, act_id, attempt_id, text, f.size, f.mtime, f.hash, f.role, f.observed,
            int(f.ambiguous), f.raw if f.raw is not None else raw)


@dataclass(frozen=True, kw_only=True)
class Completion:
    """What `complete_attempt` did, for progress display and logging."""

    activity_id: int
    name: str
    status: Status  # FINISHED, FAILED, or READY (retry scheduled)
    reason: str | None
    newly_ready: int
    skipped: int


class TransitionsMixin(ActivitiesMixin):
    def complete_attempt(
        self, wf_id: int, attempt_id: int, outcome: AttemptOutcome, *, free: bool = False
    ) -> Completion | None:
        """Apply a worker's report; ignored (None) unless the attempt is still live. A
        `free` failure runs the activity again without using one of its retries."""
        ok = outcome.succeeded
        new = Status.FINISHED if ok else Status.FAILED
        reason = None if ok else (outcome.reason or Reason.EXIT.value)
        where, states = attempt_moving(new, among=LIVE)
        with self.transaction() as c:
            row = c.execute("SELECT activity_id, number, status FROM attempt WHERE id=?",
                            (attempt_id,)).fetchone()
            cur = c.execute(
                "UPDATE attempt SET status=?, exit_code=?, reason=?, started_at=COALESCE(?,"
                " started_at), finished_at=?, node=COALESCE(?, node), cpu_time=?, peak_rss=?,"
                f" image_id=?, message=? WHERE id=? AND {where}",
                (new.value, outcome.exit_code, reason, outcome.started_at, outcome.finished_at,
                 outcome.node, outcome.cpu_time, outcome.peak_rss, outcome.image_id,
                 outcome.message, attempt_id, *states),
            )
            if row is None or not cur.rowcount:
                return None
            act_id, number, old = int(row[0]), int(row[1]), str(row[2])
            if old != Status.RUNNING.value and outcome.started_at is not None:
                # Started and ended between two looks: keep the run log complete.
                self.add_event(wf_id, act_id, number, "STATE", old, Status.RUNNING.value,
                               outcome.node, None, outcome.started_at)
                old = Status.RUNNING.value
            self._insert_provenance(wf_id, act_id, attempt_id, outcome)
            act = self._activity(act_id)
            if ok:
                return self._finish(wf_id, act, number, old, outcome)
            return self._fail(wf_id, act, number, old, reason or Reason.EXIT.value, outcome,
                              free=free)

    def _insert_provenance(
        self, wf_id: int, act_id: int, attempt_id: int, o: AttemptOutcome
    ) -> None:
        c = self.conn
        if o.metrics:
            c.executemany(
                "INSERT INTO metrics (workflow_id, activity_id, attempt_id, ts, cpu_percent, rss,"
                " vms, read_bytes, write_bytes, threads, processes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(wf_id, act_id, attempt_id, m.ts, m.cpu_percent, m.rss, m.vms, m.read_bytes,
                  m.write_bytes, m.threads, m.processes) for m in o.metrics],
            )
        if o.files:
            c.executemany(
                "INSERT INTO files (workflow_id, activity_id, attempt_id, path, size, mtime, hash,"
                " role, observed, ambiguous, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [_file_row(wf_id, act_id, attempt_id, f) for f in o.files],
            )
        c.execute(
            "INSERT OR REPLACE INTO errors (workflow_id, activity_id, attempt_id, stdout_path,"
            " stderr_path, stdout_tail, stderr_tail) VALUES (?,?,?,?,?,?,?)",
            (wf_id, act_id, attempt_id, o.stdout_path, o.stderr_path, o.stdout_tail,
             o.stderr_tail),
        )

    def _activity(self, act_id: int) -> ActivityRecord:
        rec = self._one(ActivityRecord, f"SELECT {ACT_COLS} FROM activity WHERE id=?", (act_id,))
        assert rec is not None
        return rec

    def _finish(
        self, wf_id: int, act: ActivityRecord, number: int, old: str, o: AttemptOutcome
    ) -> Completion:
        c = self.conn
        where, states = activity_moving(Status.FINISHED, among=LIVE)
        cur = c.execute(
            f"UPDATE activity SET status=?, reason=NULL, finished_at=?, started_at=COALESCE("
            f"started_at, ?), node=COALESCE(?, node) WHERE id=? AND {where}",
            (Status.FINISHED.value, o.finished_at, o.started_at, o.node, act.id, *states),
        )
        if not cur.rowcount:  # the activity was cancelled while this attempt ran
            return Completion(activity_id=act.id, name=act.name, status=Status(act.status),
                              reason=act.reason, newly_ready=0, skipped=0)
        self.add_event(wf_id, act.id, number, "STATE", old, Status.FINISHED.value, o.node,
                       None, o.finished_at)
        self._enqueue_activity(wf_id, act.id, "ACTIVITY_COMPLETED", number)
        children = [
            int(r[0]) for r in c.execute(
                "SELECT activity_id FROM activity_dependency WHERE parent_id=?", (act.id,))
        ]
        ready = 0
        if children:
            marks = ",".join("?" * len(children))
            c.execute(
                f"UPDATE activity SET unfinished_parents = unfinished_parents - 1"
                f" WHERE id IN ({marks})",
                children,
            )
            now_ready = [
                int(r[0]) for r in c.execute(
                    f"SELECT id FROM activity WHERE id IN ({marks}) AND unfinished_parents=0"
                    f" AND status=?", (*children, Status.PENDING.value))
            ]
            where, states = activity_moving(Status.READY, among=[Status.PENDING])
            for child in now_ready:
                c.execute(f"UPDATE activity SET status=? WHERE id=? AND {where}",
                          (Status.READY.value, child, *states))
                self.add_event(wf_id, child, None, "STATE", Status.PENDING.value,
                               Status.READY.value, None, f"parents done (the last: {act.name})")
            ready = len(now_ready)
        return Completion(activity_id=act.id, name=act.name, status=Status.FINISHED,
                          reason=None, newly_ready=ready, skipped=0)

    def _fail(
        self, wf_id: int, act: ActivityRecord, number: int, old: str, reason: str,
        o: AttemptOutcome, *, free: bool = False,
    ) -> Completion:
        c = self.conn
        failures = act.failures + (0 if free else 1)
        msg = o.message or (f"exit code {o.exit_code}" if o.exit_code is not None else reason)
        if (free or failures <= act.retries) and reason != Reason.CANCELLED.value:
            res = act.request()
            if act.retry_memory_factor != 1.0 and res.memory:
                res = replace(res, memory=int(res.memory * act.retry_memory_factor))
            where, states = activity_moving(Status.READY, among=LIVE)
            cur = c.execute(
                f"UPDATE activity SET status=?, reason=?, failures=?, resources=?, job_id=NULL"
                f" WHERE id=? AND {where}",
                (Status.READY.value, reason, failures, json.dumps(res.to_json()), act.id, *states),
            )
            if cur.rowcount:
                self.add_event(wf_id, act.id, number, "STATE", old, Status.FAILED.value, o.node,
                               f"{reason}: {msg}", o.finished_at)
                self.add_event(wf_id, act.id, number, "RETRY", Status.FAILED.value,
                               Status.READY.value, None,
                               f"again, not counted: {msg}" if free
                               else f"retry {failures}/{act.retries}")
            return Completion(activity_id=act.id, name=act.name, status=Status.READY,
                              reason=reason, newly_ready=0, skipped=0)
        where, states = activity_moving(Status.FAILED, among=LIVE)
        cur = c.execute(
            f"UPDATE activity SET status=?, reason=?, failures=?, finished_at=?, message=?"
            f" WHERE id=? AND {where}",
            (Status.FAILED.value, reason, failures, o.finished_at or time.time(), msg, act.id,
             *states),
        )
        if not cur.rowcount:
            return Completion(activity_id=act.id, name=act.name, status=Status(act.status),
                              reason=act.reason, newly_ready=0, skipped=0)
        self.add_event(wf_id, act.id, number, "STATE", old, Status.FAILED.value, o.node,
                       f"{reason}: {msg}", o.finished_at)
        self._enqueue_activity(wf_id, act.id, "ACTIVITY_FAILED", number)
        skipped = self._skip_descendants(wf_id, [act.id], f"upstream {act.name} failed")
        return Completion(activity_id=act.id, name=act.name, status=Status.FAILED,
                          reason=reason, newly_ready=0, skipped=skipped)

    def requeue_attempt(self, wf_id: int, attempt_id: int, message: str, *,
                        limit: int = 3) -> None:
        """A started attempt lost with its allocation (a packed task whose pilot ended
        under it, dispatch/packing.py): FAILED as PREEMPTED, and its activity runs again
        without using a retry, `limit` times at most; after that it fails as any preempted
        attempt does (retries apply)."""
        row = self.conn.execute("SELECT activity_id FROM attempt WHERE id=?",
                                (attempt_id,)).fetchone()
        if row is None:
            return
        lost = self.conn.execute(
            "SELECT COUNT(*) FROM attempt WHERE activity_id=? AND reason=? AND message=?",
            (row[0], Reason.PREEMPTED.value, message)).fetchone()[0]
        self.complete_attempt(wf_id, attempt_id, AttemptOutcome(
            exit_code=None, reason=Reason.PREEMPTED.value, started_at=None,
            finished_at=time.time(), message=message), free=int(lost) < limit)

    def fail_activity(self, wf_id: int, attempt_id: int, reason: str, message: str) -> None:
        """Permanent failure outside a worker report (submit refused, spec error, lost job)."""
        self.complete_attempt(wf_id, attempt_id, AttemptOutcome(
            exit_code=None, reason=reason, started_at=None, finished_at=time.time(),
            message=message))

    def _skip_descendants(self, wf_id: int, roots: Iterable[int], why: str) -> int:
        c = self.conn
        seen: set[int] = set()
        queue = deque(roots)
        count = 0
        # Waiting ones, and those queued ahead of this parent (`afterok`): their jobs can
        # never start; the dispatcher cancels them (stale_ahead).
        waiting, w_states = activity_moving(Status.SKIPPED, among=[Status.PENDING, Status.READY])
        ahead, a_states = activity_moving(Status.SKIPPED,
                                          among=[Status.SUBMITTING, Status.QUEUED])
        while queue:
            node = queue.popleft()
            for (child,) in c.execute(
                "SELECT activity_id FROM activity_dependency WHERE parent_id=?", (node,)
            ).fetchall():
                if child in seen:
                    continue
                seen.add(child)
                queue.append(child)
                cur = c.execute(
                    "UPDATE activity SET status=?, finished_at=?, message=? WHERE id=? AND"
                    f" ({waiting} OR ({ahead} AND unfinished_parents > 0))",
                    (Status.SKIPPED.value, time.time(), why, child, *w_states, *a_states),
                )
                if cur.rowcount:
                    count += 1
                    self.add_event(wf_id, child, None, "STATE", None, Status.SKIPPED.value,
                                   None, why)
        return count

    def _enqueue_activity(self, wf_id: int, act_id: int, kind: str, number: int) -> None:
        if not self.webhooks_of(wf_id):
            return
        act = self._activity(act_id)
        payload: dict[str, Any] = {
            "id": act.id, "workflow_id": wf_id, "name": act.name, "image": act.image,
            "namespace": self.get_workflow(wf_id, texts=False).namespace,
            "resources": act.resources_dict(), "status": act.status, "job_id": act.job_id,
            "node": act.node, "parents": self.parents_of(act_id), "created_at": act.created_at,
            "started_at": act.started_at, "finished_at": act.finished_at,
            "attempt": number, "reason": act.reason, "message": self._attempt_message(act_id,
                                                                                  number),
        }
        self.enqueue_webhooks(wf_id, act_id, kind, payload, f"{kind}-{act_id}-{number}")

    def _attempt_message(self, act_id: int, number: int) -> str | None:
        row = self.conn.execute("SELECT message FROM attempt WHERE activity_id=? AND number=?",
                                (act_id, number)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def cancel(self, wf_id: int, names: Sequence[str] | None = None) -> list[LiveAttempt]:
        """Mark unfinished activities CANCELLED; returns live attempts the executors must kill."""
        now = time.time()
        with self.transaction() as c:
            acts = [a for a in self.activities(wf_id) if a.status not in _TERMINAL]
            if names is not None:
                wanted = set(names)
                acts = [a for a in acts if a.name in wanted]
            ids = {a.id for a in acts}
            live = [la for la in self.live_attempts(wf_id) if la.activity_id in ids]
            where, states = activity_moving(Status.CANCELLED)
            for a in acts:
                cur = c.execute(
                    f"UPDATE activity SET status=?, reason=?, finished_at=? WHERE id=? AND {where}",
                    (Status.CANCELLED.value, Reason.CANCELLED.value, now, a.id, *states),
                )
                if cur.rowcount:
                    self.add_event(wf_id, a.id, a.attempts or None, "STATE", a.status,
                                   Status.CANCELLED.value, None, "cancelled by user", now)
            where, states = attempt_moving(Status.CANCELLED)
            for la in live:
                c.execute(
                    f"UPDATE attempt SET status=?, reason=?, finished_at=? WHERE id=? AND {where}",
                    (Status.CANCELLED.value, Reason.CANCELLED.value, now, la.attempt_id, *states),
                )
            if names is None:
                wf = self.get_workflow(wf_id, texts=False)
                where, states = workflow_moving(WorkflowStatus.CANCELLED)
                cur = c.execute(
                    f"UPDATE workflow SET status=?, finished_at=? WHERE id=? AND {where}",
                    (WorkflowStatus.CANCELLED.value, now, wf_id, *states),
                )
                if cur.rowcount:
                    self.add_event(wf_id, None, None, "WORKFLOW", wf.status,
                                   WorkflowStatus.CANCELLED.value, None, "cancelled by user")
            else:
                self._skip_descendants(wf_id, [a.id for a in acts], "upstream cancelled")
        return live

    def retry(self, wf_id: int, names: Sequence[str] | None = None) -> int:
        """Reset failed/cancelled activities (all, or by name) and their skipped descendants."""
        with self.transaction() as c:
            acts = {a.id: a for a in self.activities(wf_id)}
            retryable = {Status.FAILED.value, Status.CANCELLED.value, Status.SKIPPED.value}
            if names is None:
                targets = [a.id for a in acts.values() if a.status in retryable]
            else:
                by_name = {a.name: a for a in acts.values()}
                targets = [by_name[n].id for n in names if n in by_name
                           and by_name[n].status in retryable]
            edges = self.edges(wf_id)
            children: dict[int, list[int]] = {}
            parents: dict[int, list[int]] = {}
            for child, parent in edges:
                children.setdefault(parent, []).append(child)
                parents.setdefault(child, []).append(parent)
            reset: set[int] = set()
            queue = deque(targets)
            while queue:
                node = queue.popleft()
                if node in reset or acts[node].status not in retryable:
                    continue
                reset.add(node)
                queue.extend(children.get(node, []))
            for aid in sorted(reset, key=lambda i: acts[i].seq):
                unfinished = sum(
                    1 for p in parents.get(aid, [])
                    if acts[p].status != Status.FINISHED.value
                )
                new = Status.READY if unfinished == 0 else Status.PENDING
                where, states = activity_moving(new, among=[Status(acts[aid].status)])
                cur = c.execute(
                    "UPDATE activity SET status=?, reason=NULL, failures=0, unfinished_parents=?,"
                    f" finished_at=NULL, message=NULL WHERE id=? AND {where}",
                    (new.value, unfinished, aid, *states),
                )
                if cur.rowcount:
                    self.add_event(wf_id, aid, None, "STATE", acts[aid].status, new.value,
                                   None, "retry requested")
            if reset:
                where, states = workflow_moving(WorkflowStatus.RUNNING)
                c.execute(  # a RUNNING workflow stays as it is
                    f"UPDATE workflow SET status=?, finished_at=NULL WHERE id=? AND {where}",
                    (WorkflowStatus.RUNNING.value, wf_id, *states),
                )
                self.add_event(wf_id, None, None, "WORKFLOW", None, WorkflowStatus.RUNNING.value,
                               None, f"retry of {len(reset)} activities")
            return len(reset)
