"""The dispatcher as a chain of Slurm batch jobs: between cycles no akoflow process exists."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.conftest import EXAMPLES, ak
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401

pytestmark = pytest.mark.infra
CHAIN = {"AKOFLOW_CHAIN_SPACING": "1"}


def _squeue(wf_id: int) -> list[tuple[str, str, str]]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%j|%T"], capture_output=True,
                         text=True, check=True).stdout
    rows = [tuple(line.split("|")) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r[1].startswith(f"akoflow.{wf_id}.")]  # type: ignore[misc]


def _outside_slurm_akoflow(home: Path) -> list[str]:
    """This test's akoflow processes (by AKOFLOW_HOME) not inside a Slurm job (slurmstepd is
    not an ancestor); other akoflow runs on the machine are not this test's business."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "-m akoflow" not in cmd or "pytest" in cmd:
                continue
            if p.environ().get("AKOFLOW_HOME") != str(home):
                continue
            if not any("slurmstepd" in a.name() for a in p.parents()):
                found.append(cmd)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _wait_final(home: Path, wf_id: int, timeout: float = 180,
                watch: bool = False) -> tuple[dict, list[str]]:  # type: ignore[type-arg]
    deadline = time.time() + timeout
    strays: list[str] = []
    while time.time() < deadline:
        if watch:
            strays += _outside_slurm_akoflow(home)
        st = json.loads(ak("status", str(wf_id), "--json", home=home, check=True).stdout)
        if st["status"] in ("FINISHED", "FAILED", "CANCELLED"):
            return st, strays
        time.sleep(0.3)
    raise AssertionError(f"workflow {wf_id} did not end: {st}")


def test_chained_dispatch_with_no_process_in_between(slurm_cluster: object,
                                                    akhome: Path) -> None:
    out = ak("submit", str(EXAMPLES / "fanout.yaml"), "--site", "slurm", "--json",
             home=akhome, check=True, env=CHAIN)
    assert json.loads(out.stdout)["dispatcher"].startswith("job ")
    st, strays = _wait_final(akhome, 1, watch=True)
    assert st["counts"] == {"FINISHED": 10}
    assert strays == []  # every akoflow process ran inside a Slurm job
    logs = sorted((Path(st["run_dir"]) / "dispatcher").glob("*.out"))
    assert len(logs) >= 2  # several dispatcher jobs, chained
    deadline = time.time() + 30  # the last jobs may still be completing in Slurm
    while _squeue(1) and time.time() < deadline:
        time.sleep(0.3)
    assert _squeue(1) == []  # nothing left waiting once the workflow is over


def test_dispatcher_scancelled_mid_run(slurm_cluster: object, akhome: Path,
                                       tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    acts = "".join(
        f"    - name: c{c}-{i}\n      run: |\n"
        "        echo \"$AKOFLOW_ACTIVITY\" >> \"$AKOFLOW_RUN_DIR/executions.log\"\n"
        "        sleep 1\n"
        + (f"      dependsOn: [c{c}-{i - 1}]\n" if i else "")
        for c in range(2) for i in range(6))
    wf.write_text(f"name: chains\nspec:\n  runtime: slurm\n  activities:\n{acts}")
    ak("submit", str(wf), home=akhome, check=True, env=CHAIN)
    killed: list[str] = []
    deadline = time.time() + 90
    while len(killed) < 3 and time.time() < deadline:
        # scancel a running dispatcher mid-cycle (once its guard is queued, as it always is
        # from the moment a dispatcher is queued); then let the chain recover
        rows = [(j, state) for j, name, state in _squeue(1) if ".dispatcher." in name]
        running = [j for j, state in rows if state == "RUNNING" and j not in killed]
        if running and any(state == "PENDING" for _, state in rows):
            subprocess.run(["scancel", running[0]], check=True)
            killed.append(running[0])
            time.sleep(1.5)
        time.sleep(0.05)
    assert len(killed) == 3
    st, _ = _wait_final(akhome, 1)
    assert st["counts"] == {"FINISHED": 12}, st
    runs = Counter((Path(st["run_dir"]) / "executions.log").read_text().split())
    assert len(runs) == 12 and max(runs.values()) == 1


def test_cancel_also_stops_the_pending_dispatcher(slurm_cluster: object,
                                                  akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: slow\nspec:\n  runtime: slurm\n  activities:\n"
                  "    - name: a\n      run: sleep 300\n")
    ak("submit", str(wf), home=akhome, check=True, env=CHAIN)
    deadline = time.time() + 60
    while time.time() < deadline:
        names = [name for _, name, _ in _squeue(1)]
        if "akoflow.1.a.1" in names and any(n.startswith("akoflow.1.dispatcher.") for n in names):
            break
        time.sleep(0.3)
    ak("cancel", "1", home=akhome, check=True)
    deadline = time.time() + 30
    while _squeue(1) and time.time() < deadline:
        time.sleep(0.3)
    assert _squeue(1) == []
