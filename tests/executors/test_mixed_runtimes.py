"""One DAG across three runtimes at once: a local process, a Docker container on the real
dockerd, and a batch job on the real Slurm cluster, passing files through the workflow's
shared working directory, with provenance for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401
from tests.infra.docker import DockerHost

pytestmark = pytest.mark.infra

WORKFLOW = """\
name: mixed
spec:
  runtime: local
  activities:
    - name: make
      run: seq 1 10 > numbers.txt
    - name: square
      runtime: docker
      image: {image}
      dependsOn: [make]
      run: awk '{{print $1 * $1}}' numbers.txt > squares.txt
    - name: total
      runtime: slurm
      dependsOn: [square]
      run: |
        awk '{{s += $1}} END {{print s}}' squares.txt > total.txt
        echo "$SLURM_JOB_ID" > total.job
"""


def test_local_docker_and_slurm_in_one_dag(slurm_cluster: object, docker_daemon: DockerHost,
                                           akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "mixed.yaml"
    wf.write_text(WORKFLOW.format(image=docker_daemon.image))
    proc = ak("run", str(wf), home=akhome, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    work = Path(st["run_dir"]) / "work"
    assert (work / "total.txt").read_text().strip() == "385"
    assert (work / "total.job").read_text().strip().isdigit()  # it ran as a Slurm job
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    acts = {a["name"]: a for a in desc["activities"]}
    assert {a["status"] for a in acts.values()} == {"FINISHED"}
    assert {n: a["runtime"] for n, a in acts.items()} == {
        "make": "local", "square": "docker", "total": "slurm"}
    files = json.loads(ak("files", "1", "--json", home=akhome, check=True).stdout)
    roles = {(f["activity"], f["path"], f["role"]) for f in files}
    assert ("make", "numbers.txt", "generated") in roles
    assert ("square", "numbers.txt", "used") in roles
    assert ("square", "squares.txt", "generated") in roles
    assert ("total", "squares.txt", "used") in roles
    assert ("total", "total.txt", "generated") in roles
    metrics = json.loads(ak("metrics", "1", "--json", home=akhome, check=True).stdout)
    assert {m["activity"] for m in metrics} == {"make", "square", "total"}
    prov = json.loads(ak("prov", "1", "--format", "prov-json", home=akhome,
                         check=True).stdout)
    attempts = {k for k in prov["activity"] if k.startswith("akoflow:attempt.")}
    assert attempts == {f"akoflow:attempt.wf1.{n}.1" for n in ("make", "square", "total")}
    assert prov["used"] and prov["wasGeneratedBy"]
