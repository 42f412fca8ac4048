"""Outbox delivery against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import Iterator

import pytest
from webhook_helpers import Receiver, make_due, make_spec, run_activity

from akoflow.events import backoff, deliver
from akoflow.manifest import Manifest
from akoflow.spec import parse_workflow_text
from akoflow.spec.errors import SpecError


def register(m: Manifest, url: str, secret: str | None = "s3cret", *, retries: int = 0) -> int:
    hooks = [{"name": "h", "url": url, **({"secret": secret} if secret else {})}]
    return m.register_workflow(make_spec(hooks, retries=retries), run_root="/tmp/runs").id


def run_all(m: Manifest, wf_id: int, names: str = "abcd") -> None:
    for name in names:
        run_activity(m, wf_id, name)
    m.finalize_workflow(wf_id)


def keys(m: Manifest, wf_id: int) -> list[str]:
    return [r.idempotency_key for r in m.outbox_rows(wf_id)]


def test_delivers_every_event_in_order_with_headers(
    manifest: Manifest, receiver: Receiver
) -> None:
    receiver.start()
    wf = register(manifest, receiver.url)
    run_all(manifest, wf)
    assert deliver(manifest, wf, budget=5.0) == 5
    hits = receiver.hits
    assert [h.headers["Idempotency-Key"] for h in hits] == keys(manifest, wf)
    assert [h.json["type"] for h in hits] == ["ACTIVITY_COMPLETED"] * 4 + ["WORKFLOW_DONE"]
    first = hits[0]
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-Akoflow-Event"] == "ACTIVITY_COMPLETED"
    assert first.headers["X-Akoflow-Delivery-Attempt"] == "1"
    data = first.json["data"]
    assert data["Name"] == "a" and data["Namespace"] == "science" and data["Status"] == 2
    assert data["ProcId"] == "job-a-1" and data["DependOnActivity"] is None
    d = hits[3].json["data"]
    parents = {manifest.activity_named(wf, n).id for n in "bc"}  # type: ignore[union-attr]
    assert d["Name"] == "d" and d["DependOnActivity"] == min(parents)
    done = hits[4].json["data"]
    assert set(done) == {"ID", "Namespace", "Runtime", "Name", "RawWorkflow", "Status"}
    assert done["ID"] == wf and done["Status"] == 2
    assert all(r.delivered_at is not None for r in manifest.outbox_rows(wf))
    assert deliver(manifest, wf, budget=5.0) == 0  # nothing left: nothing re-sent
    assert len(receiver.hits) == 5


def test_hmac_signature_verifies_and_override_wins(
    manifest: Manifest, receiver: Receiver
) -> None:
    receiver.start()
    wf = register(manifest, receiver.url, secret="s3cret")
    run_activity(manifest, wf, "a")
    deliver(manifest, wf, budget=5.0)
    hit = receiver.hits[-1]
    want = hmac.new(b"s3cret", hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-Akoflow-Signature"] == f"sha256={want}"
    bad = hmac.new(b"other", hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-Akoflow-Signature"] != f"sha256={bad}"

    run_activity(manifest, wf, "b")
    deliver(manifest, wf, budget=5.0, secret="site-secret")
    hit = receiver.hits[-1]
    want = hmac.new(b"site-secret", hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-Akoflow-Signature"] == f"sha256={want}"


def test_no_secret_no_signature(manifest: Manifest, receiver: Receiver) -> None:
    receiver.start()
    wf = register(manifest, receiver.url, secret=None)
    run_activity(manifest, wf, "a")
    assert deliver(manifest, wf, budget=5.0) == 1
    assert "X-Akoflow-Signature" not in receiver.hits[0].headers


def test_receiver_down_then_up_gets_everything_once_in_order(
    manifest: Manifest, receiver: Receiver
) -> None:
    """Down for a part of the run, flaky when up (answers 500 after taking the event)."""
    wf = register(manifest, receiver.url, retries=0)
    run_activity(manifest, wf, "a")
    assert deliver(manifest, wf, budget=2.0) == 0  # port closed
    run_activity(manifest, wf, "b")
    run_activity(manifest, wf, "c", exit_code=1)  # ACTIVITY_FAILED, d SKIPPED
    manifest.finalize_workflow(wf)  # WORKFLOW_FAILED
    make_due(manifest)
    assert deliver(manifest, wf, budget=2.0) == 0  # still down
    rows = manifest.outbox_rows(wf)
    assert rows[0].tries == 2 and all(r.tries == 0 for r in rows[1:])  # stopped at the first

    manifest.retry(wf, ["c"])  # then c succeeds, d runs, the workflow is done
    run_all(manifest, wf, "cd")
    receiver.codes = [200, 500, 200, 503]  # the 2nd and 4th POSTs "fail" after arriving
    receiver.start()
    for _ in range(6):
        make_due(manifest)
        deliver(manifest, wf, budget=5.0)
    expected = keys(manifest, wf)
    assert len(expected) == 7
    assert [h.headers["Idempotency-Key"] for h in receiver.events()] == expected
    assert len(receiver.hits) == 9  # two duplicates, dropped by key above
    types = [h.json["type"] for h in receiver.events()]
    assert types == ["ACTIVITY_COMPLETED", "ACTIVITY_COMPLETED", "ACTIVITY_FAILED",
                     "WORKFLOW_FAILED", "ACTIVITY_COMPLETED", "ACTIVITY_COMPLETED",
                     "WORKFLOW_DONE"]
    c_events = [h.json["type"] for h in receiver.events() if h.json["data"].get("Name") == "c"]
    assert c_events == ["ACTIVITY_FAILED", "ACTIVITY_COMPLETED"]
    attempts = [h.headers["X-Akoflow-Delivery-Attempt"] for h in receiver.hits]
    assert attempts[0] == "3"  # row a: two refused tries before
    assert all(r.delivered_at is not None for r in manifest.outbox_rows(wf))


def test_failed_row_blocks_later_rows_until_it_is_due(
    manifest: Manifest, receiver: Receiver
) -> None:
    receiver.codes = [500]
    receiver.start()
    wf = register(manifest, receiver.url)
    run_activity(manifest, wf, "a")
    assert deliver(manifest, wf, budget=5.0) == 0
    run_activity(manifest, wf, "b")  # a new row, due now, behind a row that waits
    assert deliver(manifest, wf, budget=5.0) == 0
    assert len(receiver.hits) == 1
    make_due(manifest)
    assert deliver(manifest, wf, budget=5.0) == 2
    assert [h.json["data"]["Name"] for h in receiver.hits] == ["a", "a", "b"]


def test_backoff_moves_next_try_at(manifest: Manifest, receiver: Receiver) -> None:
    receiver.codes = [500, 500, 500]
    receiver.start()
    wf = register(manifest, receiver.url)
    run_activity(manifest, wf, "a")
    waits = []
    for _ in range(3):
        make_due(manifest)
        before = time.time()
        deliver(manifest, wf, budget=5.0)
        (row,) = manifest.outbox_rows(wf)
        waits.append(row.next_try_at - before)
        assert row.last_error == "HTTP 500" and row.delivered_at is None
    assert row.tries == 3
    for wait, base in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert base * 0.9 <= wait <= base * 1.1 + 0.5, waits


def test_backoff_schedule_and_cap() -> None:
    for tries, base in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (8, 256.0), (9, 300.0),
                        (50, 300.0), (10**6, 300.0)]:
        for _ in range(20):
            assert base <= backoff(tries) <= base * 1.1
    assert len({backoff(3) for _ in range(20)}) > 1  # jittered


def test_redirect_and_error_status_are_failures(
    manifest: Manifest, receiver: Receiver
) -> None:
    receiver.codes = [302, 404]
    receiver.start()
    wf = register(manifest, receiver.url)
    run_activity(manifest, wf, "a")
    assert deliver(manifest, wf, budget=5.0) == 0
    assert manifest.outbox_rows(wf)[0].last_error == "HTTP 302"
    assert [h.path for h in receiver.hits] == ["/hook"]  # not followed to /moved
    make_due(manifest)
    assert deliver(manifest, wf, budget=5.0) == 0
    assert manifest.outbox_rows(wf)[0].last_error == "HTTP 404"


def test_bad_url_is_a_failure_not_an_exception(manifest: Manifest) -> None:
    """Rows whose URL a spec check would refuse (written by an older version, say) fail
    alone, into their own last_error."""
    wf = register(manifest, "http://127.0.0.1:9/hook")
    run_activity(manifest, wf, "a")
    with manifest.transaction() as c:
        c.execute("UPDATE outbox SET url='file:///etc/passwd'")
    assert deliver(manifest, wf, budget=1.0) == 0
    assert "scheme" in (manifest.outbox_rows(wf)[0].last_error or "")


def test_one_malformed_url_fails_alone(manifest: Manifest, receiver: Receiver) -> None:
    receiver.start()
    broken = register(manifest, receiver.url)
    fine = register(manifest, receiver.url)
    run_activity(manifest, broken, "a")
    run_activity(manifest, fine, "a")
    with manifest.transaction() as c:
        c.execute("UPDATE outbox SET url='http://[::1' WHERE workflow_id=?", (broken,))
    assert deliver(manifest, None, budget=5.0) == len(manifest.outbox_rows(fine))
    assert "not a valid URL" in (manifest.outbox_rows(broken)[0].last_error or "")
    assert {h.json["data"]["WorkflowId"] for h in receiver.hits} == {fine}


def test_malformed_url_is_a_spec_error() -> None:
    text = ("name: w\nspec:\n  webhooks:\n    - {name: h, url: 'http://[::1'}\n"
            "  activities:\n    - {name: a, run: x}\n")
    with pytest.raises(SpecError, match=r"webhooks\[0\]\.url.*not a valid URL"):
        parse_workflow_text(text)


def test_trickling_receiver_never_exceeds_budget(manifest: Manifest, trickler: str) -> None:
    wf = register(manifest, trickler)
    run_all(manifest, wf)
    start = time.monotonic()
    assert deliver(manifest, wf, budget=2.0) == 0
    assert time.monotonic() - start < 3.0
    assert "no complete answer" in (manifest.outbox_rows(wf)[0].last_error or "")


@pytest.fixture
def blackhole() -> Iterator[str]:
    """Accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(50)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def test_closed_port_stays_within_budget(manifest: Manifest, receiver: Receiver) -> None:
    wf = register(manifest, receiver.url)  # never started
    run_all(manifest, wf)
    start = time.monotonic()
    assert deliver(manifest, wf, budget=0.5) == 0
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("budget", [0.3, 1.0])
def test_silent_receiver_never_exceeds_budget(
    manifest: Manifest, blackhole: str, budget: float
) -> None:
    hooks = [{"name": f"h{i}", "url": f"{blackhole}{i}"} for i in range(4)]
    wf = manifest.register_workflow(make_spec(hooks), run_root="/tmp/runs").id
    run_all(manifest, wf)
    start = time.monotonic()
    assert deliver(manifest, wf, budget=budget, timeout=5.0) == 0
    elapsed = time.monotonic() - start
    assert budget - 0.1 <= elapsed <= budget + 1.0, elapsed  # + a commit on a busy disk
    tried = [r for r in manifest.outbox_rows(wf) if r.tries]
    assert tried and all("no complete answer" in (r.last_error or "") for r in tried)


def test_sleeping_server_never_exceeds_budget(manifest: Manifest, receiver: Receiver) -> None:
    receiver.delay = 10.0
    receiver.start()
    wf = register(manifest, receiver.url)
    run_all(manifest, wf)
    start = time.monotonic()
    assert deliver(manifest, wf, budget=0.8, timeout=5.0) == 0
    assert time.monotonic() - start <= 0.8 + 1.0


def test_zero_budget_sends_nothing(manifest: Manifest, receiver: Receiver) -> None:
    receiver.start()
    wf = register(manifest, receiver.url)
    run_activity(manifest, wf, "a")
    assert deliver(manifest, wf, budget=0.0) == 0
    assert receiver.hits == [] and manifest.outbox_rows(wf)[0].tries == 0


def test_all_workflows_when_wf_id_is_none(manifest: Manifest, receiver: Receiver) -> None:
    receiver.start()
    one, two = register(manifest, receiver.url), register(manifest, receiver.url)
    run_activity(manifest, one, "a")
    run_activity(manifest, two, "a")
    assert deliver(manifest, None, budget=5.0) == 2
    assert {h.json["data"]["WorkflowId"] for h in receiver.hits} == {one, two}


def test_corrupt_snapshot_is_recorded_not_raised(manifest: Manifest, receiver: Receiver) -> None:
    receiver.start()
    wf = register(manifest, receiver.url)
    run_activity(manifest, wf, "a")
    run_activity(manifest, wf, "b")
    with manifest.transaction() as c:
        c.execute("UPDATE outbox SET payload='not json' WHERE id=?",
                  (manifest.outbox_rows(wf)[0].id,))
    assert deliver(manifest, wf, budget=5.0) == 0  # b waits behind the broken row: order kept
    first = manifest.outbox_rows(wf)[0]
    assert "cannot render payload" in (first.last_error or "") and first.tries == 1
    assert receiver.hits == []
