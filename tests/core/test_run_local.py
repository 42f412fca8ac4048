"""End to end through the real CLI: workflows run as local processes with full provenance."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import EXAMPLES, WFCOMMONS, ak, shared_file


def _status(home: Path, wf: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ak("status", wf, "--json", home=home, check=True).stdout)


def _provenance_counts(home: Path, wf_id: int) -> dict[str, dict[int, int]]:
    db = sqlite3.connect(home / "manifest.db")
    out = {}
    for table in ("metrics", "files", "errors", "event"):
        out[table] = dict(db.execute(
            f"SELECT activity_id, COUNT(*) FROM {table} WHERE workflow_id=? AND activity_id"
            " IS NOT NULL GROUP BY activity_id", (wf_id,)).fetchall())
    return out


def test_diamond_runs_with_provenance(akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "diamond.yaml"), home=akhome)
    assert proc.returncode == 0, proc.stderr
    assert "FINISHED" in proc.stdout
    st = _status(akhome, "diamond")
    assert st["counts"] == {"FINISHED": 4}
    counts = _provenance_counts(akhome, st["id"])
    for table in ("metrics", "errors", "event"):
        assert len(counts[table]) == 4, (table, counts[table])
    files = json.loads(ak("describe", "diamond", "--json", home=akhome).stdout)
    assert [a["name"] for a in files["activities"]] == ["split", "left", "right", "join"]
    db = sqlite3.connect(akhome / "manifest.db")
    roles = set(db.execute(
        "SELECT a.name, f.path, f.role FROM files f JOIN activity a ON a.id=f.activity_id"))
    assert ("split", "numbers.txt", "generated") in roles
    assert ("left", "numbers.txt", "used") in roles
    assert ("join", "all.txt", "generated") in roles
    assert ("join", "even.txt", "used") in roles and ("join", "odd.txt", "used") in roles
    work = Path(st["work_dir"])
    assert len((work / "all.txt").read_text().split()) == 1000


def test_fanout_fanin(akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "fanout.yaml"), home=akhome)
    assert proc.returncode == 0, proc.stderr
    st = _status(akhome, "fanout")
    assert st["counts"] == {"FINISHED": 10}
    assert (Path(st["work_dir"]) / "total.txt").read_text().strip() == "360"


def test_failure_skips_descendants_and_retries(akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "failing.yaml"), home=akhome)
    assert proc.returncode == 1
    assert "about to fail" in proc.stdout  # the stderr tail is in the summary
    st = _status(akhome, "failing")
    assert st["counts"] == {"FINISHED": 2, "FAILED": 1, "SKIPPED": 1}
    flaky = [f for f in st["failures"] if f["activity"] == "flaky"]
    assert [f["attempt"] for f in flaky] == [1, 2, 3]  # retries: 2 -> three attempts
    assert all(f["exit_code"] == 3 and "about to fail" in f["stderr_tail"] for f in flaky)
    human = ak("status", "failing", home=akhome).stdout
    assert "about to fail" in human
    logs = ak("logs", "failing", "--activity", "flaky", "--status", "FAILED", home=akhome)
    assert logs.stdout.count("->FAILED") == 3
    retry_events = ak("logs", "failing", "--status", "RETRY", "--json", home=akhome).stdout
    assert len(retry_events.strip().splitlines()) == 2


def test_montage_trace_runs(akhome: Path, tmp_path: Path) -> None:
    wf_yaml = tmp_path / "montage.yaml"
    trace = shared_file(WFCOMMONS / "montage-chameleon-2mass-025d-001.json")
    ak("import", "wfformat", str(trace),
       "-o", str(wf_yaml), "--scale", "0", home=akhome, check=True)
    proc = ak("run", str(wf_yaml), home=akhome, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    st = _status(akhome, json.loads(ak("list", "--json", home=akhome).stdout)[0]["name"])
    assert st["counts"] == {"FINISHED": 619}
    counts = _provenance_counts(akhome, st["id"])
    for table in ("metrics", "errors", "event", "files"):
        assert len(counts[table]) == 619, table


def test_dispatch_one_cycle_at_a_time(akhome: Path) -> None:
    """`akoflow dispatch` is one cycle: calling it repeatedly (as cron or a batch chain
    would) finishes the workflow, with no process of ours alive in between."""
    import time

    wf_id = ak("submit", str(EXAMPLES / "diamond.yaml"), "--json", home=akhome, check=True)
    data = json.loads(wf_id.stdout)
    # stop the detached dispatcher racing us: one-shot dispatches must also cope with it
    deadline = time.time() + 60
    while time.time() < deadline:
        ak("dispatch", str(data["id"]), home=akhome, check=True)
        if _status(akhome, str(data["id"]))["status"] == "FINISHED":
            break
        time.sleep(0.2)
    assert _status(akhome, str(data["id"]))["counts"] == {"FINISHED": 4}


def test_list_and_json_everywhere(akhome: Path) -> None:
    ak("run", str(EXAMPLES / "diamond.yaml"), home=akhome, check=True)
    rows = json.loads(ak("list", "--json", home=akhome, check=True).stdout)
    assert rows[0]["name"] == "diamond" and rows[0]["finished"] == 4
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert desc["activities"][3]["depends_on"] == ["left", "right"]
    events = ak("logs", "1", "--json", home=akhome, check=True).stdout.strip().splitlines()
    assert all("kind" in json.loads(line) for line in events)
    assert json.loads(ak("validate", str(EXAMPLES / "diamond.yaml"), "--json",
                         home=akhome, check=True).stdout)["name"] == "diamond"


def test_python_workflow_with_params(akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "pipeline.py"), "-p", "lines=30", home=akhome)
    assert proc.returncode == 0, proc.stderr
    st = _status(akhome, "wordcount")
    assert st["counts"] == {"FINISHED": 4}
    assert (Path(st["work_dir"]) / "report.txt").read_text().strip() == "30 lines, 150 words"
    bad = ak("run", str(EXAMPLES / "pipeline.py"), "-p", "lines", home=akhome)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
