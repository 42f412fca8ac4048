"""The state tables are the rule: the manifest's SQL moves a status only along their edges.

Each test takes an edge out of a table (monkeypatch) and shows that the manifest, on a real
SQLite file, then refuses exactly that move; and a run that goes through every kind of move
(retry, skip, cancel, manual retry, abandoned and withdrawn intents, children queued ahead)
records only moves the tables allow.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from akoflow.manifest import Intent, Manifest, Submitted
from akoflow.manifest.states import (
    ATTEMPT_TRANSITIONS,
    TERMINAL,
    TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    sources_of,
)
from akoflow.port import AttemptOutcome, Resources, Status, WorkflowStatus
from akoflow.spec.models import ActivitySpec, WorkflowSpec


def _manifest(tmp_path: Path, retries: int = 0) -> tuple[Manifest, int]:
    m = Manifest(tmp_path / "m.db")
    spec = WorkflowSpec(name="diamond", activities=[
        ActivitySpec(name="a", run="true", retries=retries),
        ActivitySpec(name="b", run="true", depends_on=["a"], retries=retries),
        ActivitySpec(name="c", run="true", depends_on=["a"]),
        ActivitySpec(name="d", run="true", depends_on=["b", "c"]),
    ])
    return m, m.register_workflow(spec, run_root=str(tmp_path)).id


def _claim(m: Manifest, wf_id: int, name: str, *, ahead: bool = False) -> int | None:
    act = m.activity_named(wf_id, name)
    assert act is not None
    (aid,) = m.begin_attempts(wf_id, [Intent(
        activity_id=act.id, number=act.attempts + 1, site="local", job_name=f"j.{name}",
        attempt_dir=f"/nowhere/{name}", resources=Resources(), ahead=ahead)])
    return aid


def _end(m: Manifest, wf_id: int, attempt_id: int, rc: int) -> None:
    now = time.time()
    m.complete_attempt(wf_id, attempt_id, AttemptOutcome(
        exit_code=rc, reason=None if rc == 0 else "EXIT", started_at=now, finished_at=now))


def _status(m: Manifest, wf_id: int, name: str) -> str:
    act = m.activity_named(wf_id, name)
    assert act is not None
    return act.status


def test_state_table_is_consistent() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert TRANSITIONS[Status.FINISHED] == frozenset()
    for src in TERMINAL - {Status.FINISHED}:  # out of an end state only by a retry
        assert TRANSITIONS[src] <= {Status.READY, Status.PENDING}
    assert set(ATTEMPT_TRANSITIONS) == set(Status) - {Status.PENDING, Status.READY,
                                                       Status.SKIPPED}
    assert all(not ATTEMPT_TRANSITIONS[s] for s in TERMINAL - {Status.SKIPPED})
    assert set(WORKFLOW_TRANSITIONS) == set(WorkflowStatus)
    assert sources_of(Status.SUBMITTING) == ("PENDING", "READY")


def test_an_activity_cannot_be_claimed_once_the_table_forbids_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, wf_id = _manifest(tmp_path)
    monkeypatch.setitem(TRANSITIONS, Status.READY,
                        TRANSITIONS[Status.READY] - {Status.SUBMITTING})
    assert _claim(m, wf_id, "a") is None
    assert _status(m, wf_id, "a") == "READY" and m.attempts(wf_id) == []
    monkeypatch.undo()
    assert _claim(m, wf_id, "a") is not None  # the same call, with the edge back
    assert _status(m, wf_id, "a") == "SUBMITTING"


def test_a_report_is_refused_when_the_attempt_table_lacks_the_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, wf_id = _manifest(tmp_path)
    aid = _claim(m, wf_id, "a")
    assert aid is not None
    monkeypatch.setitem(ATTEMPT_TRANSITIONS, Status.SUBMITTING,
                        ATTEMPT_TRANSITIONS[Status.SUBMITTING] - {Status.FINISHED})
    _end(m, wf_id, aid, 0)
    assert m.attempts(wf_id)[0].status == "SUBMITTING"
    assert _status(m, wf_id, "a") == "SUBMITTING" and _status(m, wf_id, "b") == "PENDING"
    monkeypatch.undo()
    _end(m, wf_id, aid, 0)
    assert _status(m, wf_id, "a") == "FINISHED" and _status(m, wf_id, "b") == "READY"


def test_children_stay_pending_when_the_table_lacks_pending_to_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, wf_id = _manifest(tmp_path)
    aid = _claim(m, wf_id, "a")
    assert aid is not None
    monkeypatch.setitem(TRANSITIONS, Status.PENDING,
                        TRANSITIONS[Status.PENDING] - {Status.READY})
    _end(m, wf_id, aid, 0)
    assert _status(m, wf_id, "a") == "FINISHED"
    assert _status(m, wf_id, "b") == "PENDING" and _status(m, wf_id, "c") == "PENDING"


def test_a_failure_skips_nothing_the_table_does_not_let_skip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, wf_id = _manifest(tmp_path)
    aid = _claim(m, wf_id, "a")
    assert aid is not None
    monkeypatch.setitem(TRANSITIONS, Status.PENDING,
                        TRANSITIONS[Status.PENDING] - {Status.SKIPPED})
    _end(m, wf_id, aid, 1)
    assert _status(m, wf_id, "a") == "FAILED"
    assert {_status(m, wf_id, n) for n in "bcd"} == {"PENDING"}


def test_the_workflow_table_is_obeyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, wf_id = _manifest(tmp_path)
    monkeypatch.setitem(WORKFLOW_TRANSITIONS, WorkflowStatus.PENDING,
                        frozenset({WorkflowStatus.CANCELLED}))
    m.mark_workflow_started(wf_id)
    assert m.workflow_status(wf_id) == "PENDING"
    monkeypatch.undo()
    m.mark_workflow_started(wf_id)
    assert m.workflow_status(wf_id) == "RUNNING"


def test_every_move_of_a_busy_run_is_in_the_tables(tmp_path: Path) -> None:
    m, wf_id = _manifest(tmp_path, retries=1)
    m.mark_workflow_started(wf_id)
    a = _claim(m, wf_id, "a")
    assert a is not None
    m.abandon_attempt(wf_id, a, "never reached the executor")  # SUBMITTING -> READY
    a = _claim(m, wf_id, "a")
    assert a is not None
    m.record_submitted(wf_id, [Submitted(attempt_id=a, job_id="1", status=Status.QUEUED)])
    m.record_started(wf_id, a, time.time(), "n1")
    for child in "bc":  # queued ahead of their running parent (`afterok`)
        aid = _claim(m, wf_id, child, ahead=True)
        assert aid is not None
        m.record_submitted(wf_id, [Submitted(attempt_id=aid, job_id="2", status=Status.QUEUED)])
    c = m.live_attempts(wf_id)[-1]
    m.withdraw_attempt(wf_id, c.attempt_id, "its parent is retried")  # QUEUED -> PENDING
    _end(m, wf_id, a, 1)  # a retry: RUNNING -> READY
    a = _claim(m, wf_id, "a")
    assert a is not None
    _end(m, wf_id, a, 1)  # for good: FAILED, its descendants SKIPPED (b queued ahead too)
    assert {_status(m, wf_id, n) for n in "bcd"} == {"SKIPPED"}
    b = next(la for la in m.live_attempts(wf_id) if la.activity == "b")
    m.cancel_attempt(wf_id, b.attempt_id, "skipped: a parent failed")
    assert m.finalize_workflow(wf_id) == "FAILED"
    assert m.retry(wf_id) == 4  # FAILED/SKIPPED -> READY/PENDING, the workflow reopened
    assert _claim(m, wf_id, "a") is not None
    m.cancel(wf_id)  # every unfinished activity, its live attempt, the workflow
    moves = {(e.from_status, e.to_status) for e in m.events(wf_id) if e.kind == "STATE"
             and e.from_status is not None}
    assert moves, "no moves recorded"
    for src, dst in moves:
        assert Status(dst) in TRANSITIONS[Status(src)], (src, dst)
    flows = [(e.from_status, e.to_status) for e in m.events(wf_id) if e.kind == "WORKFLOW"]
    for src, dst in flows:
        if src is not None:
            assert WorkflowStatus(dst) in WORKFLOW_TRANSITIONS[WorkflowStatus(src)], (src, dst)
    assert {t.status for t in m.attempts(wf_id)} == {"CANCELLED", "FAILED"}
    reasons = {t.reason for t in m.attempts(wf_id)}
    assert {"ABANDONED", "WITHDRAWN", "SKIPPED", "EXIT", "CANCELLED"} <= reasons
