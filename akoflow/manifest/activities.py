"""Activity reads and the submit path: intents recorded before the scheduler is called."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from akoflow.manifest.db import select_list
from akoflow.manifest.guards import activity_moving, attempt_moving
from akoflow.manifest.records import ActivityRecord, AttemptRecord, LiveAttempt
from akoflow.manifest.states import LIVE
from akoflow.manifest.workflows import WorkflowsMixin
from akoflow.port import Node, Reason, Resources, Status

ACT_COLS = select_list(ActivityRecord)
ATT_COLS = select_list(AttemptRecord)
# An attempt `t` joined with its activity `a`.
LIVE_SELECT = "SELECT " + select_list(LiveAttempt, "t", {
    "attempt_id": "t.id", "activity": "a.name", "site": "t.executor",
    "activity_status": "a.status"}) + " FROM attempt t JOIN activity a ON a.id = t.activity_id"
_LIVE = tuple(s.value for s in LIVE)
_LIVE_SQL = ",".join("?" * len(_LIVE))


@dataclass(frozen=True, kw_only=True)
class Intent:
    """A submission about to happen: written (SUBMITTING) before the executor is called."""

    activity_id: int
    number: int  # the attempt number, activity.attempts + 1
    site: str
    job_name: str
    attempt_dir: str
    resources: Resources
    node: str | None = None
    job_id: str | None = None  # known up front for executors with deterministic ids
    scores: dict[str, Any] | None = None
    ahead: bool = False  # submitted before its parents ended (scheduler `afterok` chaining)


@dataclass(frozen=True, kw_only=True)
class Submitted:
    attempt_id: int
    job_id: str
    status: Status  # QUEUED or RUNNING
    node: str | None = None
    started_at: float | None = None
    ts: float | None = None  # when the executor accepted it (recording may come later)


class ActivitiesMixin(WorkflowsMixin):
    def activities(
        self, wf_id: int, statuses: Iterable[str] | None = None
    ) -> list[ActivityRecord]:
        if statuses is None:
            return self._rows(
                ActivityRecord,
                f"SELECT {ACT_COLS} FROM activity WHERE workflow_id=? ORDER BY seq",
                (wf_id,),
            )
        st = tuple(statuses)
        return self._rows(
            ActivityRecord,
            f"SELECT {ACT_COLS} FROM activity WHERE workflow_id=? AND status IN"
            f" ({','.join('?' * len(st))}) ORDER BY seq",
            (wf_id, *st),
        )

    def activity_named(self, wf_id: int, name: str) -> ActivityRecord | None:
        return self._one(
            ActivityRecord,
            f"SELECT {ACT_COLS} FROM activity WHERE workflow_id=? AND name=?",
            (wf_id, name),
        )

    def activity_by_id(self, activity_id: int) -> ActivityRecord | None:
        return self._one(
            ActivityRecord, f"SELECT {ACT_COLS} FROM activity WHERE id=?", (activity_id,)
        )

    def ready_activities(
        self, wf_id: int, limit: int = 100_000, site: str | None = None
    ) -> list[ActivityRecord]:
        if site is None:
            return self._rows(
                ActivityRecord,
                f"SELECT {ACT_COLS} FROM activity WHERE workflow_id=? AND status=?"
                " ORDER BY seq LIMIT ?",
                (wf_id, Status.READY.value, limit),
            )
        return self._rows(
            ActivityRecord,
            f"SELECT {ACT_COLS} FROM activity WHERE workflow_id=? AND status=? AND runtime=?"
            " ORDER BY seq LIMIT ?",
            (wf_id, Status.READY.value, site, limit),
        )

    def ready_sites(self, wf_id: int) -> list[str]:
        """Sites (an activity's `runtime`) that have READY activities, so each is asked for
        only what it can take."""
        return [
            str(r[0]) for r in self.conn.execute(
                "SELECT DISTINCT runtime FROM activity WHERE workflow_id=? AND status=?",
                (wf_id, Status.READY.value))
        ]

    def parents_of(self, activity_id: int) -> list[int]:
        return [
            int(r[0])
            for r in self.conn.execute(
                "SELECT parent_id FROM activity_dependency WHERE activity_id=?", (activity_id,)
            )
        ]

    def note_waiting(self, notes: Sequence[tuple[int, str]]) -> None:
        """Why READY activities were not placed this cycle (shown by `akoflow status`)."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE activity SET message=? WHERE id=? AND status=? AND message IS NOT ?",
                [(why, aid, Status.READY.value, why) for aid, why in notes])

    def node_speeds(self) -> dict[tuple[str, str], float]:
        """(site, node) -> speed from the last inventory snapshots (run-time history)."""
        rows = self.conn.execute("SELECT site, name, speed FROM node").fetchall()
        return {(str(s), str(n)): float(v or 1.0) for s, n, v in rows}

    def finished_runs(self, limit: int) -> list[tuple[Any, ...]]:
        """The most recent finished attempts: (name, identity, node, started_at,
        finished_at, peak_rss, executor), newest first, for run-time history."""
        return self.conn.execute(
            "SELECT a.name, a.identity, t.node, t.started_at, t.finished_at, t.peak_rss,"
            " t.executor FROM attempt t JOIN activity a ON a.id = t.activity_id"
            " WHERE t.status = ? AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL"
            " AND t.finished_at >= t.started_at ORDER BY t.finished_at DESC LIMIT ?",
            (Status.FINISHED.value, limit)).fetchall()

    def record_nodes(self, site: str, nodes: Sequence[Node]) -> None:
        """The site's inventory as last seen (node speeds scale run-time history)."""
        now = time.time()
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO node (site, name, snapshot_at, cpus, cpus_free, memory,"
                " memory_free, features, partitions, state, speed, cost_per_hour)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (site, name) DO UPDATE SET"
                " snapshot_at=excluded.snapshot_at, cpus=excluded.cpus,"
                " cpus_free=excluded.cpus_free, memory=excluded.memory,"
                " memory_free=excluded.memory_free, features=excluded.features,"
                " partitions=excluded.partitions, state=excluded.state, speed=excluded.speed,"
                " cost_per_hour=excluded.cost_per_hour",
                [(site, n.name, now, n.cpus, n.cpus_free, n.memory, n.memory_free,
                  json.dumps(list(n.features)), json.dumps(list(n.partitions)), n.state,
                  n.speed, n.cost_per_hour) for n in nodes])

    def parent_names(self, activity_id: int) -> list[str]:
        return [
            str(r[0])
            for r in self.conn.execute(
                "SELECT a.name FROM activity_dependency d JOIN activity a ON a.id = d.parent_id"
                " WHERE d.activity_id=? ORDER BY a.seq", (activity_id,)
            )
        ]

    def edges(self, wf_id: int) -> list[tuple[int, int]]:
        """(activity_id, parent_id) pairs of the workflow."""
        return [
            (int(a), int(p))
            for a, p in self.conn.execute(
                "SELECT activity_id, parent_id FROM activity_dependency WHERE workflow_id=?",
                (wf_id,),
            )
        ]

    def attempts(self, wf_id: int, activity_id: int | None = None) -> list[AttemptRecord]:
        if activity_id is None:
            return self._rows(
                AttemptRecord,
                f"SELECT {ATT_COLS} FROM attempt WHERE workflow_id=? ORDER BY id", (wf_id,),
            )
        return self._rows(
            AttemptRecord,
            f"SELECT {ATT_COLS} FROM attempt WHERE activity_id=? ORDER BY number",
            (activity_id,),
        )

    def attempt_by_id(self, attempt_id: int) -> AttemptRecord | None:
        return self._one(
            AttemptRecord, f"SELECT {ATT_COLS} FROM attempt WHERE id=?", (attempt_id,)
        )

    def live_attempts(self, wf_id: int) -> list[LiveAttempt]:
        return self._rows(
            LiveAttempt,
            f"{LIVE_SELECT} WHERE t.workflow_id=? AND t.status IN ({_LIVE_SQL}) ORDER BY t.id",
            (wf_id, *_LIVE),
        )

    def begin_attempts(self, wf_id: int, intents: Sequence[Intent]) -> list[int | None]:
        """Record intents; returns the attempt id per intent, None where the activity moved on.

        The guard (READY, or PENDING for a child queued ahead, as far as the state table
        allows) with `attempts=number-1` makes two racing dispatchers harmless: only one of
        them can claim a given attempt number.
        """
        now = time.time()
        out: list[int | None] = []
        guards = {b: activity_moving(Status.SUBMITTING, among=[b])
                  for b in (Status.PENDING, Status.READY)}
        with self.transaction() as c:
            for it in intents:
                before = Status.PENDING if it.ahead else Status.READY
                where, states = guards[before]
                res = json.dumps(it.resources.to_json())
                cur = c.execute(
                    "UPDATE activity SET status=?, attempts=?, node=?, job_id=?, reason=NULL,"
                    f" message=NULL, resources=? WHERE id=? AND attempts=? AND {where}",
                    (Status.SUBMITTING.value, it.number, it.node, it.job_id,
                     res, it.activity_id, it.number - 1, *states),
                )
                if not cur.rowcount:
                    out.append(None)
                    continue
                cur = c.execute(
                    "INSERT INTO attempt (workflow_id, activity_id, number, status, executor,"
                    " job_name, job_id, node, attempt_dir, resources, submitted_at, scores)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (wf_id, it.activity_id, it.number, Status.SUBMITTING.value, it.site,
                     it.job_name, it.job_id, it.node, it.attempt_dir, res,
                     now, None if it.scores is None else json.dumps(it.scores)),
                )
                out.append(int(cur.lastrowid or 0))
                self.add_event(wf_id, it.activity_id, it.number, "STATE", before.value,
                               Status.SUBMITTING.value, it.node,
                               f"executor {it.site}" + (" (ahead)" if it.ahead else ""), now)
        return out

    def record_submitted(self, wf_id: int, items: Sequence[Submitted]) -> list[int]:
        """SUBMITTING → QUEUED/RUNNING; returns attempt ids that were cancelled meanwhile."""
        orphaned: list[int] = []
        with self.transaction() as c:
            for s in items:
                row = c.execute("SELECT activity_id, number FROM attempt WHERE id=?",
                                (s.attempt_id,)).fetchone()
                where, states = attempt_moving(s.status, among=[Status.SUBMITTING])
                cur = c.execute(
                    "UPDATE attempt SET status=?, job_id=?, node=COALESCE(?, node),"
                    f" started_at=? WHERE id=? AND {where}",
                    (s.status.value, s.job_id, s.node, s.started_at, s.attempt_id, *states),
                )
                if row is None or not cur.rowcount:
                    orphaned.append(s.attempt_id)
                    continue
                act_id, number = int(row[0]), int(row[1])
                where, states = activity_moving(s.status, among=[Status.SUBMITTING])
                c.execute(
                    "UPDATE activity SET status=?, job_id=?, node=COALESCE(?, node),"
                    f" started_at=COALESCE(?, started_at) WHERE id=? AND {where}",
                    (s.status.value, s.job_id, s.node, s.started_at, act_id, *states),
                )
                self.add_event(wf_id, act_id, number, "STATE", Status.SUBMITTING.value,
                               s.status.value, s.node, f"job {s.job_id}", s.ts or s.started_at)
        return orphaned

    def record_started(
        self, wf_id: int, attempt_id: int, started_at: float, node: str | None
    ) -> None:
        queued = (Status.SUBMITTING, Status.QUEUED)
        with self.transaction() as c:
            row = c.execute("SELECT activity_id, number, status FROM attempt WHERE id=?",
                            (attempt_id,)).fetchone()
            where, states = attempt_moving(Status.RUNNING, among=queued)
            cur = c.execute(
                "UPDATE attempt SET status=?, started_at=?, node=COALESCE(?, node)"
                f" WHERE id=? AND {where}",
                (Status.RUNNING.value, started_at, node, attempt_id, *states),
            )
            if row is None or not cur.rowcount:
                return
            where, states = activity_moving(Status.RUNNING, among=queued)
            c.execute(
                "UPDATE activity SET status=?, started_at=COALESCE(started_at, ?),"
                f" node=COALESCE(?, node) WHERE id=? AND {where}",
                (Status.RUNNING.value, started_at, node, row[0], *states),
            )
            self.add_event(wf_id, int(row[0]), int(row[1]), "STATE", str(row[2]),
                           Status.RUNNING.value, node, None, started_at)

    def abandon_attempt(self, wf_id: int, attempt_id: int, message: str) -> None:
        """An intent that never reached the executor: back to READY, no retry consumed."""
        self._take_back(wf_id, attempt_id, message, Reason.ABANDONED, [Status.SUBMITTING])

    def withdraw_attempt(self, wf_id: int, attempt_id: int, message: str) -> None:
        """Take back a queued attempt that has not run (its job was cancelled): the activity
        waits again (PENDING, or READY once its parents are done); no retry is consumed."""
        self._take_back(wf_id, attempt_id, message, Reason.WITHDRAWN,
                        [Status.SUBMITTING, Status.QUEUED])

    def _take_back(self, wf_id: int, attempt_id: int, message: str, reason: Reason,
                   among: list[Status]) -> None:
        """End an attempt that did not run (CANCELLED with `reason`); its activity waits
        again: PENDING while parents are unfinished, else READY."""
        with self.transaction() as c:
            row = c.execute("SELECT activity_id, number, status FROM attempt WHERE id=?",
                            (attempt_id,)).fetchone()
            where, states = attempt_moving(Status.CANCELLED, among=among)
            cur = c.execute(
                "UPDATE attempt SET status=?, reason=?, message=?, finished_at=?"
                f" WHERE id=? AND {where}",
                (Status.CANCELLED.value, reason.value, message, time.time(), attempt_id,
                 *states),
            )
            if row is None or not cur.rowcount:
                return
            where, states = activity_moving(Status.PENDING, Status.READY, among=among)
            cur = c.execute(
                "UPDATE activity SET status=CASE WHEN unfinished_parents > 0 THEN ? ELSE ? END,"
                f" job_id=NULL WHERE id=? AND {where}",
                (Status.PENDING.value, Status.READY.value, row[0], *states),
            )
            if cur.rowcount:
                self.add_event(wf_id, int(row[0]), int(row[1]), "STATE", str(row[2]),
                               self._pending_or_ready(int(row[0])), None, message)

    def _pending_or_ready(self, activity_id: int) -> str:
        row = self.conn.execute("SELECT status FROM activity WHERE id=?",
                                (activity_id,)).fetchone()
        return str(row[0]) if row else Status.READY.value

    # -- scheduler chaining: activities submitted ahead of their parents ----------------------
    def ahead_candidates(self, wf_id: int, sites: Sequence[str],
                         limit: int) -> list[tuple[ActivityRecord, list[str]]]:
        """PENDING activities whose unfinished parents are all queued or running on the same
        site with a job id: they can be queued now with `afterok` on those jobs."""
        if not sites or limit <= 0:
            return []
        marks = ",".join("?" * len(sites))
        acts = self._rows(
            ActivityRecord,
            f"SELECT {ACT_COLS} FROM activity a WHERE a.workflow_id=? AND a.status=?"
            f" AND a.runtime IN ({marks}) AND NOT EXISTS (SELECT 1 FROM activity_dependency d"
            " JOIN activity p ON p.id = d.parent_id WHERE d.activity_id = a.id AND NOT ("
            " p.status = ? OR (p.status IN (?, ?) AND p.job_id IS NOT NULL"
            " AND p.runtime = a.runtime))) ORDER BY a.seq LIMIT ?",
            (wf_id, Status.PENDING.value, *sites, Status.FINISHED.value,
             Status.QUEUED.value, Status.RUNNING.value, limit),
        )
        out = []
        for act in acts:
            jobs = [str(r[0]) for r in self.conn.execute(
                "SELECT p.job_id FROM activity_dependency d JOIN activity p ON p.id = d.parent_id"
                " WHERE d.activity_id=? AND p.status IN (?, ?) ORDER BY p.seq",
                (act.id, Status.QUEUED.value, Status.RUNNING.value))]
            out.append((act, jobs))
        return out

    def count_ahead(self, wf_id: int) -> int:
        row = self.conn.execute(
            f"SELECT COUNT(*) FROM activity WHERE workflow_id=? AND unfinished_parents > 0"
            f" AND status IN ({_LIVE_SQL})", (wf_id, *_LIVE)).fetchone()
        return int(row[0])

    def stale_ahead(self, wf_id: int) -> list[LiveAttempt]:
        """Queued attempts submitted ahead whose dependencies can no longer be met: the
        activity was skipped, or a parent is no longer queued, running or finished (it
        failed, or went back to READY for a retry and will get a new job id)."""
        return self._rows(
            LiveAttempt,
            f"{LIVE_SELECT} WHERE t.workflow_id=? AND t.status IN (?, ?) AND (a.status = ? OR ("
            " a.unfinished_parents > 0 AND EXISTS (SELECT 1 FROM activity_dependency d"
            " JOIN activity p ON p.id = d.parent_id WHERE d.activity_id = a.id"
            " AND p.status NOT IN (?, ?, ?, ?)))) ORDER BY t.id",
            (wf_id, Status.SUBMITTING.value, Status.QUEUED.value, Status.SKIPPED.value,
             Status.FINISHED.value, Status.SUBMITTING.value, Status.QUEUED.value,
             Status.RUNNING.value),
        )

    def cancel_attempt(self, wf_id: int, attempt_id: int, message: str) -> None:
        """End a live attempt whose activity has already moved on (it was SKIPPED)."""
        where, states = attempt_moving(Status.CANCELLED, among=LIVE)
        with self.transaction() as c:
            c.execute(
                f"UPDATE attempt SET status=?, reason=?, message=?, finished_at=? WHERE id=?"
                f" AND {where}",
                (Status.CANCELLED.value, Reason.SKIPPED.value, message, time.time(), attempt_id,
                 *states),
            )
