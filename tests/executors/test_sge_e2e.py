"""akoflow on the real SGE 8.1.9 cell (tests/infra/sge.py): the real CLI end to end, and the
executor's holds, h_rt judgement and dispatcher groups against real qsub/qstat/qacct/qdel."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from akoflow.executors.sge import SgeExecutor
from akoflow.port import JobRef, JobState, Resources, TaskLaunch
from tests.conftest import EXAMPLES, ak, procs_with
from tests.infra.sge import SgeCluster, sge_env

pytestmark = pytest.mark.infra
CHAIN = {"AKOFLOW_CHAIN_SPACING": "1"}


def _akoflow_jobs() -> set[str]:
    from tests.infra.sge import parse_qstat_xml

    out = subprocess.run(["qstat", "-xml"], capture_output=True, text=True, env=sge_env(),
                         check=False).stdout
    return {j.job_id for j in parse_qstat_xml(out or "<x/>") if j.name.startswith("akoflow.")}


@pytest.fixture(autouse=True)
def qdel_akoflow_jobs() -> Iterator[None]:
    """A failed test must not hold slots for the next one: the akoflow jobs it queued (those
    listed after it and not before) are deleted; anyone else's are left alone."""
    before = _akoflow_jobs()
    yield
    ids = sorted(_akoflow_jobs() - before)
    if ids:
        subprocess.run(["qdel", "-f", *ids], capture_output=True, env=sge_env(), check=False)


def _ours(cell: SgeCluster, wf_id: int) -> list[str]:
    return [f"{j.job_id} {j.name} {j.state}" for j in cell.jobs(f"akoflow.{wf_id}.")]


def _wait(pred: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _status(home: Path, wf_id: int) -> dict:  # type: ignore[type-arg]
    return json.loads(ak("status", str(wf_id), "--json", home=home, check=True).stdout)


def test_fanout_dag_completes_with_arrays(sge_cluster: SgeCluster, akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "fanout.yaml"), "--site", "sge", home=akhome, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    acts = {a["name"]: a for a in desc["activities"]}
    assert {a["status"] for a in acts.values()} == {"FINISHED"} and len(acts) == 10
    assert acts["produce"]["job_id"].isdigit()
    workers = {acts[f"work-{i}"]["job_id"] for i in range(1, 9)}
    assert len({j.split(".")[0] for j in workers}) == 1 and len(workers) == 8  # one -t array
    assert (Path(_status(akhome, 1)["work_dir"]) / "total.txt").read_text().strip() == "360"
    _wait(lambda: not _ours(sge_cluster, 1), 30, "qstat to forget the workflow's jobs")


def test_failure_skips_children_and_nothing_stays_held(sge_cluster: SgeCluster,
                                                       akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "failing.yaml"), "--site", "sge", home=akhome, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    st = _status(akhome, 1)
    assert st["counts"] == {"FINISHED": 2, "FAILED": 1, "SKIPPED": 1}
    assert [f["attempt"] for f in st["failures"]] == [1, 2, 3]
    assert "about to fail" in st["failures"][0]["stderr_tail"]
    _wait(lambda: not _ours(sge_cluster, 1), 30, "no job of the workflow left in qstat")


def test_time_limit_ends_timeout(sge_cluster: SgeCluster, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: slow\nspec:\n  runtime: sge\n  activities:\n"
                  "    - {name: slow, run: sleep 120, timeLimit: 3}\n"
                  "    - {name: after, run: 'true', dependsOn: [slow]}\n")
    t0 = time.time()
    proc = ak("run", str(wf), "--site", "sge", home=akhome, timeout=120)
    assert proc.returncode == 1 and time.time() - t0 < 60, proc.stdout + proc.stderr
    st = _status(akhome, 1)
    assert st["counts"] == {"FAILED": 1, "SKIPPED": 1}
    assert st["failures"][0]["reason"] == "TIMEOUT"
    _wait(lambda: not _ours(sge_cluster, 1), 30, "qstat to forget the workflow's jobs")


def test_h_rt_kill_is_judged_timeout_by_qacct(sge_cluster: SgeCluster, tmp_path: Path) -> None:
    """No worker to record the timeout (a stand-in interpreter that only sleeps): SGE's own
    h_rt kill is found in `qacct -j` (failed 37) once the job left qstat."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/bash\nsleep 60\n")
    fake.chmod(0o755)
    ex = SgeExecutor("sge", {"python": str(fake), "time_limit_grace": 0})
    adir = tmp_path / "a" / "1"
    adir.mkdir(parents=True)
    ln = TaskLaunch(workflow_id=900, workflow="t", activity_id=1, activity="a", attempt=1,
                    job_name="akoflow.900.a.1", attempt_dir=adir, work_dir=tmp_path,
                    run_dir=tmp_path, script="", resources=Resources(time_limit=2))
    [jid] = ex.submit([ln])
    ref = JobRef(jid, ln.job_name, str(adir), time.time())
    seen: list[JobState] = []

    def timed_out() -> bool:
        seen.append(ex.poll([ref])[ln.job_name].state)
        return seen[-1] is JobState.TIMEOUT
    _wait(timed_out, 60, "h_rt to kill the job")
    assert JobState.RUNNING in seen and JobState.FAILED not in seen
    assert "37" in (ex.poll([ref])[ln.job_name].message or "")


def test_cancel_leaves_no_job_and_no_process(sge_cluster: SgeCluster, akhome: Path,
                                            tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    acts = "".join(f"    - {{name: s{i}, run: sleep {SLEEP}}}\n" for i in range(3))
    wf.write_text(f"name: sleepers\nspec:\n  runtime: sge\n  activities:\n{acts}")
    out = ak("submit", str(wf), "--site", "sge", "--json", home=akhome, check=True, env=CHAIN)
    assert json.loads(out.stdout)["dispatcher"].startswith("job ")  # the dispatcher: SGE job
    _wait(lambda: len(_sleepers()) == 2, 60, "two tasks to run (2 slots)")
    ak("cancel", "1", home=akhome, check=True)
    _wait(lambda: not _ours(sge_cluster, 1), 30, "qstat to hold no job of the workflow")
    _wait(lambda: not _sleepers(), 10, "the tasks' processes to end")
    st = _status(akhome, 1)
    assert st["status"] == "CANCELLED" and st["counts"] == {"CANCELLED": 3}


SLEEP = f"311.{os.getpid()}"  # this run's tasks, told apart from any other `sleep`


def _sleepers() -> list[int]:
    return [p.pid for p in procs_with(f"sleep {SLEEP}")]


def test_submit_runs_the_dispatcher_as_sge_jobs(sge_cluster: SgeCluster,
                                                akhome: Path) -> None:
    out = ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", "sge", "--json",
             home=akhome, check=True, env=CHAIN)
    assert json.loads(out.stdout)["dispatcher"].startswith("job ")
    _wait(lambda: _status(akhome, 1)["status"] in ("FINISHED", "FAILED"), 180,
          "the chained dispatchers to finish the workflow")
    st = _status(akhome, 1)
    assert st["counts"] == {"FINISHED": 4}
    assert len(list((Path(st["run_dir"]) / "dispatcher").glob("*.out"))) >= 2
    _wait(lambda: not _ours(sge_cluster, 1), 30, "no dispatcher left waiting")


def test_dispatcher_group_wakes_on_the_first_to_end(sge_cluster: SgeCluster,
                                                    tmp_path: Path) -> None:
    """`-hold_jid a,b` waits for all; the group (one held job per watched job) must start as
    soon as the SHORT job ends while the long ones still run, and go away as one."""
    ex = SgeExecutor("sge", {})
    jobs = {}
    for name, secs in (("long", 300), ("short", 2)):
        script = tmp_path / f"{name}.sh"
        script.write_text(f"#!/bin/bash\n#$ -N akoflow.901.{name}.1\n#$ -o /dev/null\n"
                          f"#$ -e /dev/null\nsleep {secs}\n")
        jobs[name] = sge_cluster.qsub(script)
    mark = tmp_path / "woke"
    name = "akoflow.901.dispatcher"
    leader = ex.submit_dispatcher(name, ["/bin/bash", "-c", f"date +%s > {mark}"],
                                  after_any=[jobs["long"], jobs["short"]], delay=0,
                                  log_dir=tmp_path / "d")
    assert [jid for jid, _ in ex.dispatcher_jobs(name)] == [leader, leader]  # one group
    _wait(mark.exists, 60, "the group member watching the short job to run")
    assert any(j.name == "akoflow.901.long.1" for j in sge_cluster.jobs("akoflow.901."))
    pending = [jid for jid, st in ex.dispatcher_jobs(name) if st is JobState.PENDING]
    assert pending == [leader]  # the leader still waits on the long job
    ex.cancel([JobRef(leader, "", "", 0.0), JobRef(jobs["long"], "", "", 0.0)])
    _wait(lambda: not sge_cluster.jobs("akoflow.901."), 30, "the group to go")


def test_after_ok_child_runs_only_after_success(sge_cluster: SgeCluster,
                                                tmp_path: Path) -> None:
    """afterok on SGE: a hold (afterany) plus the child's check of its parent's exit file."""
    fake = tmp_path / "python"  # stands in for the worker: exit code from the attempt dir
    fake.write_text('#!/bin/bash\nsleep 2\ntouch "$4/ran"\nexit "$(cat "$4/code")"\n')
    fake.chmod(0o755)
    ex = SgeExecutor("sge", {"python": str(fake)})

    def launch(name: str, code: int, after: list[str]) -> TaskLaunch:
        adir = tmp_path / name
        adir.mkdir()
        (adir / "code").write_text(str(code))
        return TaskLaunch(workflow_id=902, workflow="t", activity_id=1, activity=name,
                          attempt=1, job_name=f"akoflow.902.{name}.1", attempt_dir=adir,
                          work_dir=tmp_path, run_dir=tmp_path, script="", after_ok=after)
    [bad, good] = ex.submit([launch("bad", 3, []), launch("good", 0, [])])
    ex.submit([launch("after-bad", 0, [bad]), launch("after-good", 0, [good])])
    _wait(lambda: not sge_cluster.jobs("akoflow.902."), 90, "all four jobs to end")
    assert (tmp_path / "good" / "ran").exists() and (tmp_path / "after-good" / "ran").exists()
    assert not (tmp_path / "after-bad" / "ran").exists()
    err = "".join(p.read_text() for p in (tmp_path / "after-bad").glob("*.err"))
    assert "did not succeed" in err
