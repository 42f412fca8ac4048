"""The Python query API over the manifest: plain records for notebooks and scripts.

    from akoflow import query
    query.workflows()
    query.logs("diamond", activity="join", status="FAILED")
    query.metric_summary(3)

Every function takes a workflow id or name (the newest workflow with that name) and an
optional `manifest=`; without one it opens `$AKOFLOW_HOME/manifest.db` and closes it again,
so a notebook never holds the shared database open between calls. Records are frozen
dataclasses (`dataclasses.asdict` turns them into dicts), never manifest rows, so the
schema can move without breaking anyone's analysis.

By concern: `common.py` (the records, opening the manifest, finding a workflow),
`metrics.py` (samples and their summaries), `files.py` (files attempts touched, output
tails); runs, activities, logs, failures and placements here.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from datetime import time as clock
from typing import Any

from akoflow.manifest import EventFilter, Manifest, ManifestError
from akoflow.port import Status
from akoflow.query.common import (
    ActivityInfo,
    FailureRecord,
    FileRecord,
    LogRecord,
    MetricRecord,
    MetricSummary,
    TimeRef,
    WorkflowInfo,
    WorkflowRef,
    epoch,
    opened,
    wall_time,
    workflow_of,
)
from akoflow.query.files import files, output_tail, work_file
from akoflow.query.metrics import metric_summary, metrics

__all__ = [
    "ActivityInfo",
    "FailureRecord",
    "FileRecord",
    "LogRecord",
    "MetricRecord",
    "MetricSummary",
    "TimeRef",
    "WorkflowInfo",
    "WorkflowRef",
    "activities",
    "as_dicts",
    "failures",
    "files",
    "iso",
    "logs",
    "metric_summary",
    "metrics",
    "output_tail",
    "parse_when",
    "placement",
    "status_report",
    "to_json",
    "work_file",
    "workflows",
]


def workflows(limit: int = 50, status: str | None = None, *,
              manifest: Manifest | None = None) -> list[WorkflowInfo]:
    """Newest first."""
    with opened(manifest) as m:
        return [
            WorkflowInfo(w.id, w.name, w.namespace, w.runtime, w.site, w.owner, w.status,
                         w.created_at, w.started_at, w.finished_at, w.run_dir, w.work_dir,
                         m.status_counts(w.id))
            for w in m.list_workflows(limit, status)
        ]


def parse_when(text: str | None) -> float | None:
    """Seconds since the epoch from an ISO time, `HH:MM[:SS]` today, or an age such as
    `10m` / `2h` / `30s` ago (what `akoflow logs --since` takes); ValueError otherwise."""
    if text is None:
        return None
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if age:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[age.group(2)]
        return time.time() - float(age.group(1)) * mult
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return datetime.combine(datetime.now().date(), clock.fromisoformat(text)).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO, HH:MM, or 10m ago)") from None


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def status_report(wf: WorkflowRef, *, manifest: Manifest | None = None) -> dict[str, Any]:
    """What `akoflow status --json` prints: the workflow's state, counts of activities by
    state, failed attempts split into those of activities that failed for good (`failures`)
    and those a later attempt recovered (`recovered`), and why ready activities wait."""
    with opened(manifest) as m:
        w = workflow_of(m, wf)
        failed = failures(w.id, manifest=m)
        return {
            "id": w.id, "name": w.name, "status": w.status, "site": w.site,
            "run_dir": w.run_dir, "work_dir": w.work_dir,
            "created_at": iso(w.created_at), "started_at": iso(w.started_at),
            "finished_at": iso(w.finished_at), "counts": m.status_counts(w.id),
            "failures": [_failure(f) for f in failed if f.final],
            "recovered": [_failure(f) for f in failed if not f.final],
            "waiting": [{"activity": a.name, "why": a.message}
                        for a in m.activities(w.id, [Status.READY.value]) if a.message],
        }


def _failure(f: FailureRecord) -> dict[str, Any]:
    return {"activity": f.activity, "attempt": f.attempt, "exit_code": f.exit_code,
            "reason": f.reason, "message": f.message, "stderr_tail": f.stderr_tail,
            "stderr_path": f.stderr_path}


def activities(wf: WorkflowRef, *, manifest: Manifest | None = None) -> list[ActivityInfo]:
    with opened(manifest) as m:
        w = workflow_of(m, wf)
        acts = m.activities(w.id)
        names = {a.id: a.name for a in acts}
        parents: dict[int, list[str]] = defaultdict(list)
        for child, parent in m.edges(w.id):
            parents[child].append(names[parent])
        return [
            ActivityInfo(a.id, a.name, a.status, a.reason, a.attempts, a.failures, a.node,
                         a.job_id, a.image, a.runtime, a.resources_dict(),
                         sorted(parents.get(a.id, [])), a.started_at, a.finished_at,
                         wall_time(a.started_at, a.finished_at), a.message, a.retries)
            for a in acts
        ]


def logs(wf: WorkflowRef, activity: str | None = None, status: str | None = None,
         node: str | None = None, attempt: int | None = None, since: TimeRef | None = None,
         until: TimeRef | None = None, limit: int | None = None, *,
         manifest: Manifest | None = None) -> list[LogRecord]:
    """The run log (every state transition and event), filtered as `akoflow logs` does."""
    with opened(manifest) as m:
        w = workflow_of(m, wf)
        f = EventFilter(activity=activity, status=status, node=node, attempt=attempt,
                        since=epoch(since), until=epoch(until), limit=limit)
        return [LogRecord(e.id, e.ts, e.kind, e.activity, e.attempt, e.from_status,
                          e.to_status, e.node, e.message) for e in m.events(w.id, f)]


def failures(wf: WorkflowRef, *, manifest: Manifest | None = None) -> list[FailureRecord]:
    """Every failed attempt, in order, each marked final or recovered."""
    with opened(manifest) as m:
        return [FailureRecord(e.activity, e.attempt, e.exit_code, e.reason, e.message,
                              e.stderr_tail, e.stderr_path, e.final_status == "FAILED")
                for e in m.error_tails(workflow_of(m, wf).id)]


def placement(wf: WorkflowRef, activity: str, attempt: int | None = None, *,
              manifest: Manifest | None = None) -> dict[str, Any]:
    """Why an attempt went to its node (`akoflow explain`): the policy, the activity's upward
    rank, the plan it followed (AkôScore: alpha's point of the front and the front), and per
    candidate node its score and AkôScore's terms (speed part, memory part). Default: the
    last attempt."""
    with opened(manifest) as m:
        w = workflow_of(m, wf)
        act = m.activity_named(w.id, activity)
        if act is None:
            raise ManifestError(f"workflow {w.id} has no activity {activity!r}")
        tries = [a for a in m.attempts(w.id, act.id) if attempt is None or a.number == attempt]
        if attempt is not None and not tries:
            raise ManifestError(f"{activity} has no attempt {attempt}")
    rec = tries[-1] if tries else None
    stored: dict[str, Any] = json.loads(rec.scores) if rec is not None and rec.scores else {}
    scores: dict[str, float | None] = stored.get("scores") or {}
    terms: dict[str, dict[str, float]] = stored.get("terms") or {}
    node = rec.node if rec is not None else act.node
    picked = stored.get("node") or node  # the policy's pick (a local task runs on this host)
    ranked = sorted(scores.items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1e300))
    return {"workflow_id": w.id, "activity": activity, "status": act.status,
            "attempt": rec.number if rec else None, "node": picked, "ran_on": node,
            "alpha": act.alpha,
            "policy": stored.get("policy"), "rank": stored.get("rank"),
            "plan": stored.get("plan"), "scores": scores,
            "candidates": [{"node": n, "score": s, **terms.get(n, {}), "chosen": n == picked}
                           for n, s in ranked],
            "waiting": act.message if act.status == "READY" else None}


def as_dicts(records: Sequence[Any]) -> list[dict[str, Any]]:
    """Records as plain dicts (for pandas.DataFrame, JSON, ...)."""
    return [asdict(r) for r in records]


def to_json(records: Sequence[Any]) -> str:
    return json.dumps(as_dicts(records), indent=2, default=str)
