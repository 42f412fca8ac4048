"""Samples of each attempt's process tree, and their summary per activity or attempt."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from akoflow.manifest import Manifest
from akoflow.manifest.queries import MetricRow
from akoflow.query.common import (
    MetricRecord,
    MetricSummary,
    WorkflowRef,
    opened,
    wall_time,
    workflow_of,
)


def metrics(wf: WorkflowRef, activity: str | None = None, *,
            manifest: Manifest | None = None) -> list[MetricRecord]:
    with opened(manifest) as m:
        return [_metric(r) for r in m.metrics(workflow_of(m, wf).id, activity)]


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
    with opened(manifest) as m:
        w = workflow_of(m, wf)
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
            wall = wall_time(t.started_at, t.finished_at)
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
