"""End-to-end checks that the test clusters behave like real clusters.

These talk to real daemons started by tests/infra (root only; skipped elsewhere outside CI):
the Slurm checks cover submission, arrays with throttles, dependencies (including any-of and a
never-satisfiable one), placement by memory/feature/partition on a heterogeneous cluster,
cancellation and a controller restart; the SGE checks cover submission, throttled arrays,
holds, exit status in accounting, run-time limits and deletion.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.infra.sge import SgeCluster
from tests.infra.slurm import SlurmCluster

pytest_plugins = ["tests.infra.fixtures"]

pytestmark = pytest.mark.infra


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\nset -eu\n" + body.strip() + "\n")
    path.chmod(0o755)
    return path


def run(argv: list[str], env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    import os
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{argv}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


# ---------------------------------------------------------------------------------------------
# Slurm


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, tmp_path: Path) -> Iterator[SlurmTest]:
    t = SlurmTest(slurm_cluster, tmp_path)
    yield t
    slurm_cluster.cancel_all(name_prefix=t.prefix, wait=False)


class SlurmTest:
    """A test's view of the cluster: its own job-name prefix and scratch directory."""

    def __init__(self, cluster: SlurmCluster, tmp: Path) -> None:
        self.cluster = cluster
        self.tmp = tmp
        self.prefix = f"akinfra-{uuid.uuid4().hex[:8]}"

    def submit(self, name: str, body: str, *args: str) -> str:
        path = script(self.tmp / f"{name}.sh", body)
        pattern = "%A_%a" if any(a.startswith("--array") for a in args) else "%j"
        return self.cluster.submit(path, f"--job-name={self.prefix}-{name}",
                                   f"--output={self.tmp}/{name}-{pattern}.out", *args,
                                   cwd=self.tmp)

    def info(self, job_id: str) -> dict[str, str]:
        return self.cluster.job_info(job_id)

    def state(self, job_id: str) -> str:
        return self.info(job_id).get("JobState", "GONE")

    def wait_state(self, job_id: str, states: set[str], timeout: float = 60) -> dict[str, str]:
        wait_until(lambda: self.state(job_id) in states, timeout,
                   f"job {job_id} to reach {states} (now {self.info(job_id)})")
        return self.info(job_id)


def test_slurm_cluster_shape(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.version.startswith("slurm-wlm 22.05")
    assert set(slurm_cluster.node_names) == {"small", "big"}
    assert slurm_cluster.default_partition == "debug"
    assert "highmem" in slurm_cluster.features["big"]
    out = run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%f"]).stdout.split()
    assert "small|debug*|2|2000|small,ssd" in out
    assert "big|bigmem|4|8000|big,highmem" in out
    config = run(["scontrol", "show", "config"]).stdout
    assert "DisableRootJobs         = No" in config
    assert "select/cons_tres" in config


def test_slurm_sbatch_parsable_runs_as_root(slurm: SlurmTest) -> None:
    job = slurm.submit("hello", 'echo "job=$SLURM_JOB_ID node=$SLURMD_NODENAME uid=$(id -u)"')
    assert job.isdigit(), job
    info = slurm.wait_state(job, {"COMPLETED", "FAILED"})
    assert info["JobState"] == "COMPLETED", info
    text = (slurm.tmp / f"hello-{job}.out").read_text()
    assert f"job={job}" in text and "uid=0" in text


def test_slurm_array_throttle(slurm: SlurmTest) -> None:
    job = slurm.submit("arr", "echo task=$SLURM_ARRAY_TASK_ID; sleep 1", "--array=0-9%2")
    assert job.isdigit(), job
    most = 0

    def done() -> bool:
        nonlocal most
        jobs = slurm.cluster.squeue_jobs(name_prefix=slurm.prefix)
        most = max(most, sum(1 for j in jobs if j.state == "RUNNING"))
        return not jobs

    wait_until(done, 120, "the array to finish", interval=0.1)
    assert 1 <= most <= 2, f"throttle %2 broken: {most} tasks ran at once"
    outputs = sorted(p.name for p in slurm.tmp.glob("arr-*.out"))
    assert outputs == sorted(f"arr-{job}_{i}.out" for i in range(10))
    assert (slurm.tmp / f"arr-{job}_7.out").read_text().strip() == "task=7"


def test_slurm_dependency_afterok(slurm: SlurmTest) -> None:
    first = slurm.submit("first", "sleep 3; date +%s.%N > first.end")
    second = slurm.submit("second", "date +%s.%N > second.start",
                          f"--dependency=afterok:{first}")
    wait_until(lambda: slurm.info(second).get("Reason") == "Dependency", 10,
               "reason Dependency while the parent runs")
    assert slurm.state(second) == "PENDING"
    slurm.wait_state(second, {"COMPLETED"}, timeout=90)
    assert slurm.state(first) == "COMPLETED"
    end = float((slurm.tmp / "first.end").read_text())
    start = float((slurm.tmp / "second.start").read_text())
    assert start >= end


def test_slurm_any_of_dependency_releases_on_first_end(slurm: SlurmTest) -> None:
    quick = slurm.submit("quick", "sleep 2")
    slow = slurm.submit("slow", "sleep 300")
    chained = slurm.submit("chained", "true",
                           f"--dependency=afterany:{quick}?afterany:{slow}")
    slurm.wait_state(chained, {"COMPLETED"}, timeout=90)
    assert slurm.state(slow) in ("RUNNING", "PENDING"), "the any-of job waited for the slow job"


def test_slurm_dependency_never_satisfied(slurm: SlurmTest) -> None:
    failing = slurm.submit("failing", "exit 3")
    child = slurm.submit("child", "true", f"--dependency=afterok:{failing}")
    info = slurm.wait_state(failing, {"FAILED"})
    assert info["ExitCode"] == "3:0", info

    def never() -> bool:
        reasons = run(["squeue", "-h", "-j", child, "-o", "%r"]).stdout.split()
        return reasons == ["DependencyNeverSatisfied"]

    wait_until(never, 60, "reason DependencyNeverSatisfied")
    assert slurm.state(child) == "PENDING"


def test_slurm_memory_request_lands_on_big_node(slurm: SlurmTest) -> None:
    job = slurm.submit("mem", "sleep 1", "--mem=4000")
    info = slurm.wait_state(job, {"RUNNING", "COMPLETED"})
    assert info["NodeList"] == "big", info
    # More memory than any node has: refused at submission, as on a real cluster.
    path = script(slurm.tmp / "huge.sh", "true")
    proc = run(["sbatch", "--parsable", "--mem=20000", str(path)], check=False)
    assert proc.returncode != 0
    assert "Requested node configuration is not available" in proc.stderr


def test_slurm_constraint_and_partition(slurm: SlurmTest) -> None:
    highmem = slurm.submit("highmem", "sleep 1", "--constraint=highmem")
    bigmem = slurm.submit("bigmem", "sleep 1", "--partition=bigmem")
    ssd = slurm.submit("ssd", "sleep 1", "--constraint=ssd")
    for job, node in ((highmem, "big"), (bigmem, "big"), (ssd, "small")):
        info = slurm.wait_state(job, {"RUNNING", "COMPLETED"})
        assert info["NodeList"] == node, info
    assert slurm.info(bigmem)["Partition"] == "bigmem"


def test_slurm_scancel(slurm: SlurmTest) -> None:
    job = slurm.submit("victim", "sleep 300")
    slurm.wait_state(job, {"RUNNING"})
    run(["scancel", job])
    slurm.wait_state(job, {"CANCELLED"}, timeout=30)


def test_slurm_restart_controller_keeps_jobs(slurm: SlurmTest) -> None:
    running = slurm.submit("running", "sleep 300")
    queued = slurm.submit("queued", "echo after", f"--dependency=afterany:{running}")
    slurm.wait_state(running, {"RUNNING"})
    slurm.cluster.restart_controller()
    assert slurm.state(running) == "RUNNING"
    assert slurm.state(queued) == "PENDING"
    # A crash (SIGKILL) too: what slurmctld saved in StateSaveLocation is enough.
    slurm.cluster.restart_controller(hard=True)
    assert slurm.state(running) == "RUNNING"
    assert slurm.info(queued)["Reason"] == "Dependency"
    # The restarted controller still controls both: cancel one, the dependency releases.
    run(["scancel", running])
    slurm.wait_state(queued, {"COMPLETED"}, timeout=60)
    assert slurm.state(running) == "CANCELLED"


# ---------------------------------------------------------------------------------------------
# SGE


def code(record: dict[str, str], key: str) -> str:
    """The number in a qacct value such as ``137                  (Killed)``."""
    return record.get(key, "").split()[0] if record.get(key, "").split() else ""


class SgeTest:
    def __init__(self, cluster: SgeCluster, tmp: Path) -> None:
        self.cluster = cluster
        self.tmp = tmp
        self.prefix = f"akinfra{uuid.uuid4().hex[:8]}"

    def qsub(self, name: str, body: str, *args: str) -> str:
        path = script(self.tmp / f"{name}.sh", body)
        return self.cluster.qsub(path, "-N", f"{self.prefix}-{name}", "-wd", str(self.tmp),
                                 "-o", str(self.tmp), "-j", "y", *args)

    def live(self, job_id: str) -> bool:
        return any(j.job_id == job_id for j in self.cluster.jobs())

    def states(self, job_id: str) -> list[str]:
        return [j.state for j in self.cluster.jobs() if j.job_id == job_id]

    def accounting(self, job_id: str, timeout: float = 60) -> list[dict[str, str]]:
        wait_until(lambda: not self.live(job_id), timeout, f"job {job_id} to end")
        wait_until(lambda: bool(self.cluster.qacct(job_id)), 30, f"qacct -j {job_id}")
        return self.cluster.qacct(job_id)


@pytest.fixture
def sge(sge_cluster: SgeCluster, tmp_path: Path) -> Iterator[SgeTest]:
    t = SgeTest(sge_cluster, tmp_path)
    yield t
    sge_cluster.cancel_all(name_prefix=t.prefix, wait=False)


def test_sge_qsub_terse_script(sge: SgeTest) -> None:
    job = sge.qsub("hello", 'echo "job=$JOB_ID uid=$(id -u) shell=$0"')
    assert job.isdigit(), job
    (record,) = sge.accounting(job)
    assert code(record, "exit_status") == "0" and code(record, "failed") == "0", record
    text = (sge.tmp / f"{sge.prefix}-hello.o{job}").read_text()
    assert f"job={job}" in text and "uid=0" in text


def test_sge_array_throttle(sge: SgeTest) -> None:
    terse = sge.qsub("arr", "echo task=$SGE_TASK_ID; sleep 2", "-t", "1-4", "-tc", "2")
    job, _, tasks = terse.partition(".")
    assert tasks == "1-4:1", terse
    most = 0

    def done() -> bool:
        nonlocal most
        states = sge.states(job)
        most = max(most, sum(1 for s in states if s == "r"))
        return not states

    wait_until(done, 120, "the array to finish", interval=0.2)
    assert 1 <= most <= 2, f"-tc 2 broken: {most} tasks ran at once"
    records = sge.accounting(job)
    assert sorted(r["taskid"] for r in records) == ["1", "2", "3", "4"]
    assert (sge.tmp / f"{sge.prefix}-arr.o{job}.3").read_text().strip() == "task=3"


def test_sge_array_throttle_below_slots(sge: SgeTest) -> None:
    # all.q has 2 slots, so -tc 2 alone cannot show the throttle at work: -tc 1 can.
    terse = sge.qsub("one", "sleep 1", "-t", "1-3", "-tc", "1")
    job = terse.partition(".")[0]
    detail = run(["qstat", "-j", job], env=sge.cluster.env).stdout
    assert "maximum concurrency:        1" in detail, detail
    most = 0

    def done() -> bool:
        nonlocal most
        states = sge.states(job)
        most = max(most, sum(1 for s in states if s == "r"))
        return not states

    wait_until(done, 120, "the array to finish", interval=0.1)
    assert most == 1, f"-tc 1 broken: {most} tasks ran at once"


def test_sge_hold_jid(sge: SgeTest) -> None:
    first = sge.qsub("first", "sleep 3; date +%s.%N > first.end")
    second = sge.qsub("second", "date +%s.%N > second.start", "-hold_jid", first)
    assert sge.states(second) == ["hqw"], sge.states(second)
    sge.accounting(second, timeout=90)
    end = float((sge.tmp / "first.end").read_text())
    start = float((sge.tmp / "second.start").read_text())
    assert start >= end


def test_sge_failing_job_exit_status(sge: SgeTest) -> None:
    job = sge.qsub("failing", "exit 7")
    (record,) = sge.accounting(job)
    assert code(record, "exit_status") == "7", record
    assert code(record, "failed") == "0", record


def test_sge_h_rt_kills_long_job(sge: SgeTest) -> None:
    job = sge.qsub("long", "sleep 300", "-l", "h_rt=0:0:3")
    t0 = time.monotonic()
    (record,) = sge.accounting(job, timeout=120)
    assert time.monotonic() - t0 < 100
    # SIGKILLed when the hard run-time limit passes; qacct says so in `failed`:
    # "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", exit_status "137 (Killed)".
    assert code(record, "exit_status") == "137", record
    assert code(record, "failed") == "37", record
    assert "h_rt" in record["failed"], record


def test_sge_qdel(sge: SgeTest) -> None:
    job = sge.qsub("victim", "sleep 300")
    wait_until(lambda: sge.states(job) == ["r"], 60, "the job to run")
    run(["qdel", job], env=sge.cluster.env)
    wait_until(lambda: not sge.live(job), 60, "the job to be deleted")
    (record,) = sge.accounting(job)
    # qdel of a running job: SIGKILL, and qacct's "failed 100 : assumedly after job".
    assert code(record, "exit_status") == "137", record
    assert code(record, "failed") == "100", record


def test_sge_restart_keeps_jobs(sge: SgeTest) -> None:
    running = sge.qsub("running", "sleep 300")
    held = sge.qsub("held", "true", "-hold_jid", running)
    wait_until(lambda: sge.states(running) == ["r"], 60, "the job to run")
    sge.cluster.restart()
    assert sge.states(running) == ["r"]
    assert sge.states(held) == ["hqw"]
    run(["qdel", running, held], env=sge.cluster.env)
    wait_until(lambda: not sge.live(running) and not sge.live(held), 60, "qdel after restart")
