"""Job arrays on the real Slurm cluster: same-shaped launches share one sbatch, chunked by
MaxArraySize, and every element's job id is found again after a crash (lookup by name)."""

from __future__ import annotations

import json
import os
import random
import re
import stat
import time
from pathlib import Path

import pytest

from akoflow.executors.slurm import SlurmExecutor
from akoflow.port import JobRef, JobState, Resources, TaskLaunch, protocol
from akoflow.sites import load_site
from tests.conftest import ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra
ELEMENT = re.compile(r"^(\d+)_(\d+)$")


def _launches(run: Path, n: int, script: str = "echo hi > out-$AKOFLOW_ACTIVITY") -> list[
        TaskLaunch]:
    out = []
    wf = random.randrange(10_000, 99_999)  # names unique to this run of the test
    for i in range(n):
        ln = TaskLaunch(
            workflow_id=wf, workflow="arr", activity_id=i + 1, activity=f"t{i}", attempt=1,
            job_name=protocol.job_name(wf, f"t{i}", 1),
            attempt_dir=protocol.attempt_dir(run, f"t{i}", 1), work_dir=run / "work",
            run_dir=run, script=script, resources=Resources(cpu=1.0, memory=50 * 2**20),
            sample_interval=0.2)
        protocol.prepare_attempt(ln)
        out.append(ln)
    (run / "work").mkdir(exist_ok=True)
    return out


def _wait_results(launches: list[TaskLaunch], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all((ln.attempt_dir / protocol.RESULT).exists() for ln in launches):
            return
        time.sleep(0.5)
    missing = [ln.activity for ln in launches if not (ln.attempt_dir / protocol.RESULT).exists()]
    raise AssertionError(f"no result.json for {missing}")


def test_array_submit_lookup_and_run(slurm_cluster: object, tmp_path: Path) -> None:
    ex = SlurmExecutor("slurm", load_site("slurm"))
    launches = _launches(tmp_path / "run", 5)
    ids = ex.submit(launches)
    parts = [ELEMENT.match(j) for j in ids]
    assert all(parts), ids
    assert len({p.group(1) for p in parts if p}) == 1  # one sbatch for all five
    assert [p.group(2) for p in parts if p] == ["0", "1", "2", "3", "4"]
    # Crash repair: a dispatcher that lost the ids finds every element by its job name.
    found = ex.lookup([ln.job_name for ln in launches] + ["akoflow.1.nope.1"])
    assert found == {ln.job_name: j for ln, j in zip(launches, ids)}
    _wait_results(launches)
    for ln in launches:
        result = json.loads((ln.attempt_dir / protocol.RESULT).read_text())
        assert result["exit_code"] == 0
        assert (tmp_path / "run" / "work" / f"out-{ln.activity}").read_text() == "hi\n"
    # result.json is written just before the job step exits, so Slurm may still say RUNNING
    # for a moment: wait for the scheduler to agree, then every element must be COMPLETED.
    refs = [JobRef(j, ln.job_name, str(ln.attempt_dir), 0.0) for ln, j in zip(launches, ids)]
    deadline = time.time() + 60
    states = ex.poll(refs)
    while time.time() < deadline and any(
            s.state in (JobState.PENDING, JobState.RUNNING) for s in states.values()):
        time.sleep(0.5)
        states = ex.poll(refs)
    assert all(s.state in (JobState.COMPLETED, JobState.GONE) for s in states.values()), states


def test_arrays_are_chunked_by_max_array_size(slurm_cluster: object, tmp_path: Path) -> None:
    ex = SlurmExecutor("slurm", {**load_site("slurm"), "max_array_size": 2})
    launches = _launches(tmp_path / "run", 5, script="true")
    ids = ex.submit(launches)
    arrays = [m.group(1) for m in (ELEMENT.match(j) for j in ids) if m]
    assert len(set(arrays)) == 3  # 2 + 2 + 1
    assert [j.split("_")[1] for j in ids] == ["0", "1", "0", "1", "0"]
    _wait_results(launches)
    # The cluster's own MaxArraySize is read from `scontrol show config` when not set.
    assert SlurmExecutor("slurm", load_site("slurm")).max_array_size() >= 2


def _sbatch_logger(bindir: Path, log: Path) -> None:
    bindir.mkdir()
    wrapper = bindir / "sbatch"
    wrapper.write_text(f"#!/bin/bash\necho \"$*\" >> {log}\nexec /usr/bin/sbatch \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)


def test_fan_out_goes_out_as_one_array(slurm_cluster: object, akhome: Path,
                                       tmp_path: Path) -> None:
    n = 12
    children = "".join(
        f"    - name: c{i}\n      run: echo {i} > c{i}.txt\n      dependsOn: [root]\n"
        for i in range(n))
    wf = tmp_path / "fan.yaml"
    wf.write_text(
        "name: fan\nspec:\n  activities:\n    - name: root\n      run: echo go > go.txt\n"
        f"{children}    - name: join\n      run: cat c*.txt > all.txt\n"
        f"      dependsOn: [{', '.join(f'c{i}' for i in range(n))}]\n")
    log = tmp_path / "sbatch.log"
    _sbatch_logger(tmp_path / "bin", log)
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    proc = ak("run", str(wf), "--site", "slurm", home=akhome, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 3, calls  # root, one array of 12, join
    assert sum("--array=0-11" in c for c in calls) == 1
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert {a["status"] for a in desc["activities"]} == {"FINISHED"}
    child_jobs = {a["job_id"].split("_")[0] for a in desc["activities"]
                  if a["name"].startswith("c")}
    assert len(child_jobs) == 1
    metrics = json.loads(ak("metrics", "1", "--json", home=akhome, check=True).stdout)
    assert len(metrics) == n + 2  # the worker sampled every element
