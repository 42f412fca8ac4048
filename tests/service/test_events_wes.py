"""The event stream (real SSE over a real socket) and GA4GH WES with its reference client,
wes-client 5.0 from PyPI (installed by the dev extra; pip resolves it beside our own
dependencies without conflict)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.service.served import Served, server_env, start_server

SLOW_CHAIN = """name: chain
spec:
  activities:
    - {name: a, run: 'sleep 0.5; echo a > a.txt'}
    - {name: b, run: 'cat a.txt > b.txt', dependsOn: [a]}
    - {name: c, run: 'exit 3', dependsOn: [b]}
"""
PY_WORKFLOW = '''from typing import Annotated

from akoflow.spec import Param, Result, Workflow

wf = Workflow("wes-py")


@wf.job()
def make(lines: Annotated[int, Param(default=3)]) -> str:
    return f"seq 1 {lines} > made.txt; cat input.txt >> made.txt"


@wf.job()
def count(src: Annotated[str, Result("make")]) -> str:
    return f"wc -l < {src}/made.txt > count.txt"
'''


def sse(served: Served, path: str, until: str, headers: dict[str, str] | None = None,
        limit: int = 500) -> list[dict[str, Any]]:
    """Read an event stream until a message whose data contains `until` arrives."""
    out: list[dict[str, Any]] = []
    msg: dict[str, Any] = {}
    h = {"Authorization": f"Bearer {served.token}", **(headers or {})}
    with httpx.Client(base_url=served.url, trust_env=False, timeout=60) as c, \
            c.stream("GET", path, headers=h) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith(
            "text/event-stream")
        for line in r.iter_lines():
            if not line:
                if "data" in msg:
                    out.append(msg)
                    if until in msg["raw"] or len(out) >= limit:
                        return out
                msg = {}
                continue
            key, _, value = line.partition(": ")
            if key == "data":
                msg["raw"], msg["data"] = value, json.loads(value)
            elif key in ("event", "id"):
                msg[key] = value
    return out


def test_stream_of_one_workflow_with_webhook_events(served: Served) -> None:
    wf_id = served.submit_yaml(SLOW_CHAIN)
    msgs = sse(served, f"/akoflow-api/workflows/{wf_id}/events/", '"WORKFLOW_FAILED"')
    states = [(m["data"]["activity"], m["data"]["to_status"]) for m in msgs
              if m["event"] == "state" and m["data"]["kind"] == "STATE"]
    for act in ("a", "b"):
        seen = [s for a, s in states if a == act]
        assert seen.index("RUNNING") < seen.index("FINISHED"), seen
    assert ("c", "FAILED") in states and ("c", "FINISHED") not in states
    kinds = [m["event"] for m in msgs if m["event"] != "state"]
    assert kinds == ["ACTIVITY_COMPLETED", "ACTIVITY_COMPLETED", "ACTIVITY_FAILED",
                     "WORKFLOW_FAILED"]
    done = next(m["data"] for m in msgs if m["event"] == "ACTIVITY_COMPLETED")
    assert done["type"] == "ACTIVITY_COMPLETED"
    assert set(done["data"]) == {"Id", "WorkflowId", "Namespace", "Name", "Image",
                                 "ResourceK8sBase64", "Status", "ProcId",
                                 "DependOnActivity", "CreatedAt", "StartedAt", "FinishedAt"}
    assert done["data"]["Name"] == "a" and done["data"]["Status"] == 2
    end = msgs[-1]["data"]
    assert end["data"]["ID"] == wf_id and end["data"]["Status"] == 3
    ids = [int(m["id"]) for m in msgs if "id" in m]
    assert ids == sorted(set(ids))  # one id per run-log row, increasing


def test_stream_resumes_after_last_event_id(served: Served) -> None:
    wf_id = served.submit_yaml(SLOW_CHAIN.replace("name: chain", "name: chain2"))
    path = f"/akoflow-api/workflows/{wf_id}/events/"
    full = sse(served, path, '"WORKFLOW_FAILED"')
    ids = [m["id"] for m in full if "id" in m]
    resumed = sse(served, path, '"WORKFLOW_FAILED"', {"Last-Event-ID": ids[3]})
    assert [m["id"] for m in resumed if "id" in m] == ids[4:]
    cut = next(i for i, m in enumerate(full) if m.get("id") == ids[3])
    assert [m["raw"] for m in resumed] == [m["raw"] for m in full[cut + 1:]]


def test_global_stream_sees_a_new_workflow(served: Served) -> None:
    import threading

    got: list[list[dict[str, Any]]] = []
    t = threading.Thread(target=lambda: got.append(
        sse(served, "/akoflow-api/events/", '"WORKFLOW_DONE"')))
    t.start()
    import time

    time.sleep(1.0)  # the stream starts "from now": let it open first
    wf_id = served.submit_yaml("name: g\nspec:\n  activities:\n    - {name: x, run: 'true'}\n")
    t.join(60)
    msgs = got[0]
    assert {m["data"].get("workflow_id") for m in msgs if m["event"] == "state"} == {wf_id}
    assert msgs[-1]["event"] == "WORKFLOW_DONE"


def test_workflows_go_on_when_the_service_stops(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "home")
    try:
        wf_id = srv.submit_yaml("name: outlives\nspec:\n  activities:\n"
                                "    - {name: s, run: 'sleep 2'}\n"
                                "    - {name: t, run: 'true', dependsOn: [s]}\n")
    finally:
        srv.stop()
    env = server_env(tmp_path / "home")
    for _ in range(100):
        out = subprocess.run([sys.executable, "-m", "akoflow", "status", str(wf_id), "--json"],
                             capture_output=True, text=True, env=env, check=True).stdout
        if json.loads(out)["status"] in ("FINISHED", "FAILED"):
            break
        import time

        time.sleep(0.2)
    assert json.loads(out)["status"] == "FINISHED"


def _wes_client(served: Served, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("wes-client", path=str(Path(sys.executable).parent))
    assert exe, "wes-client is not installed (it is in the dev extra)"
    netrc = tmp / "netrc"  # wes-client 5.0 sends no auth header when it submits: HTTP Basic
    netrc.write_text(f"machine 127.0.0.1 login akoflow password {served.token}\n")
    netrc.chmod(0o600)
    env = {**os.environ, "NETRC": str(netrc), "NO_PROXY": "*", "no_proxy": "*"}
    return subprocess.run([exe, "--proto", "http", "--host", f"127.0.0.1:{served.port}",
                           *args], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp)


def test_wes_client_lists_submits_python_and_waits(served: Served, tmp_path: Path) -> None:
    listed = _wes_client(served, tmp_path, "--list")
    assert listed.returncode == 0, listed.stderr
    before = json.loads(listed.stdout)
    assert before["total_runs"] >= 1 and before["runs"][0]["state"]
    wf = tmp_path / "pipeline.py"
    wf.write_text(PY_WORKFLOW)
    (tmp_path / "input.txt").write_text("from an attachment\n")
    (tmp_path / "params.json").write_text(json.dumps({"lines": 5}))
    run = _wes_client(served, tmp_path, "--attachments", str(tmp_path / "input.txt"),
                      str(wf), str(tmp_path / "params.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "State is COMPLETE" in run.stderr
    outputs = json.loads(run.stdout)
    assert "count.txt" in outputs
    with httpx.Client(trust_env=False) as c:
        count = c.get(outputs["count.txt"], headers={"Authorization": f"Bearer {served.token}"})
    assert count.text.strip() == "6"  # 5 lines from the parameter + the attached file's one


def test_multipart_yaml_run_with_params_and_tasks(served: Served) -> None:
    yaml_text = ("name: wes-yaml\nspec:\n  activities:\n"
                 "    - {name: greet, run: 'echo \"$GREETING\" > out.txt; cat data.txt'}\n")
    c = served.client()
    r = c.post("/ga4gh/wes/v1/runs", data={
        "workflow_type": "AKOFLOW", "workflow_type_version": "1", "workflow_url": "wf.yaml",
        "workflow_params": json.dumps({"GREETING": "hello"}), "tags": '{"who": "test"}'},
        files=[("workflow_attachment", ("wf.yaml", yaml_text.encode())),
               ("workflow_attachment", ("data.txt", b"attached\n"))])
    assert r.status_code == 200, r.text
    run_id = r.json()["run_id"]
    for _ in range(300):
        state = c.get(f"/ga4gh/wes/v1/runs/{run_id}/status").json()["state"]
        if state not in ("QUEUED", "INITIALIZING", "RUNNING"):
            break
        import time

        time.sleep(0.2)
    assert state == "COMPLETE"
    log = c.get(f"/ga4gh/wes/v1/runs/{run_id}").json()
    assert log["request"]["tags"] == {"who": "test"}
    tasks = c.get(f"/ga4gh/wes/v1/runs/{run_id}/tasks").json()["task_logs"]
    assert [t["id"] for t in tasks] == ["greet"] and tasks[0]["exit_code"] == 0
    assert c.get(tasks[0]["stdout"]).text == "attached\n"
    assert c.get(log["outputs"]["out.txt"]).text == "hello\n"
    listed = c.get("/ga4gh/wes/v1/runs", params={"page_size": 1}).json()
    assert len(listed["runs"]) == 1 and listed["next_page_token"]
    nxt = c.get("/ga4gh/wes/v1/runs", params={"page_size": 1,
                                              "page_token": listed["next_page_token"]}).json()
    assert int(nxt["runs"][0]["run_id"]) < int(listed["runs"][0]["run_id"])
    bad = c.post("/ga4gh/wes/v1/runs", data={"workflow_type": "CWL",
                                              "workflow_type_version": "v1.2",
                                              "workflow_url": "x.cwl"})
    assert bad.status_code == 400 and "AKOFLOW" in bad.json()["msg"]
