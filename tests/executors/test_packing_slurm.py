"""Packing on the real Slurm cluster: many activities inside few allocations, the chained
dispatcher job leading from the first; what holds for a task holds inside a pilot (exactly
once across kill -9 and scancel of the allocation, the walltime, lineage), and the site's
job limit is never exceeded."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from akoflow.worker import tracing
from tests.conftest import WFCOMMONS, ak, shared_file, work_dir
from tests.executors.packing_support import (
    assert_once,
    logged_task,
    site,
    slurm_jobs,
    wait_final,
)
from tests.executors.slurm_cleanup import cancel_akoflow_jobs  # noqa: F401
from tests.infra import in_ci

pytestmark = pytest.mark.infra
PACKED = "extends: slurm\npacking: {cpus: 2, memory: 1800M, time: 10m, idle_timeout: 20s}\n"


def _sbatch_log(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "sbatch.log"
    wrapper = bindir / "sbatch"
    wrapper.write_text(f"#!/bin/bash\necho \"$*\" >> {log}\nexec /usr/bin/sbatch \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    log.touch()
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}, log


def _lineage(home: Path, env: dict[str, str], wf: int) -> dict[str, set[tuple[str, str]]]:
    rows = json.loads(ak("files", str(wf), "--json", home=home, env=env, check=True).stdout)
    out: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        if r["role"] in ("used", "generated"):
            out.setdefault(r["activity"], set()).add((r["role"], r["path"]))
    return out


def test_montage_packed_once_with_the_lineage_of_a_local_run(
        slurm_cluster: object, akhome: Path, tmp_path: Path) -> None:
    trace = shared_file(WFCOMMONS / "montage-chameleon-2mass-025d-001.json")
    wf = tmp_path / "montage.yaml"
    ak("import", "wfformat", str(trace), "-o", str(wf), "--scale", "0.0001", home=akhome,
       check=True)
    path_env, log = _sbatch_log(tmp_path)
    env = {**site(tmp_path, "packed", PACKED), **path_env}
    ak("run", str(wf), "--quiet", home=akhome, env=env, check=True, timeout=600)  # local
    ak("submit", str(wf), "--site", "packed", home=akhome, env=env, check=True)
    st = wait_final(akhome, env, wf=2, timeout=300)
    assert st["status"] == "FINISHED" and st["counts"] == {"FINISHED": 619}, st
    desc = json.loads(ak("describe", "2", "--json", home=akhome, env=env, check=True).stdout)
    assert {a["attempts"] for a in desc["activities"]} == {1}
    assert {a["node"] for a in desc["activities"]} <= {"small", "big"}
    if tracing.unavailable() is None or in_ci():
        assert _lineage(akhome, env, 2) == _lineage(akhome, env, 1)  # traced, as locally
    metrics = json.loads(ak("metrics", "2", "--json", home=akhome, env=env).stdout)
    assert len(metrics) == 619
    calls = log.read_text().splitlines()
    assert len(calls) <= 5, calls  # the lead and its guard; Montage fits in one allocation
    assert slurm_jobs(akhome) == []  # nothing left queued or running


def _wide(tmp_path: Path, n: int = 16, seconds: float = 2) -> Path:
    wf = tmp_path / "wide.yaml"
    acts = "".join(logged_task(f"t{i}", seconds) for i in range(n))
    parents = ", ".join(f"t{i}" for i in range(n))
    join = logged_task("join", 0, f"      dependsOn: [{parents}]\n")
    wf.write_text(f"name: wide\nspec:\n  activities:\n{acts}{join}")
    return wf


def _lead(home: Path, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        running = [j for j in slurm_jobs(home) if j["state"] == "RUNNING"
                   and ".dispatcher." in j["name"]]
        if running:
            return running[0]["id"]
        time.sleep(0.3)
    raise AssertionError("no lead allocation started")


def _running_tasks(home: Path, env: dict[str, str], count: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = json.loads(ak("status", "1", "--json", home=home, env=env, check=True).stdout)
        if st["counts"].get("RUNNING", 0) >= count and st["counts"].get("FINISHED", 0) >= 1:
            return
        time.sleep(0.3)
    raise AssertionError("tasks did not start")


def _processes_of(job: str) -> list[int]:
    """Processes of Slurm job `job` (what runs in the allocation carries its id), but not
    slurmstepd itself."""
    found = []
    for p in psutil.process_iter(["name"]):
        try:
            if p.environ().get("SLURM_JOB_ID") == job and p.info["name"] != "slurmstepd":
                found.append(p.pid)
        except psutil.Error:
            continue
    return found


def _second_pilot(home: Path, timeout: float = 120) -> str:
    """A pilot allocation asked for besides the lead, once its agent runs tasks."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for j in slurm_jobs(home):
            if j["state"] == "RUNNING" and ".pilot." in j["name"]:
                events = list((work_dir(home).parent / "pilots").glob(f"{j['id']}.0/events"))
                if events and events[0].read_text().count("\nR\t") >= 1:
                    return j["id"]
        time.sleep(0.3)
    raise AssertionError("no second allocation ran tasks")


@pytest.mark.parametrize("how", ["kill-9", "scancel", "kill-9-second"])
def test_a_pilot_lost_mid_run_loses_no_task_and_runs_none_twice(
        slurm_cluster: object, akhome: Path, tmp_path: Path, how: str) -> None:
    packed = PACKED if how != "kill-9-second" else (
        "extends: slurm\npacking: {cpus: 1, memory: 900M, time: 10m, idle_timeout: 20s, "
        "max_allocations: 2, grow_after: 1s}\n")
    env = site(tmp_path, "packed", packed)
    ak("submit", str(_wide(tmp_path)), "--site", "packed", home=akhome, env=env, check=True)
    job = _lead(akhome)
    _running_tasks(akhome, env, 1)
    if how == "kill-9-second":  # a pilot that is not the dispatcher's allocation
        job = _second_pilot(akhome)
    if how.startswith("kill-9"):  # every process of the allocation: its agent, launcher,
        pids = _processes_of(job)  # tasks, and the dispatcher when it is the lead's
        assert len(pids) >= 4, pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    else:
        subprocess.run(["scancel", job], check=True)
    st = wait_final(akhome, env, timeout=240)
    assert st["status"] == "FINISHED", st
    time.sleep(3)  # a task that escaped its pilot would write its end now
    acts = assert_once(akhome, env, work_dir(akhome))
    logs = json.loads("[" + ",".join(ak("logs", "1", "--json", home=akhome, env=env,
                                         check=True).stdout.split("\n")[:-1]) + "]")
    lost = [e for e in logs if e["kind"] == "RETRY"]
    assert lost and all("not counted" in e["message"] for e in lost)  # no retry used
    assert sum(a["attempts"] > 1 for a in acts.values()) >= 1
    assert slurm_jobs(akhome) == []


def test_a_pilot_reaching_its_walltime(slurm_cluster: object, akhome: Path,
                                       tmp_path: Path) -> None:
    """One-minute allocations: `b` (no timeLimit) still runs when the first one drains, so
    it is killed there and runs again in the next; `c` (timeLimit 40s) is never started in
    an allocation that could not hold it."""
    env = site(tmp_path, "short", "extends: slurm\npacking: {cpus: 2, memory: 1800M, "
               "time: 1m, idle_timeout: 20s}\n")
    wf = tmp_path / "wall.yaml"
    wf.write_text("name: wall\nspec:\n  activities:\n" + logged_task("a", 20)
                  + logged_task("b", 40, "      dependsOn: [a]\n")
                  + logged_task("c", 5, "      dependsOn: [a]\n      timeLimit: 40s\n"))
    ak("submit", str(wf), "--site", "short", home=akhome, env=env, check=True)
    st = wait_final(akhome, env, timeout=400)
    assert st["status"] == "FINISHED", st
    acts = assert_once(akhome, env, work_dir(akhome))
    assert acts["a"]["attempts"] == 1
    assert acts["b"]["attempts"] == 2  # killed at the first allocation's end, not counted
    assert acts["c"]["attempts"] == 1
    pilots = sorted((work_dir(akhome).parent / "pilots").glob("*/state.json"),
                    key=lambda p: json.loads(p.read_text())["started"])
    assert len(pilots) >= 2
    first = (pilots[0].parent / "events").read_text()
    assert "activities/b.1\t" in first and "activities/c." not in first


def _ours(work: Path) -> list[int]:
    """Processes of this test's tasks (they run in its work directory)."""
    found = []
    for p in psutil.process_iter(["cwd"]):
        if str(p.info["cwd"] or "").startswith(str(work)):
            found.append(p.pid)
    return found


def test_low_max_submit_jobs_is_never_exceeded(slurm_cluster: object, akhome: Path,
                                               tmp_path: Path) -> None:
    """At most 3 jobs queued at once (the profile's limit: no slurmdbd here) although the
    workflow would take 4 allocations and ordinary jobs besides; everything still runs."""
    env = site(tmp_path, "capped", "extends: slurm\npacking: {cpus: 1, memory: 500M, "
               "time: 10m, max_allocations: 4, idle_timeout: 10s, grow_after: 1s, "
               "max_submit_jobs: 3}\n")
    wf = tmp_path / "capped.yaml"
    big = "      resources: {partition: bigmem}\n"  # not the pilots' partition: own jobs
    wf.write_text("name: capped\nspec:\n  activities:\n"
                  + "".join(logged_task(f"p{i}", 3) for i in range(12))
                  + "".join(logged_task(f"o{i}", 2, big) for i in range(3)))
    ak("submit", str(wf), "--site", "capped", home=akhome, env=env, check=True)
    most: list[int] = []
    st = wait_final(akhome, env, timeout=400,
                    watch=lambda: most.append(len(slurm_jobs(akhome))))
    assert st["status"] == "FINISHED", st
    assert max(most) <= 3, most
    assert max(most) == 3  # the limit was reached: it bound
    assert_once(akhome, env, work_dir(akhome))


def test_more_allocations_while_the_ready_set_is_wide(slurm_cluster: object, akhome: Path,
                                                      tmp_path: Path) -> None:
    path_env, log = _sbatch_log(tmp_path)
    env = {**path_env, **site(tmp_path, "elastic", "extends: slurm\npacking: {cpus: 1, "
                              "memory: 500M, time: 10m, max_allocations: 3, "
                              "idle_timeout: 5s, grow_after: 2s}\n")}
    wf = tmp_path / "elastic.yaml"
    wf.write_text("name: elastic\nspec:\n  activities:\n"
                  + "".join(logged_task(f"t{i}", 3) for i in range(18)))
    ak("submit", str(wf), "--site", "elastic", home=akhome, env=env, check=True)
    allocations: list[int] = []
    st = wait_final(akhome, env, timeout=300, watch=lambda: allocations.append(
        sum(j["state"] == "RUNNING" for j in slurm_jobs(akhome))))
    assert st["status"] == "FINISHED", st
    assert_once(akhome, env, work_dir(akhome))
    assert 2 <= max(allocations) <= 3, allocations  # grew, never past max_allocations
    allocs = {p.name for p in (work_dir(akhome).parent / "pilots").glob("*.0")}
    assert len(allocs) >= 2
    asked = [c for c in log.read_text().splitlines() if "/pilots/logs/" in c]
    assert 1 <= len(asked) <= 2, asked  # one request at a time, up to max_allocations
    deadline = time.time() + 30  # idle pilots end by themselves
    while slurm_jobs(akhome) and time.time() < deadline:
        time.sleep(0.5)
    assert slurm_jobs(akhome) == []


def test_a_two_node_allocation_runs_an_agent_on_each(slurm_cluster: object, akhome: Path,
                                                     tmp_path: Path) -> None:
    env = site(tmp_path, "twonode", "extends: slurm\npacking: {cpus: 1, nodes: 2, "
               "memory: 500M, time: 10m, idle_timeout: 10s}\n")
    wf = tmp_path / "two.yaml"
    wf.write_text("name: two\nspec:\n  activities:\n"
                  + "".join(logged_task(f"t{i}", 2) for i in range(6)))
    ak("submit", str(wf), "--site", "twonode", home=akhome, env=env, check=True)
    st = wait_final(akhome, env, timeout=300)
    assert st["status"] == "FINISHED", st
    acts = assert_once(akhome, env, work_dir(akhome))
    assert {a["node"] for a in acts.values()} == {"small", "big"}
    files = json.loads(ak("files", "1", "--generated", "--json", home=akhome, env=env).stdout)
    assert {f["path"] for f in files} == {f"runs/t{i}" for i in range(6)}  # traced there too


def test_cancel_stops_the_pilots_tasks(slurm_cluster: object, akhome: Path,
                                       tmp_path: Path) -> None:
    env = site(tmp_path, "packed", PACKED)
    wf = tmp_path / "sleepers.yaml"
    wf.write_text("name: sleepers\nspec:\n  activities:\n"
                  + "".join(logged_task(f"s{i}", 300) for i in range(4)))
    ak("submit", str(wf), "--site", "packed", home=akhome, env=env, check=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
        if st["counts"].get("RUNNING", 0) == 2:
            break
        time.sleep(0.3)
    ak("cancel", "1", home=akhome, env=env, check=True)
    deadline = time.time() + 60
    while slurm_jobs(akhome) and time.time() < deadline:
        time.sleep(0.5)
    assert slurm_jobs(akhome) == []
    st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
    assert st["status"] == "CANCELLED" and st["counts"] == {"CANCELLED": 4}
    assert _ours(work_dir(akhome)) == []
    runs = (work_dir(akhome) / "runs")
    assert not any("end" in p.read_text() for p in runs.glob("*"))
