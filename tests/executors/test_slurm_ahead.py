"""Scheduler dependency chaining on the real Slurm cluster: children are queued ahead of their
parents with `afterok`, and when a parent fails they are cancelled (not left pending forever in
DependencyNeverSatisfied), skipped, or resubmitted after the parent's retry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from akoflow.manifest import Manifest
from tests.conftest import ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra

LOG_RUN = 'echo "$AKOFLOW_ACTIVITY" >> "$AKOFLOW_RUN_DIR/executions.log"'


def _workflow(tmp_path: Path, a_run: str, *, retries: int = 0) -> Path:
    wf = tmp_path / "chain.yaml"
    wf.write_text(f"""\
name: chain
spec:
  runtime: slurm
  activities:
    - name: a
      retries: {retries}
      run: |
        {LOG_RUN}
        {a_run}
    - name: b
      dependsOn: [a]
      run: |
        {LOG_RUN}
        sleep 1
    - name: c
      dependsOn: [b]
      run: |
        {LOG_RUN}
        echo done > c.txt
""")
    return wf


def _events(home: Path) -> list[dict]:  # type: ignore[type-arg]
    out = ak("logs", "1", "--json", home=home, check=True).stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in events if e.get("kind") == "STATE"]


def _executions(home: Path) -> list[str]:
    st = json.loads(ak("status", "1", "--json", home=home, check=True).stdout)
    return (Path(st["run_dir"]) / "executions.log").read_text().split()


def _queued_jobs(home: Path) -> list[str]:
    """This manifest's jobs still pending (another manifest's dispatcher is not ours)."""
    m = Manifest(home / "manifest.db")
    try:
        ours = f"akoflow.1.dispatcher.{m.instance_id()}"
    finally:
        m.close()
    out = subprocess.run(["squeue", "--noheader", "--format=%i %j %T"], capture_output=True,
                         text=True, check=True).stdout
    return [ln for ln in out.splitlines() if " akoflow.1." in ln and "PENDING" in ln
            and (".dispatcher." not in ln or ours in ln)]


def test_children_are_queued_ahead_and_run_once(slurm_cluster: object, akhome: Path,
                                                tmp_path: Path) -> None:
    proc = ak("run", str(_workflow(tmp_path, "sleep 4")), home=akhome, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ahead = {e["activity"] for e in _events(akhome) if "(ahead)" in (e.get("message") or "")}
    assert ahead == {"b", "c"}  # both went to Slurm before their parent ended
    assert sorted(_executions(akhome)) == ["a", "b", "c"]


def test_failed_parent_cancels_jobs_queued_ahead(slurm_cluster: object, akhome: Path,
                                                 tmp_path: Path) -> None:
    proc = ak("run", str(_workflow(tmp_path, "sleep 3; exit 3")), home=akhome, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["counts"] == {"FAILED": 1, "SKIPPED": 2}
    ahead = {e["activity"] for e in _events(akhome) if "(ahead)" in (e.get("message") or "")}
    assert ahead == {"b", "c"}
    assert _executions(akhome) == ["a"]
    assert _queued_jobs(akhome) == []  # nothing left in DependencyNeverSatisfied


def test_parent_retry_resubmits_children_queued_ahead(slurm_cluster: object, akhome: Path,
                                                      tmp_path: Path) -> None:
    flaky = ('if [ ! -e "$AKOFLOW_RUN_DIR/tried" ]; then touch "$AKOFLOW_RUN_DIR/tried";'
             ' sleep 3; exit 1; fi')
    proc = ak("run", str(_workflow(tmp_path, flaky, retries=1)), home=akhome, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(_executions(akhome)) == ["a", "a", "b", "c"]  # b and c exactly once
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    by_name = {a["name"]: a for a in desc["activities"]}
    assert by_name["a"]["attempts"] == 2
    assert {a["status"] for a in desc["activities"]} == {"FINISHED"}
    assert _queued_jobs(akhome) == []
