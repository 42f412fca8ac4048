"""Read-only queries for logs, provenance and inspection (run-log filters as Fluss offers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from akoflow.manifest.db import ManifestBase, select_list
from akoflow.manifest.records import EventRecord, WorkflowRecord
from akoflow.manifest.workflows import WF_SELECT_LIGHT
from akoflow.port import FileEntry, MetricSample, Status


@dataclass(frozen=True)
class EventFilter:
    activity: str | None = None
    status: str | None = None
    node: str | None = None
    attempt: int | None = None
    since: float | None = None
    until: float | None = None
    after_id: int | None = None
    limit: int | None = None


@dataclass(frozen=True)
class ErrorTail:
    activity: str
    attempt: int
    exit_code: int | None
    reason: str | None
    stdout_path: str | None
    stderr_path: str | None
    stdout_tail: str
    stderr_tail: str
    message: str | None = None  # the attempt's own words on why (e.g. "asks for 64 cpus")
    final_status: str | None = None  # the activity's state now (FAILED, or FINISHED if a
    # later attempt recovered)


@dataclass(frozen=True)
class FileRow:
    activity: str
    attempt: int
    entry: FileEntry


@dataclass(frozen=True)
class MetricRow:
    activity: str
    attempt: int
    sample: MetricSample


EVENT_SELECT = (f"SELECT {select_list(EventRecord, 'e', {'activity': 'a.name'})} FROM event e"
                " LEFT JOIN activity a ON a.id = e.activity_id")
ERROR_SELECT = "SELECT " + select_list(ErrorTail, "e", {
    "activity": "a.name", "attempt": "t.number", "exit_code": "t.exit_code", "reason": "t.reason",
    "stdout_tail": "COALESCE(e.stdout_tail, '')", "stderr_tail": "COALESCE(e.stderr_tail, '')",
    "message": "t.message", "final_status": "a.status",
}) + (" FROM attempt t JOIN activity a ON a.id=t.activity_id"
      " LEFT JOIN errors e ON e.attempt_id=t.id")

# A sample's NULL counters (nothing measured) read as 0.
_ZERO = {f.name: f"COALESCE(m.{f.name}, {0.0 if f.name == 'cpu_percent' else 0})"
         for f in fields(MetricSample) if f.name != "ts"}
METRIC_SELECT = (f"SELECT a.name AS activity, t.number AS attempt, "
                 f"{select_list(MetricSample, 'm', _ZERO)} FROM metrics m"
                 " JOIN activity a ON a.id=m.activity_id JOIN attempt t ON t.id=m.attempt_id")


class QueriesMixin(ManifestBase):
    def events(self, wf_id: int, f: EventFilter | None = None) -> list[EventRecord]:
        f = f or EventFilter()
        where = ["e.workflow_id=?"]
        params: list[object] = [wf_id]
        if f.activity is not None:
            where.append("a.name=?")
            params.append(f.activity)
        if f.status is not None:
            where.append("(e.to_status=? OR e.kind=?)")
            params += [f.status.upper(), f.status.upper()]
        if f.node is not None:
            where.append("e.node=?")
            params.append(f.node)
        if f.attempt is not None:
            where.append("e.attempt=?")
            params.append(f.attempt)
        if f.since is not None:
            where.append("e.ts>=?")
            params.append(f.since)
        if f.until is not None:
            where.append("e.ts<=?")
            params.append(f.until)
        if f.after_id is not None:
            where.append("e.id>?")
            params.append(f.after_id)
        sql = f"{EVENT_SELECT} WHERE {' AND '.join(where)} ORDER BY e.id"
        if f.limit is not None:
            sql += " LIMIT ?"
            params.append(f.limit)
        return self._rows(EventRecord, sql, params)

    def events_after(self, after_id: int, wf_id: int | None = None, limit: int = 500
                     ) -> list[EventRecord]:
        """Run-log rows with an id above `after_id` (one workflow or all), oldest first: what
        a live event stream polls. Ids grow in commit order (SQLite has one writer at a
        time), so a reader that resumes after the last id it saw misses nothing."""
        where, params = ("e.id>?", [after_id])
        if wf_id is not None:
            where += " AND e.workflow_id=?"
            params.append(wf_id)
        return self._rows(EventRecord, f"{EVENT_SELECT} WHERE {where} ORDER BY e.id LIMIT ?",
                          (*params, limit))

    def last_event_id(self, wf_id: int | None = None) -> int:
        """The newest run-log row id (0 when there is none)."""
        if wf_id is None:
            row = self.conn.execute("SELECT MAX(id) FROM event").fetchone()
        else:
            row = self.conn.execute("SELECT MAX(id) FROM event WHERE workflow_id=?",
                                    (wf_id,)).fetchone()
        return int(row[0] or 0)

    def workflows_page(self, limit: int, before_id: int | None = None,
                       status: str | None = None) -> list[WorkflowRecord]:
        """Newest first, `limit` rows with an id below `before_id`: a page of a listing that
        stays stable while new workflows arrive."""
        where: list[str] = []
        params: list[object] = []
        if before_id is not None:
            where.append("w.id<?")
            params.append(before_id)
        if status is not None:
            where.append("w.status=?")
            params.append(status)
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        return self._rows(WorkflowRecord,
                          f"{WF_SELECT_LIGHT} {cond} ORDER BY w.id DESC LIMIT ?",
                          (*params, limit))

    def count_workflows(self, status: str | None = None) -> int:
        if status is None:
            row = self.conn.execute("SELECT COUNT(*) FROM workflow").fetchone()
        else:
            row = self.conn.execute("SELECT COUNT(*) FROM workflow WHERE status=?",
                                    (status,)).fetchone()
        return int(row[0])

    def workflow_state_counts(self) -> dict[str, int]:
        """How many workflows are in each state (WES `system_state_counts`)."""
        rows = self.conn.execute("SELECT status, COUNT(*) FROM workflow GROUP BY status")
        return {str(s): int(n) for s, n in rows}

    def error_tails(self, wf_id: int, only_failed: bool = True) -> list[ErrorTail]:
        cond = "AND t.status=?" if only_failed else ""
        params = (wf_id, Status.FAILED.value) if only_failed else (wf_id,)
        return self._rows(ErrorTail, f"{ERROR_SELECT} WHERE t.workflow_id=? {cond} ORDER BY t.id",
                          params)

    def files(self, wf_id: int, roles: Sequence[str] | None = None,
              activity: str | None = None) -> list[FileRow]:
        where = ["f.workflow_id=?"]
        params: list[object] = [wf_id]
        if roles:
            where.append(f"f.role IN ({','.join('?' * len(roles))})")
            params += list(roles)
        if activity is not None:
            where.append("a.name=?")
            params.append(activity)
        rows = self.conn.execute(
            "SELECT a.name, t.number, f.path, f.size, f.mtime, f.role, f.hash, f.observed,"
            " f.ambiguous, f.raw FROM files f"
            " JOIN activity a ON a.id=f.activity_id JOIN attempt t ON t.id=f.attempt_id"
            f" WHERE {' AND '.join(where)} ORDER BY f.id",
            params,
        )
        return [FileRow(r[0], r[1], FileEntry(r[2], r[3], r[4], r[5], r[6], str(r[7]),
                                              bool(r[8]), r[9])) for r in rows]

    def overlapped(self, wf_id: int, attempt_id: int, started: float | None,
                   finished: float | None) -> bool:
        """Whether another attempt of the workflow ran while this one did: then a snapshot
        of their shared directory cannot tell whose files are whose. Two indexed lookups."""
        if started is None or finished is None:
            return True
        ended_after = self.conn.execute(
            "SELECT 1 FROM attempt WHERE workflow_id=? AND id<>? AND finished_at>? LIMIT 1",
            (wf_id, attempt_id, started)).fetchone()
        if ended_after:
            return True
        live = self.conn.execute(
            "SELECT 1 FROM attempt WHERE workflow_id=? AND id<>? AND status IN"
            " ('QUEUED','RUNNING') AND started_at<? LIMIT 1",
            (wf_id, attempt_id, finished)).fetchone()
        return live is not None

    def generated_paths(self, wf_id: int) -> dict[str, int]:
        """path -> id of the activity that last generated it in this workflow."""
        rows = self.conn.execute(
            "SELECT path, activity_id FROM files WHERE workflow_id=? AND role='generated'"
            " ORDER BY id",
            (wf_id,),
        )
        return {str(p): int(a) for p, a in rows}

    def metrics(self, wf_id: int, activity: str | None = None) -> list[MetricRow]:
        where = "m.workflow_id=?"
        params: list[object] = [wf_id]
        if activity is not None:
            where += " AND a.name=?"
            params.append(activity)
        rows = self._dicts(f"{METRIC_SELECT} WHERE {where} ORDER BY m.id", params)
        return [MetricRow(r.pop("activity"), r.pop("attempt"), MetricSample(**r)) for r in rows]

    def table_count(self, table: str, wf_id: int) -> int:
        if table not in {"metrics", "files", "errors", "event", "attempt", "activity", "outbox"}:
            raise ValueError(table)
        row = self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE workflow_id=?", (wf_id,))
        return int(row.fetchone()[0])
