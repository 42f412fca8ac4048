"""The manifest's state machine and transitions, on a real SQLite file."""

from __future__ import annotations

import time
from pathlib import Path

from akoflow.manifest import Intent, Manifest
from akoflow.port import AttemptOutcome, Resources, Status
from akoflow.spec.models import ActivitySpec, WorkflowSpec


def _spec(**retries: int) -> WorkflowSpec:
    return WorkflowSpec(name="diamond", activities=[
        ActivitySpec(name="a", run="true", retries=retries.get("a", 0)),
        ActivitySpec(name="b", run="true", depends_on=["a"], retries=retries.get("b", 0)),
        ActivitySpec(name="c", run="true", depends_on=["a"]),
        ActivitySpec(name="d", run="true", depends_on=["b", "c"]),
    ])


def _start(m: Manifest, wf_id: int, name: str) -> int:
    act = m.activity_named(wf_id, name)
    assert act is not None and act.status == Status.READY.value, act
    (aid,) = m.begin_attempts(wf_id, [Intent(
        activity_id=act.id, number=act.attempts + 1, site="local", job_name=f"j.{name}",
        attempt_dir=f"/nowhere/{name}", resources=Resources.from_json(act.resources))])
    assert aid is not None
    return aid


def _end(m: Manifest, wf_id: int, attempt_id: int, rc: int) -> None:
    now = time.time()
    m.complete_attempt(wf_id, attempt_id, AttemptOutcome(
        exit_code=rc, reason=None if rc == 0 else "EXIT", started_at=now, finished_at=now))


def _status(m: Manifest, wf_id: int) -> dict[str, str]:
    return {a.name: a.status for a in m.activities(wf_id)}


def test_readiness_is_a_counter(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    wf = m.register_workflow(_spec(), run_root=str(tmp_path))
    assert _status(m, wf.id) == {"a": "READY", "b": "PENDING", "c": "PENDING", "d": "PENDING"}
    _end(m, wf.id, _start(m, wf.id, "a"), 0)
    assert _status(m, wf.id)["b"] == "READY" and _status(m, wf.id)["c"] == "READY"
    _end(m, wf.id, _start(m, wf.id, "b"), 0)
    assert _status(m, wf.id)["d"] == "PENDING"  # still waits for c
    _end(m, wf.id, _start(m, wf.id, "c"), 0)
    assert _status(m, wf.id)["d"] == "READY"
    _end(m, wf.id, _start(m, wf.id, "d"), 0)
    assert m.finalize_workflow(wf.id) == "FINISHED"
    assert m.finalize_workflow(wf.id) is None  # settles once


def test_an_attempt_number_is_claimed_once(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    other = Manifest(tmp_path / "m.db")  # a second dispatcher on the same file
    wf = m.register_workflow(_spec(), run_root=str(tmp_path))
    act = m.activity_named(wf.id, "a")
    assert act is not None
    intent = Intent(activity_id=act.id, number=1, site="local", job_name="j",
                    attempt_dir="/x", resources=Resources())
    assert m.begin_attempts(wf.id, [intent]) != [None]
    assert other.begin_attempts(wf.id, [intent]) == [None]
    assert len(m.attempts(wf.id)) == 1


def test_failure_skips_descendants_and_retries_escalate_memory(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    spec = _spec(b=1)
    spec.activities[1].resources.memory = 1000
    spec.activities[1].retry_memory_factor = 2.0
    wf = m.register_workflow(spec, run_root=str(tmp_path))
    _end(m, wf.id, _start(m, wf.id, "a"), 0)
    _end(m, wf.id, _start(m, wf.id, "b"), 1)
    b = m.activity_named(wf.id, "b")
    assert b is not None and b.status == "READY" and b.resources_dict()["memory"] == 2000
    _end(m, wf.id, _start(m, wf.id, "b"), 1)
    assert _status(m, wf.id)["b"] == "FAILED"
    assert _status(m, wf.id)["d"] == "SKIPPED"
    assert _status(m, wf.id)["c"] == "READY"  # the other branch goes on
    assert [t.number for t in m.attempts(wf.id, b.id)] == [1, 2]
    _end(m, wf.id, _start(m, wf.id, "c"), 0)
    assert m.finalize_workflow(wf.id) == "FAILED"


def test_manual_retry_resets_failed_and_skipped(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    wf = m.register_workflow(_spec(), run_root=str(tmp_path))
    _end(m, wf.id, _start(m, wf.id, "a"), 0)
    _end(m, wf.id, _start(m, wf.id, "b"), 1)
    _end(m, wf.id, _start(m, wf.id, "c"), 0)
    assert m.finalize_workflow(wf.id) == "FAILED"
    assert m.retry(wf.id) == 2  # b and its skipped child d
    assert _status(m, wf.id) == {"a": "FINISHED", "b": "READY", "c": "FINISHED", "d": "PENDING"}
    assert m.get_workflow(wf.id).status == "RUNNING"
    _end(m, wf.id, _start(m, wf.id, "b"), 0)
    _end(m, wf.id, _start(m, wf.id, "d"), 0)
    assert m.finalize_workflow(wf.id) == "FINISHED"


def test_cancel_marks_everything_and_reports_live_jobs(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    wf = m.register_workflow(_spec(), run_root=str(tmp_path))
    aid = _start(m, wf.id, "a")
    live = m.cancel(wf.id)
    assert [la.attempt_id for la in live] == [aid]
    assert set(_status(m, wf.id).values()) == {"CANCELLED"}
    assert m.get_workflow(wf.id).status == "CANCELLED"
    _end(m, wf.id, aid, 0)  # a late report of a cancelled attempt changes nothing
    assert _status(m, wf.id)["a"] == "CANCELLED"


def test_events_record_every_transition(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    wf = m.register_workflow(_spec(), run_root=str(tmp_path))
    _end(m, wf.id, _start(m, wf.id, "a"), 0)
    moves = [(e.from_status, e.to_status) for e in m.events(wf.id) if e.activity == "a"]
    assert moves == [("READY", "SUBMITTING"), ("SUBMITTING", "RUNNING"),
                     ("RUNNING", "FINISHED")]


def test_many_processes_open_a_new_manifest_at_once(tmp_path: Path) -> None:
    """Creating the file, choosing its journal mode and migrating must survive a crowd
    (a `run` registering while `list`/`status` poll, dispatchers starting together)."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from akoflow.manifest import Manifest\n"
        "while time.time() < float(sys.argv[2]): pass\n"
        "m = Manifest(sys.argv[1]); m.list_workflows(); print(m.conn.execute("
        "'PRAGMA journal_mode').fetchone()[0])\n"
    )
    for round_ in range(3):
        db = tmp_path / f"m{round_}.db"
        start = str(time.time() + 1.0)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(db), start],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(8)]
        results = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err for _, err in results]
        modes = {out.strip() for out, _ in results}
        assert len(modes) == 1, modes  # every process agrees on the file's mode
