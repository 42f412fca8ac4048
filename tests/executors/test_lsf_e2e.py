"""akoflow through the real CLI on the fake LSF (tests/executors/fakes/lsf).

The fakes keep a JSON state under a file lock, start eligible jobs as detached processes
running the job script, enforce run limits and apply done()/ended(); see fakes/lsf/lsffront.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ak
from tests.executors.fakes.pbs.harness import FakeCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    fake = FakeCluster("lsf", tmp_path, {"FAKE_LSF_MINUTE": "29"})
    fake.site("fakelsf", "name: fakelsf\nextends: lsf\npoll_interval: 0.5\n")
    yield fake
    fake.shutdown()


def _status(home: Path, wf: int) -> dict:  # type: ignore[type-arg]
    return json.loads(ak("status", str(wf), "--json", home=home, check=True).stdout)


def test_diamond_and_failure(cluster: FakeCluster, akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "diamond.yaml"), "--site", "fakelsf", home=akhome,
              env=cluster.env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert {a["status"] for a in desc["activities"]} == {"FINISHED"}
    assert all(a["job_id"].isdigit() for a in desc["activities"])
    for a in ("split", "left", "right", "join"):
        assert cluster.ended(f"akoflow.1.{a}.1")["code"] == 0

    proc = ak("run", str(EXAMPLES / "failing.yaml"), "--site", "fakelsf", home=akhome,
              env=cluster.env, timeout=180)
    assert proc.returncode == 1
    st = _status(akhome, 2)
    assert st["counts"] == {"FINISHED": 2, "FAILED": 1, "SKIPPED": 1}
    assert [f["attempt"] for f in st["failures"]] == [1, 2, 3]
    assert "about to fail" in st["failures"][0]["stderr_tail"]


def test_walltime_is_a_timeout(cluster: FakeCluster, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    # LSF kills at its run limit (-W 1, minutes rounded up; one fake minute = 29 s of job
    # time), a second before the worker's own limit (30 s of task time), so the scheduler
    # wins. The worker calls a SIGTERM a timeout past 90 % of its limit (27 s of task time),
    # which leaves 2 s for bash and the worker to start on a loaded machine → TIMEOUT
    wf.write_text("name: slow\nspec:\n  runtime: fakelsf\n  activities:\n"
                  "    - name: a\n      run: sleep 60\n      timeLimit: 30\n"
                  "    - name: b\n      run: echo b\n      dependsOn: [a]\n")
    proc = ak("run", str(wf), home=akhome, env=cluster.env, timeout=180)
    assert proc.returncode == 1
    st = _status(akhome, 1)
    assert st["counts"] == {"FAILED": 1, "SKIPPED": 1}
    assert st["failures"][0]["reason"] == "TIMEOUT"
    killed = cluster.ended("akoflow.1.a.1")
    assert killed["reason"] == "walltime"  # the fake scheduler killed it, not the worker


def test_submit_runs_the_dispatcher_as_batch_jobs(cluster: FakeCluster, akhome: Path) -> None:
    out = ak("submit", str(EXAMPLES / "fanout.yaml"), "--site", "fakelsf", "--json",
             home=akhome, check=True, env=cluster.env)
    assert json.loads(out.stdout)["dispatcher"].startswith("job ")
    cluster.wait_for(lambda: _status(akhome, 1)["status"] in ("FINISHED", "FAILED"), 180)
    st = _status(akhome, 1)
    assert st["counts"] == {"FINISHED": 10}
    cluster.wait_for(lambda: cluster.live("akoflow.1.") == [], 30)  # nothing left waiting
    dispatchers = [j for j in cluster.jobs() if j["name"].startswith("akoflow.1.dispatcher.")]
    assert sum(j["state"] == "done" and j["code"] == 0 for j in dispatchers) >= 3
    assert all(j["env"]["LSB_JOBID"] == j["uid"] for j in dispatchers)


def test_cancel_empties_the_queue(cluster: FakeCluster, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    acts = "".join(f"    - name: s{i}\n      run: sleep 300\n" for i in range(3))
    wf.write_text(f"name: sleepers\nspec:\n  runtime: fakelsf\n  activities:\n{acts}")
    ak("submit", str(wf), home=akhome, check=True, env=cluster.env)
    cluster.wait_for(lambda: len([j for j in cluster.live("akoflow.1.s")
                                  if j["state"] == "running"]) == 3)
    ak("cancel", "1", home=akhome, check=True, env=cluster.env)
    cluster.wait_for(lambda: cluster.live("akoflow.1.") == [], 60)
    st = _status(akhome, 1)
    assert st["status"] == "CANCELLED" and st["counts"] == {"CANCELLED": 3}
