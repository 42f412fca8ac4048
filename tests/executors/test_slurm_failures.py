"""What real clusters do to jobs, on the real Slurm cluster: time limits, an `scancel` from
outside, retries with more memory, and the controller going away mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401
from tests.infra.slurm import SlurmCluster, _ctld_pids

pytestmark = pytest.mark.infra


def _status(home: Path, wf: int = 1) -> dict:  # type: ignore[type-arg]
    return json.loads(ak("status", str(wf), "--json", home=home, check=True).stdout)


def _describe(home: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    desc = json.loads(ak("describe", "1", "--json", home=home, check=True).stdout)
    return {a["name"]: a for a in desc["activities"]}


def _slurm_state(job: str) -> str:
    return subprocess.run(["squeue", "--noheader", "--states=all", "--format=%T", "-j", job],
                          capture_output=True, text=True, check=False).stdout.strip()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(pred, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_time_limit_ends_timeout(slurm_cluster: object, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "slow.yaml"
    wf.write_text("name: slow\nspec:\n  runtime: slurm\n  activities:\n"
                  "    - name: slow\n      run: sleep 120\n      timeLimit: 3\n"
                  "    - name: after\n      run: 'true'\n      dependsOn: [slow]\n")
    proc = ak("run", str(wf), home=akhome, timeout=300)
    assert proc.returncode == 1
    acts = _describe(akhome)
    assert acts["slow"]["status"] == "FAILED" and acts["slow"]["reason"] == "TIMEOUT"
    assert acts["after"]["status"] == "SKIPPED"


def test_scancel_from_outside_fails_with_reason(slurm_cluster: object, akhome: Path,
                                                tmp_path: Path) -> None:
    wf = tmp_path / "victim.yaml"
    wf.write_text("name: victim\nspec:\n  runtime: slurm\n  activities:\n"
                  "    - name: victim\n      run: sleep 300\n"
                  "    - name: child\n      run: 'true'\n      dependsOn: [victim]\n")
    ak("submit", str(wf), home=akhome, check=True)
    _wait(lambda: bool(_describe(akhome)["victim"]["job_id"]), "the victim's job")
    job = _describe(akhome)["victim"]["job_id"]
    # Between dispatcher jobs nobody updates the manifest: ask Slurm itself.
    _wait(lambda: _slurm_state(job) == "RUNNING", "the victim to run")
    subprocess.run(["scancel", job], check=True)
    _wait(lambda: _status(akhome)["status"] in ("FAILED", "FINISHED"), "the workflow to end")
    acts = _describe(akhome)
    assert acts["victim"]["status"] == "FAILED"
    assert acts["victim"]["reason"] == "CANCELLED"
    assert acts["child"]["status"] == "SKIPPED"


def test_retry_with_more_memory(slurm_cluster: object, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "mem.yaml"
    wf.write_text(
        "name: mem\nspec:\n  runtime: slurm\n  activities:\n"
        "    - name: hungry\n      memoryLimit: 100Mi\n      retries: 1\n"
        "      retryMemoryFactor: 2\n      run: |\n"
        '        if [ ! -e "$AKOFLOW_RUN_DIR/tried" ]; then touch "$AKOFLOW_RUN_DIR/tried";'
        " exit 1; fi\n"
        '        echo "$AKOFLOW_MEMORY" > mem.txt\n')
    proc = ak("run", str(wf), home=akhome, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = Path(_status(akhome)["run_dir"])
    first = (run_dir / "activities" / "hungry.1" / "job.sh").read_text()
    second = (run_dir / "activities" / "hungry.2" / "job.sh").read_text()
    assert "#SBATCH --mem=100M" in first
    assert "#SBATCH --mem=200M" in second  # resubmitted with twice the memory
    assert (run_dir / "work" / "mem.txt").read_text().strip() == str(200 * 2**20)


def test_controller_restart_mid_run(slurm_cluster: SlurmCluster, akhome: Path,
                                    tmp_path: Path) -> None:
    """slurmctld is stopped (SIGTERM, as `systemctl restart` does) while the chained workflow
    runs and comes back 8 s later: the workflow finishes and every activity ran exactly once.
    (A SIGKILLed slurmctld may lose jobs submitted in the seconds before its last state save;
    Slurm itself does not keep those, see the README's limits.)"""
    acts = "".join(
        f"    - name: t{i}\n      run: |\n"
        '        echo "$AKOFLOW_ACTIVITY" >> "$AKOFLOW_RUN_DIR/executions.log"\n'
        "        sleep 4\n" + (f"      dependsOn: [t{i - 2}]\n" if i >= 2 else "")
        for i in range(6))
    wf = tmp_path / "restart.yaml"
    wf.write_text(f"name: restart\nspec:\n  runtime: slurm\n  activities:\n{acts}")
    ak("submit", str(wf), home=akhome, check=True)
    _wait(lambda: bool(_describe(akhome)["t0"]["job_id"]), "a first job")
    first = _describe(akhome)["t0"]["job_id"]
    _wait(lambda: _slurm_state(first) == "RUNNING", "a first activity to run")
    pids = _ctld_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _wait(lambda: not any(_alive(p) for p in pids), "slurmctld to stop", 60)
    time.sleep(8)
    slurm_cluster.restart_controller()
    _wait(lambda: _status(akhome)["status"] in ("FINISHED", "FAILED"), "the workflow to end",
          timeout=240)
    st = _status(akhome)
    assert st["status"] == "FINISHED", st
    executed = (Path(st["run_dir"]) / "executions.log").read_text().split()
    assert sorted(executed) == [f"t{i}" for i in range(6)]
