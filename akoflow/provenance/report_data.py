"""Everything the HTML report shows about one workflow, read once from the manifest.

The sections need overlapping joins (attempt timings for the Gantt and the slowest table,
metric peaks for the memory table and the resource charts), so the data is gathered here in
a handful of reads, through the plain-record query API where it has what is needed, and the
renderers stay pure functions of this object (easy to test, no SQL in the HTML code).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import TypeVar

from akoflow import query
from akoflow.manifest import AttemptRecord, Manifest, WorkflowRecord
from akoflow.manifest.queries import ErrorTail

MAX_FILES = 2000  # rows in the files table; the rest is counted, not listed
MAX_FAILURES = 100  # failed attempts listed with their output tails
TAIL_CHARS = 4000  # of each stderr/stdout tail shown
_ROLE_ORDER = {"generated": 0, "used": 1, "pre-existing": 2}


@dataclass(frozen=True)
class Bar:
    """One attempt on the timeline (times are seconds since the epoch)."""

    activity: str
    number: int
    status: str
    reason: str | None
    exit_code: int | None
    node: str | None
    submitted: float
    started: float | None
    finished: float | None
    message: str | None = None


@dataclass
class Stats:
    """Per activity: the final attempt's timings and the peaks over all its attempts."""

    name: str
    status: str
    attempts: int = 0
    failures: int = 0
    wall: float | None = None  # final attempt, start -> end
    total: float | None = None  # first submission -> last end (queueing and retries)
    cpu_time: float | None = None
    peak_rss: int | None = None  # samples, VmHWM or the kernel's exit figure (the largest)
    rss_source: str | None = None  # "kernel" | "sampled" (of peak_rss)
    mean_rss: float | None = None
    peak_cpu: float | None = None
    mean_cpu: float | None = None
    exit_rss: int | None = None  # the kernel's figure at exit (see query.metric_summary)
    samples: int = 0


@dataclass
class ReportData:
    workflow: WorkflowRecord
    counts: dict[str, int]
    order: list[str]  # activity names in definition order
    status: dict[str, str]
    parents: dict[str, list[str]]
    bars: list[Bar]
    stats: dict[str, Stats]
    series: dict[str, list[query.MetricRecord]]  # psutil samples per activity, time order
    exits: dict[str, list[query.MetricRecord]]  # exit samples (cpu % of the last stretch)
    failures: list[ErrorTail]
    failed_attempts: int
    files: list[query.FileRecord]
    file_total: int
    file_roles: dict[str, int]
    file_bytes: dict[str, int]
    now: float = field(default_factory=time.time)

    @property
    def t0(self) -> float:
        """Origin of every time axis: the workflow's start (or its first submission)."""
        starts = [b.submitted for b in self.bars]
        if self.workflow.started_at is not None:
            starts.append(self.workflow.started_at)
        return min(starts) if starts else self.workflow.created_at

    @property
    def t1(self) -> float:
        """End of the time axes: the last thing that happened (now, for a live workflow)."""
        ends = [b.finished or b.started or b.submitted for b in self.bars]
        ends += [b.finished or self.now for b in self.bars if b.status in _LIVE]
        if self.workflow.finished_at is not None:
            ends.append(self.workflow.finished_at)
        return max([*ends, self.t0])


_LIVE = {"SUBMITTING", "QUEUED", "RUNNING"}
_N = TypeVar("_N", int, float)


def load_report_data(m: Manifest, wf_id: int) -> ReportData:
    """Read one workflow: about eight queries, whatever its size."""
    wf = m.get_workflow(wf_id)
    acts = query.activities(wf_id, manifest=m)
    names = {a.id: a.name for a in acts}
    bars = [_bar(names[t.activity_id], t) for t in m.attempts(wf_id)]
    stats = {a.name: Stats(a.name, a.status, a.attempts, a.failures) for a in acts}
    _timings(stats, bars)
    _peaks(stats, query.metric_summary(wf_id, per_attempt=True, manifest=m))
    series: dict[str, list[query.MetricRecord]] = defaultdict(list)
    exits: dict[str, list[query.MetricRecord]] = defaultdict(list)
    for r in query.metrics(wf_id, manifest=m):
        (series if r.source == "psutil" else exits)[r.activity].append(r)
    failures = m.error_tails(wf_id, only_failed=True)
    files = query.files(wf_id, manifest=m)
    roles: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for f in files:
        roles[f.role] += 1
        sizes[f.role] += int(f.size or 0)
    shown = sorted(files, key=lambda f: _ROLE_ORDER.get(f.role, 3))[:MAX_FILES]
    return ReportData(
        workflow=wf, counts=m.status_counts(wf_id), order=[a.name for a in acts],
        status={a.name: a.status for a in acts}, parents={a.name: a.parents for a in acts},
        bars=bars, stats=stats, series=dict(series), exits=dict(exits),
        failures=[_clip(e) for e in failures[:MAX_FAILURES]],
        failed_attempts=sum(1 for b in bars if b.status == "FAILED"),
        files=shown, file_total=len(files), file_roles=dict(roles), file_bytes=dict(sizes),
    )


def _bar(name: str, t: AttemptRecord) -> Bar:
    return Bar(name, t.number, t.status, t.reason, t.exit_code, t.node, t.submitted_at,
               t.started_at, t.finished_at, t.message)


def _timings(stats: dict[str, Stats], bars: list[Bar]) -> None:
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    final: dict[str, Bar] = {}
    for b in bars:
        first[b.activity] = min(first.get(b.activity, b.submitted), b.submitted)
        if b.finished is not None:
            last[b.activity] = max(last.get(b.activity, b.finished), b.finished)
        if b.activity not in final or b.number > final[b.activity].number:
            final[b.activity] = b
    for name, b in final.items():
        s = stats[name]
        if b.started is not None and b.finished is not None:
            s.wall = max(b.finished - b.started, 0.0)
        if name in last:
            s.total = max(last[name] - first[name], 0.0)


def _peaks(stats: dict[str, Stats], summaries: list[query.MetricSummary]) -> None:
    """Peaks over every attempt (a retry that ran out of memory still counts)."""
    for ms in summaries:
        s = stats.get(ms.activity)
        if s is None:
            continue
        s.samples += ms.samples
        if ms.rss_peak is not None and (s.peak_rss is None or ms.rss_peak > s.peak_rss):
            s.peak_rss, s.rss_source = ms.rss_peak, ms.rss_peak_source
        s.peak_cpu = _max(s.peak_cpu, ms.cpu_percent_peak)
        s.exit_rss = _max(s.exit_rss, ms.rusage_peak_rss)
        if ms.attempt >= s.attempts or s.cpu_time is None:
            # The final attempt's means and cpu time are the ones that describe the result.
            s.cpu_time = ms.cpu_time if ms.cpu_time is not None else s.cpu_time
            s.mean_rss = ms.rss_mean if ms.rss_mean is not None else s.mean_rss
            s.mean_cpu = ms.cpu_percent_mean if ms.cpu_percent_mean is not None else s.mean_cpu


def _max(a: _N | None, b: _N | None) -> _N | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _clip(e: ErrorTail) -> ErrorTail:
    return replace(e, stdout_tail=e.stdout_tail[-TAIL_CHARS:],
                   stderr_tail=e.stderr_tail[-TAIL_CHARS:])
