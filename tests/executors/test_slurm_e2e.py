"""akoflow on the real local Slurm cluster: each attempt an sbatch job running akoflow worker."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra


def _our_jobs(home: Path) -> list[str]:
    """This test's task jobs (their scripts live under its AKOFLOW_HOME): an earlier test's
    workflow 1 may still be completing in Slurm."""
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%j|%o"], capture_output=True,
                         text=True, check=True).stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line.count("|") >= 2]
    return [f"{i} {name}" for i, name, command in rows
            if name.startswith("akoflow.") and ".dispatcher." not in name
            and command.startswith(str(home))]


def test_diamond_and_failure_on_slurm(slurm_cluster: object, akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "diamond.yaml"), "--site", "slurm", home=akhome,
              timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert {a["status"] for a in desc["activities"]} == {"FINISHED"}
    assert all(re.match(r"^\d+(_\d+)?$", a["job_id"]) for a in desc["activities"])  # Slurm ids
    assert {a["node"] for a in desc["activities"]} <= {"small", "big"}  # SLURMD_NODENAME
    metrics = json.loads(ak("metrics", "1", "--json", home=akhome, check=True).stdout)
    assert len(metrics) == 4
    files = json.loads(ak("files", "1", "--generated", "--json", home=akhome).stdout)
    assert {"numbers.txt", "all.txt"} <= {f["path"] for f in files}

    proc = ak("run", str(EXAMPLES / "failing.yaml"), "--site", "slurm", home=akhome,
              timeout=300)
    assert proc.returncode == 1
    st = json.loads(ak("status", "2", "--json", home=akhome, check=True).stdout)
    assert st["counts"] == {"FINISHED": 2, "FAILED": 1, "SKIPPED": 1}
    assert [f["attempt"] for f in st["failures"]] == [1, 2, 3]
    assert "about to fail" in st["failures"][0]["stderr_tail"]


def test_cancel_scancels_every_job(slurm_cluster: object, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    acts = "".join(f"    - name: s{i}\n      run: sleep 300\n      cpuLimit: 1\n"
                   for i in range(3))
    wf.write_text(f"name: sleepers\nspec:\n  runtime: slurm\n  activities:\n{acts}")
    ak("submit", str(wf), home=akhome, check=True)
    deadline = time.time() + 60
    while len(_our_jobs(akhome)) < 3 and time.time() < deadline:
        time.sleep(0.5)
    assert len(_our_jobs(akhome)) == 3
    ak("cancel", "1", home=akhome, check=True)
    deadline = time.time() + 30
    while _our_jobs(akhome) and time.time() < deadline:
        time.sleep(0.5)
    deadline = time.time() + 30  # the pending dispatcher jobs go too
    while time.time() < deadline:
        remaining = subprocess.run(["squeue", "--noheader", "--states=PENDING,RUNNING",
                                    "--format=%j"], capture_output=True, text=True).stdout
        if "akoflow.1." not in remaining:
            break
        time.sleep(0.5)
    assert "akoflow.1." not in remaining
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "CANCELLED" and st["counts"] == {"CANCELLED": 3}
