"""AkôFlow's API, driven by AkôFlow's own client: seed 001's Python script, run as written
except for its URL and an Authorization header, against a real `akoflow serve`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, shared_file
from tests.service.served import Served

SEED = ROOT.parent / "shared" / "seeds" / "001_bb9b1dcf32b6a4df.txt"
DIAMOND = """
name: files-diamond
spec:
  runtime: local
  activities:
    - name: split
      run: |
        seq 1 100 > numbers.txt
    - name: evens
      run: |
        awk '$1 % 2 == 0' numbers.txt > even.txt
      dependsOn: [split]
    - name: odds
      run: |
        awk '$1 % 2 == 1' numbers.txt > odd.txt
      dependsOn: [split]
    - name: join
      run: |
        cat even.txt odd.txt | sort -n > all.txt
        test "$(wc -l < all.txt)" -eq 100
      dependsOn: [evens, odds]
"""


def seed_script(url: str, token: str, workflow_yaml: str | None = None) -> str:
    """Seed 001's script; only API_URL and the headers change (and, for the diamond, the
    YAML it carries)."""
    text = shared_file(SEED).read_text()
    script = text[text.index("import yaml"):text.index('print("Response Body:", response.json())')]
    script += 'print("Response Body:", response.json())\n'
    assert 'API_URL = "https://api.akoflow.com/workflows"' in script
    script = script.replace('API_URL = "https://api.akoflow.com/workflows"',
                            f'API_URL = "{url}/workflows"')
    script = script.replace('    "Content-Type": "application/json",\n',
                            f'    "Content-Type": "application/json",\n'
                            f'    "Authorization": "Bearer {token}",\n')
    if workflow_yaml is not None:
        start = script.index('workflow_yaml = """') + len('workflow_yaml = """')
        script = script[:start] + workflow_yaml + script[script.index('"""', start):]
    return script


def run_script(script: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    path = tmp / "send_workflow.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*"})
    assert proc.returncode == 0, proc.stderr
    status = int(re.search(r"Response Status Code: (\d+)", proc.stdout).group(1))  # type: ignore[union-attr]
    body = re.search(r"Response Body: (.*)", proc.stdout).group(1)  # type: ignore[union-attr]
    import ast

    return status, ast.literal_eval(body)


def test_seed_script_is_understood(served: Served, tmp_path: Path) -> None:
    status, body = run_script(seed_script(served.url, served.token), tmp_path)
    # Here the sdumont site is Slurm + Singularity: either the dispatcher job is queued (an
    # id; the run fails later for the missing image) or the site cannot start at all (one
    # JSON error saying why). Never a complaint about the request's shape.
    assert status in (200, 503), body
    if status == 200:
        assert body["workflow_entity"] == "p-inference-nemo"
        assert body["message"] == "Workflow has been deployed successfully."
        wf = served.wait_status(int(body["workflow_id"]), timeout=180)
        assert wf["site"] == "sdumont" and wf["spec"]["activities"][0]["name"] == \
            "inference-examples"
        if wf["state"] == "FAILED":
            failed = served.client().get(f"/akoflow-api/workflows/{wf['id']}/logs/",
                                         params={"status": "FAILED",
                                                 "activity": "inference-examples"}).json()
            assert failed and failed[-1]["message"], failed  # e.g. the image is missing
    else:
        assert set(body) >= {"msg", "status_code"} and body["status_code"] == 503
        assert "sdumont" in body["msg"], body


def test_seed_script_with_a_diamond_runs_to_finished(served: Served, tmp_path: Path) -> None:
    status, body = run_script(seed_script(served.url, served.token, DIAMOND), tmp_path)
    assert status == 200, body
    wf_id = int(body["workflow_id"])
    wf = served.wait_status(wf_id)
    assert wf["state"] == "FINISHED" and wf["status"] == 2, wf
    acts = {a["name"]: a for a in wf["spec"]["activities"]}
    assert set(acts) == {"split", "evens", "odds", "join"}
    assert all(a["status"] == 2 and a["state"] == "FINISHED" for a in acts.values())
    assert acts["join"]["dependsOn"] == ["evens", "odds"]
    # The files really passed through the shared work directory.
    c = served.client()
    files = c.get(f"/akoflow-api/workflows/{wf_id}/files/?role=generated").json()
    assert {f["path"] for f in files} >= {"numbers.txt", "even.txt", "odd.txt", "all.txt"}
    text = c.get(f"/akoflow-api/workflows/{wf_id}/files/content/?path=all.txt").text
    assert text.split() == [str(i) for i in range(1, 101)]


def test_listing_runtimes_and_schedules(served: Served) -> None:
    c = served.client()
    wfs = c.get("/akoflow-api/workflows/").json()
    assert wfs and all({"name", "status", "id", "spec"} <= set(w) for w in wfs)
    runtimes = {r["name"]: r for r in c.get("/akoflow-api/runtimes/").json()}
    assert {"local", "slurm", "sdumont"} <= set(runtimes)
    assert runtimes["local"]["status"] == 1 and runtimes["local"]["metadata"]["executor"]
    schedules = {s["name"]: s for s in c.get("/akoflow-api/schedules/").json()}
    assert schedules["akoscore"]["type"] == "builtin"
    assert schedules["akoscore"]["code"] == "akoflow.scheduling.policies:akoscore"


def _count(served: Served) -> int:
    return int(served.client().get("/ga4gh/wes/v1/runs").json()["total_runs"])


def test_bad_submissions_get_one_json_error_and_register_nothing(served: Served) -> None:
    import base64

    c = served.client()
    before = _count(served)
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    cases = [
        ({"workflow": "not base64 at all!"}, 400, "base64"),
        ({"workflow": base64.b64encode(b"\xff\xfe\x00").decode()}, 400, "UTF-8"),
        ({"workflow": b64("name: [unclosed\n")}, 422, "workflow:"),
        ({"workflow": b64("name: x\nspec:\n  activities:\n    - name: a\n      run: true\n"
                          "      dependsOn: [nope]\n")}, 422, "dependsOn"),
        ({"workflow": b64("name: x\nspec:\n  runtime: nowhere\n  activities:\n"
                          "    - {name: a, run: 'true'}\n")}, 422, "nowhere"),
        ({"nothing": 1}, 422, "workflow"),
    ]
    for body, code, word in cases:
        r = c.post("/akoflow-api/workflows/", json=body)
        assert r.status_code == code, (body, r.text)
        err = r.json()
        assert err["status_code"] == code and word in err["msg"] + str(err.get("issues"))
    spec_err = c.post("/workflows", json=cases[3][0]).json()
    assert spec_err["issues"][0]["line"] == 6
    assert spec_err["issues"][0]["path"] == "spec.activities[0].dependsOn[0]"
    r = c.post("/akoflow-server/workflow/", content=b"{not json",
               headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["msg"]
    for path in ("/akoflow-api/workflows/999999/", "/akoflow-api/workflows/999999/status/",
                 "/ga4gh/wes/v1/runs/999999", "/akoflow-api/workflows/1/activities/nope/log/"):
        r = c.get(path)
        assert r.status_code == 404 and r.json()["status_code"] == 404, (path, r.text)
    assert _count(served) == before
