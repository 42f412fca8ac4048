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
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from datetime import time as clock
from pathlib import Path
from typing import Any

from akoflow.manifest import EventFilter, Manifest, ManifestError, WorkflowRecord
from akoflow.manifest.queries import MetricRow
from akoflow.port import Status

WorkflowRef = int | str
TimeRef = float | int | datetime | str


@dataclass(frozen=True)
class WorkflowInfo:
    id: int
    name: str
    namespace: str
    runtime: str
    site: str | None
    owner: str | None
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_dir: str
    work_dir: str
    activities: dict[str, int]  # status -> count


@dataclass(frozen=True)
class ActivityInfo:
    id: int
    name: str
    status: str
    reason: str | None
    attempts: int
    failures: int
    node: str | None
    job_id: str | None
    image: str | None
    runtime: str
    resources: dict[str, Any]
    parents: list[str]
    started_at: float | None
    finished_at: float | None
    wall_time: float | None
    message: str | None
    retries: int = 0  # attempts allowed beyond the first


@dataclass(frozen=True)
class LogRecord:
    id: int
    ts: float
    kind: str
    activity: str | None
    attempt: int | None
    from_status: str | None
    to_status: str | None
    node: str | None
    message: str | None


@dataclass(frozen=True)
class MetricRecord:
    activity: str
    attempt: int
    ts: float
    cpu_percent: float
    rss: int
    vms: int
    read_bytes: int
    write_bytes: int
    threads: int
    processes: int
    # "psutil": a sample while running; "rusage": the exit sample (cpu % since the last
    # sample from the task's whole CPU time; rss = the kernel's peak, 0 where unknown)
    source: str


@dataclass(frozen=True)
class MetricSummary:
    activity: str
    attempt: int
    samples: int  # psutil samples (the exit sample not counted)
    cpu_percent_peak: float | None  # the busiest stretch between two samples (or the exit)
    cpu_percent_mean: float | None  # cpu_time / wall_time when known: time-weighted
    rss_peak: int | None  # the largest of: samples' summed rss, a process's VmHWM, rusage
    rss_mean: float | None
    wall_time: float | None
    cpu_time: float | None
    rusage_peak_rss: int | None  # the kernel's peak at exit (wait4), None where unknown
    rss_peak_source: str | None = None  # "kernel" (its exit figure is known) | "sampled"


@dataclass(frozen=True)
class FailureRecord:
    """One failed attempt; `final` when its activity failed for good, False when a later
    attempt recovered it (or is still trying)."""

    activity: str
    attempt: int
    exit_code: int | None
    reason: str | None
    message: str | None
    stderr_tail: str
    stderr_path: str | None
    final: bool


@dataclass(frozen=True)
class FileRecord:
    activity: str
    attempt: int
    path: str  # non-UTF-8 bytes escaped (`\\xff`); `raw_b64` has the bytes then
    size: int | None
    mtime: float | None
    role: str  # generated | used | pre-existing | invalidated
    hash: str | None
    observed: str = "snapshot"  # trace: seen by syscall tracing; snapshot; cache
    ambiguous: bool = False  # the attribution may be wrong (concurrent tasks, snapshots)
    raw_b64: str | None = None


@contextmanager
def _manifest(manifest: Manifest | None) -> Iterator[Manifest]:
    if manifest is not None:
        yield manifest
        return
    m = Manifest.open_default()
    try:
        yield m
    finally:
        m.close()


def _workflow(m: Manifest, wf: WorkflowRef) -> WorkflowRecord:
    return m.get_workflow(wf) if isinstance(wf, int) else m.find_workflow(str(wf))


def _epoch(t: TimeRef | None) -> float | None:
    """Seconds since the epoch from a number, a datetime or an ISO-8601 string."""
    if t is None or isinstance(t, (int, float)):
        return None if t is None else float(t)
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.timestamp()


def workflows(limit: int = 50, status: str | None = None, *,
              manifest: Manifest | None = None) -> list[WorkflowInfo]:
    """Newest first."""
    with _manifest(manifest) as m:
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
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
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
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
        acts = m.activities(w.id)
        names = {a.id: a.name for a in acts}
        parents: dict[int, list[str]] = defaultdict(list)
        for child, parent in m.edges(w.id):
            parents[child].append(names[parent])
        return [
            ActivityInfo(a.id, a.name, a.status, a.reason, a.attempts, a.failures, a.node,
                         a.job_id, a.image, a.runtime, a.resources_dict(),
                         sorted(parents.get(a.id, [])), a.started_at, a.finished_at,
                         _wall(a.started_at, a.finished_at), a.message, a.retries)
            for a in acts
        ]


def logs(wf: WorkflowRef, activity: str | None = None, status: str | None = None,
         node: str | None = None, attempt: int | None = None, since: TimeRef | None = None,
         until: TimeRef | None = None, limit: int | None = None, *,
         manifest: Manifest | None = None) -> list[LogRecord]:
    """The run log (every state transition and event), filtered as `akoflow logs` does."""
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
        f = EventFilter(activity=activity, status=status, node=node, attempt=attempt,
                        since=_epoch(since), until=_epoch(until), limit=limit)
        return [LogRecord(e.id, e.ts, e.kind, e.activity, e.attempt, e.from_status,
                          e.to_status, e.node, e.message) for e in m.events(w.id, f)]


def metrics(wf: WorkflowRef, activity: str | None = None, *,
            manifest: Manifest | None = None) -> list[MetricRecord]:
    with _manifest(manifest) as m:
        return [_metric(r) for r in m.metrics(_workflow(m, wf).id, activity)]


def _metric(r: MetricRow) -> MetricRecord:
    s = r.sample
    # The worker's exit summary is the only sample with no process in it (see worker.monitor).
    source = "psutil" if s.processes > 0 else "rusage"
    return MetricRecord(r.activity, r.attempt, s.ts, s.cpu_percent, s.rss, s.vms,
                        s.read_bytes, s.write_bytes, s.threads, s.processes, source)


def metric_summary(wf: WorkflowRef, *, per_attempt: bool = False,
                   manifest: Manifest | None = None) -> list[MetricSummary]:
    """Per activity (its final attempt), or per attempt: peak/mean cpu % and rss, times.

    Every sample's cpu % is the tree's CPU time over the wall time since the sample before
    (the first: since the process started; the exit sample: since the last one), so the
    peak is the busiest stretch and never below the lifetime mean, which is cpu_time over
    wall time. The rss peak is the kernel's (rusage at exit) where the process waiting on the
    task could read it, else sampled: the summed rss of the tree at a sample, or one
    process's high-water mark (VmHWM) read at a sample; `rss_peak_source` says which.
    """
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
        samples: dict[tuple[str, int], list[MetricRecord]] = defaultdict(list)
        for r in m.metrics(w.id):
            rec = _metric(r)
            samples[(rec.activity, rec.attempt)].append(rec)
        names = {a.id: a.name for a in m.activities(w.id)}
        attempts = sorted(m.attempts(w.id), key=lambda t: (t.activity_id, t.number))
        if not per_attempt:
            final = {t.activity_id: t for t in attempts}
            attempts = [final[a] for a in names if a in final]
        out = []
        for t in attempts:
            key = (names[t.activity_id], t.number)
            every = samples.get(key, [])
            live = [s for s in every if s.source == "psutil"]
            kernel = max((s.rss for s in every if s.source == "rusage"), default=0)
            wall = _wall(t.started_at, t.finished_at)
            peak_rss = max([s.rss for s in live] + [t.peak_rss or 0]) or None
            # kernel: its exit figure is known (exact for every single process; a sample's
            # sum over processes running at once may still be larger, and is then shown).
            source = None if peak_rss is None else ("kernel" if kernel else "sampled")
            out.append(MetricSummary(
                key[0], t.number, len(live), max((s.cpu_percent for s in every), default=None),
                _cpu_mean(t.cpu_time, wall, live), peak_rss,
                sum(s.rss for s in live) / len(live) if live else None,
                wall, t.cpu_time, kernel or None, source))
        return out


def _cpu_mean(cpu_time: float | None, wall: float | None, live: Sequence[MetricRecord]
              ) -> float | None:
    if cpu_time is not None and wall:
        return 100.0 * cpu_time / wall
    return sum(s.cpu_percent for s in live) / len(live) if live else None


def _wall(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(end - start, 0.0)


def failures(wf: WorkflowRef, *, manifest: Manifest | None = None) -> list[FailureRecord]:
    """Every failed attempt, in order, each marked final or recovered."""
    with _manifest(manifest) as m:
        return [FailureRecord(e.activity, e.attempt, e.exit_code, e.reason, e.message,
                              e.stderr_tail, e.stderr_path, e.final_status == "FAILED")
                for e in m.error_tails(_workflow(m, wf).id)]


def files(wf: WorkflowRef, role: str | Sequence[str] | None = None,
          activity: str | None = None, *, manifest: Manifest | None = None
          ) -> list[FileRecord]:
    """Files each attempt saw: `generated`, `used` or `pre-existing` (one or several)."""
    roles = [role] if isinstance(role, str) else list(role) if role else None
    with _manifest(manifest) as m:
        rows = m.files(_workflow(m, wf).id, roles, activity)
        return [FileRecord(r.activity, r.attempt, r.entry.path, r.entry.size, r.entry.mtime,
                           r.entry.role, r.entry.hash, r.entry.observed, r.entry.ambiguous,
                           base64.b64encode(r.entry.raw).decode() if r.entry.raw else None)
                for r in rows]


def output_tail(wf: WorkflowRef, activity: str, stream: str = "stdout",
                attempt: int | None = None, max_bytes: int = 64 * 1024, *,
                manifest: Manifest | None = None) -> tuple[int, str]:
    """(attempt number, the last `max_bytes` of its stdout or stderr so far): the live log
    of an activity, readable while it runs. (0, "") before any attempt started."""
    from akoflow.manifest import ManifestError
    from akoflow.port.protocol import STDERR, STDOUT

    name = {"stdout": STDOUT, "stderr": STDERR}[stream]
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
        act = m.activity_named(w.id, activity)
        if act is None:
            raise ManifestError(f"workflow {w.id} has no activity {activity!r}")
        tries = [t for t in m.attempts(w.id, act.id) if attempt in (None, t.number)]
        if not tries:
            if attempt is not None:
                raise ManifestError(f"activity {activity!r} has no attempt {attempt}")
            return 0, ""
        t = tries[-1]
        try:
            with open(Path(t.attempt_dir) / name, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(fh.tell() - max_bytes, 0))
                return t.number, fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return t.number, ""


def work_file(wf: WorkflowRef, path: str, *, manifest: Manifest | None = None) -> Path:
    """A file the workflow's provenance records (a used, generated or pre-existing file),
    resolved inside its work directory; ValueError for anything else. Only recorded files
    are served, so no path can reach the manifest, tokens or other users' data."""
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
        if path not in {r.entry.path for r in m.files(w.id)}:
            raise ValueError(f"workflow {w.id} records no file {path!r}")
        root = Path(w.work_dir).resolve()
        full = (root / path).resolve()
        db = Path(m.path).resolve()
        forbidden = {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))}
        if not full.is_relative_to(root) or full in forbidden or not full.is_file():
            raise ValueError(f"{path!r} is not a regular file inside the work directory")
        return full


def placement(wf: WorkflowRef, activity: str, attempt: int | None = None, *,
              manifest: Manifest | None = None) -> dict[str, Any]:
    """Why an attempt went to its node (`akoflow explain`): the policy, the activity's upward
    rank, the plan it followed (AkôScore: alpha's point of the front and the front), and per
    candidate node its score and AkôScore's terms (speed part, memory part). Default: the
    last attempt."""
    with _manifest(manifest) as m:
        w = _workflow(m, wf)
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
