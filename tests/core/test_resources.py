"""A launch's typed `Resources` carries exactly what the manifest stores: task.sh's header,
the attempt row and job scripts read the same bytes as when they were a dict."""

from __future__ import annotations

import json
from pathlib import Path

from akoflow.manifest import Intent, Manifest
from akoflow.port import Resources, TaskLaunch, protocol
from akoflow.spec import load_workflow

SPEC = """
name: res
spec:
  activities:
    - {name: plain, run: 'true'}
    - name: big
      run: 'true'
      memoryLimit: 3Gi
      cpuLimit: 1500m
      timeLimit: 90
      gpus: 2
      nodeSelector: {disk: ssd}
      resources: {partition: debug, slurm.exclusive: 'true'}
"""


def test_the_manifest_column_round_trips_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(SPEC)
    m = Manifest(tmp_path / "manifest.db")
    wf = m.register_workflow(load_workflow(tmp_path / "wf.yaml"), run_root=str(tmp_path))
    acts = m.activities(wf.id)
    big = next(a for a in acts if a.name == "big")
    res = Resources.from_json(big.resources)
    assert (res.cpu, res.memory, res.time_limit, res.gpus) == (1.5, 3 * 2**30, 90, 2)
    assert res.node_selector == {"disk": "ssd"} and res.extra["partition"] == "debug"
    for act in acts:
        typed = Resources.from_json(act.resources)
        assert json.dumps(typed.to_json()) == json.dumps(json.loads(act.resources))
        # ... and what an intent writes back is the column it was read from
        (aid,) = m.begin_attempts(wf.id, [Intent(
            activity_id=act.id, number=1, site="local", job_name=f"j.{act.name}",
            attempt_dir=str(tmp_path / act.name), resources=typed)])
        assert aid is not None
        [row] = [a for a in m.attempts(wf.id) if a.id == aid]
        assert row.resources == json.dumps(json.loads(act.resources))
        launch = TaskLaunch(
            workflow_id=wf.id, workflow=wf.name, activity_id=act.id, activity=act.name,
            attempt=1, job_name=f"j.{act.name}", attempt_dir=tmp_path / act.name,
            work_dir=tmp_path, run_dir=tmp_path, script="true", resources=typed)
        assert protocol.task_info(launch)["resources"] == json.loads(act.resources)


def test_site_defaults_go_under_the_activity_keys() -> None:
    res = Resources(extra={"partition": "mine"})
    merged = res.with_extra({"partition": "site", "account": "proj"})
    assert merged.extra == {"partition": "mine", "account": "proj"}
    assert res.extra == {"partition": "mine"}  # frozen: the launch's own is untouched
