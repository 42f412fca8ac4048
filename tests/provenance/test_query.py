"""The Python query API on real runs: plain records with the values the manifest recorded."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone

import pytest
from provruns import Run

from akoflow import query
from akoflow.manifest import ManifestError


def test_workflows_default_manifest_from_akoflow_home(diamond: Run,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKOFLOW_HOME", str(diamond.home))
    rows = {w.name: w for w in query.workflows()}  # no manifest given: $AKOFLOW_HOME
    assert set(rows) == {"diamond", "broken"}
    assert rows["diamond"].activities == {"FINISHED": 4}
    assert rows["broken"].activities == {"FAILED": 1, "SKIPPED": 1}
    assert rows["diamond"].id == diamond.wf.id and rows["diamond"].status == "FINISHED"
    assert [w.name for w in query.workflows(status="FAILED")] == ["broken"]


def test_activities_by_name_or_id(diamond: Run) -> None:
    by_name = query.activities("diamond", manifest=diamond.manifest)
    assert by_name == query.activities(diamond.wf.id, manifest=diamond.manifest)
    assert by_name == query.activities(str(diamond.wf.id), manifest=diamond.manifest)
    acts = {a.name: a for a in by_name}
    assert [a.name for a in by_name] == ["split", "left", "right", "join"]
    assert acts["join"].parents == ["left", "right"] and acts["split"].parents == []
    assert (acts["join"].attempts, acts["join"].failures) == (2, 1)
    assert (acts["left"].attempts, acts["right"].attempts) == (2, 1)
    assert acts["join"].wall_time == pytest.approx(
        acts["join"].finished_at - acts["join"].started_at)  # type: ignore[operator]
    assert acts["left"].resources["cpu"] >= 1
    with pytest.raises(ManifestError):
        query.activities("no-such-workflow", manifest=diamond.manifest)


def test_logs_filters(diamond: Run) -> None:
    m = diamond.manifest
    failed = query.logs("diamond", activity="join", status="failed", manifest=m)
    assert [(r.activity, r.attempt, r.to_status) for r in failed] == [("join", 1, "FAILED")]
    assert "exit code 3" in (failed[0].message or "")
    second = query.logs("diamond", activity="join", attempt=2, manifest=m)
    assert [r.to_status for r in second] == ["SUBMITTING", "QUEUED", "RUNNING", "FINISHED"]
    on_node = query.logs("diamond", node=socket.gethostname(), manifest=m)
    assert on_node and all(r.node == socket.gethostname() for r in on_node)
    everything = query.logs("diamond", manifest=m)
    as_dt = datetime.fromtimestamp(failed[0].ts, timezone.utc)
    cut = as_dt.timestamp()  # datetimes hold microseconds: compare at that precision
    since = query.logs("diamond", since=as_dt, manifest=m)
    assert since == [r for r in everything if r.ts >= cut]
    until = query.logs("diamond", until=as_dt.isoformat(), manifest=m)
    assert until == [r for r in everything if r.ts <= cut]
    assert len(query.logs("diamond", limit=3, manifest=m)) == 3


def test_metrics_and_summary(diamond: Run) -> None:
    m = diamond.manifest
    samples = query.metrics("diamond", manifest=m)
    assert {s.source for s in samples} == {"psutil", "rusage"}
    assert all((s.processes > 0) == (s.source == "psutil") for s in samples)
    summary = {s.activity: s for s in query.metric_summary("diamond", manifest=m)}
    assert list(summary) == ["split", "left", "right", "join"]
    assert summary["join"].attempt == 2
    attempts = {(a.activity_id, a.number): a for a in m.attempts(diamond.wf.id)}
    join_id = m.activity_named(diamond.wf.id, "join").id  # type: ignore[union-attr]
    rec = attempts[(join_id, 2)]
    s = summary["join"]
    exit_ = [x for x in samples if (x.activity, x.attempt, x.source) == ("join", 2, "rusage")]
    assert len(exit_) == 1  # the exit sample: cpu % of the last stretch, the kernel's rss
    assert s.cpu_time == rec.cpu_time
    assert s.rusage_peak_rss == (exit_[0].rss or None)
    assert s.rss_peak_source == ("kernel" if exit_[0].rss else "sampled")
    assert s.wall_time == pytest.approx(rec.finished_at - rec.started_at)  # type: ignore[operator]
    live = [x for x in samples if (x.activity, x.attempt, x.source) == ("join", 2, "psutil")]
    assert s.samples == len(live) >= 1
    assert s.rss_peak == max([x.rss for x in live] + [rec.peak_rss or 0]) > 0
    assert s.rss_mean == pytest.approx(sum(x.rss for x in live) / len(live))
    assert s.cpu_percent_mean == pytest.approx(100 * rec.cpu_time / s.wall_time)  # type: ignore[operator]
    # the peak: the busiest stretch, samples and exit sample alike; it covers the whole
    # life of the task, so it is never below the lifetime mean
    assert s.cpu_percent_peak == max(x.cpu_percent for x in live + exit_)
    assert all(x.cpu_percent_peak >= 0.99 * x.cpu_percent_mean  # type: ignore[operator]
               for x in query.metric_summary("diamond", manifest=m))
    per_attempt = query.metric_summary("diamond", per_attempt=True, manifest=m)
    assert [(x.activity, x.attempt) for x in per_attempt] == [
        ("split", 1), ("left", 1), ("left", 2), ("right", 1), ("join", 1), ("join", 2)]


def test_files_by_role_and_activity(diamond: Run) -> None:
    m = diamond.manifest
    pre = query.files("diamond", role="pre-existing", manifest=m)
    assert [(f.activity, f.path, f.size) for f in pre] == [("split", "input.csv", 8)]
    gen = {(f.activity, f.attempt, f.path) for f in
           query.files("diamond", role="generated", manifest=m)}
    assert gen == {("split", 1, "a.txt"), ("left", 1, ".left_tried"), ("left", 2, "l.txt"),
                   ("right", 1, "r.txt"),
                   ("join", 1, ".join_tried"), ("join", 2, "out.txt")}
    both = query.files("diamond", role=["used", "pre-existing"], activity="join", manifest=m)
    assert {(f.attempt, f.path, f.role) for f in both} == {
        (2, "l.txt", "used"), (2, "r.txt", "used")}  # what `cat` read, in the retry
    assert {f.observed for f in both} == {"trace"} and not any(f.ambiguous for f in both)
    data = json.loads(query.to_json(pre))
    assert data[0]["path"] == "input.csv" and data[0]["role"] == "pre-existing"
