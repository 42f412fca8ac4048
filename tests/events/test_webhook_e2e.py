"""Webhooks from a real `akoflow run`: the receiver is down during the run, comes up, and
`akoflow notify` (from the "login node") still delivers every event exactly once, in order."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

from tests.conftest import EXAMPLES, ak
from tests.events.webhook_helpers import Receiver, free_port


def test_receiver_down_then_notify_delivers_everything(akhome: Path, tmp_path: Path) -> None:
    port = free_port()
    receiver = Receiver(port)
    wf = tmp_path / "wf.yaml"
    text = (EXAMPLES / "diamond.yaml").read_text().replace(
        "  activities:",
        f"  webhooks:\n    - name: ops\n      url: http://127.0.0.1:{port}/hook\n  activities:",
        1)
    wf.write_text(text)
    # nobody listens: the run must finish anyway, quickly, with the events kept in the outbox
    start = time.time()
    proc = ak("run", str(wf), home=akhome)
    assert proc.returncode == 0, proc.stderr
    assert time.time() - start < 60
    pending = json.loads(ak("notify", "--budget", "1", "--json", home=akhome).stdout)
    assert pending["delivered"] == 0 and pending["pending"] == 5  # 4 activities + workflow
    receiver.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            # backoff is honoured: make the waiting rows due, as time passing would
            db = sqlite3.connect(akhome / "manifest.db")
            db.execute("UPDATE outbox SET next_try_at=0 WHERE delivered_at IS NULL")
            db.commit()
            db.close()
            ak("notify", home=akhome, check=True)
            if len({h.headers["Idempotency-Key"] for h in receiver.hits}) == 5:
                break
        # a second notify sends nothing more
        assert json.loads(ak("notify", "--json", home=akhome).stdout)["delivered"] == 0
    finally:
        receiver.stop()
    unique = {}
    for hit in receiver.hits:  # drop duplicates by key, as a receiver would
        unique.setdefault(hit.headers["Idempotency-Key"], hit)
    events = [h.json for h in unique.values()]
    kinds = [e["type"] for e in events]
    assert sorted(kinds) == ["ACTIVITY_COMPLETED"] * 4 + ["WORKFLOW_DONE"]
    assert kinds[-1] == "WORKFLOW_DONE"  # the workflow's end comes after its activities
    names = [e["data"]["Name"] for e in events if e["type"] == "ACTIVITY_COMPLETED"]
    assert names.index("split") < names.index("left") and names.index("join") == 3
    per_activity: dict[str, int] = defaultdict(int)
    for e in events:
        per_activity[e["data"].get("Name", "")] += 1
    assert max(per_activity.values()) == 1
    done = next(e for e in events if e["type"] == "WORKFLOW_DONE")["data"]
    assert done["Name"] == "diamond" and set(done) == {
        "ID", "Namespace", "Runtime", "Name", "RawWorkflow", "Status"}


def test_a_trickling_receiver_does_not_hold_the_run(akhome: Path, tmp_path: Path,
                                                   trickler: str) -> None:
    """A receiver answering one byte per second: each delivery try ends at its deadline, so
    `run` and `notify --budget` end too (a run of two activities once took minutes)."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: slowhook\nspec:\n  webhooks:\n    - {{name: slow, url: {trickler}}}\n"
                  "  activities:\n    - {name: a, run: 'true'}\n"
                  "    - {name: b, run: 'true', dependsOn: [a]}\n")
    proc = ak("run", str(wf), home=akhome, timeout=60)
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(akhome / "manifest.db")
    db.execute("UPDATE outbox SET next_try_at=0")
    db.commit()
    db.close()
    out = ak("notify", "--budget", "3", "--json", home=akhome, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["delivered"] == 0
