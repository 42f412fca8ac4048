"""Contract tests of the Kubernetes executor (no Kubernetes can run here).

The real `kubernetes` client talks HTTP to tests/executors/fake_k8s.py, a small fake API
server with canned Job state transitions that records every request. These tests check what
we send (bodies, selectors, one list per poll) and how we read what a real API server would
answer; they do not prove that a real cluster runs the pods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from akoflow.executors import kubernetes_manifests as km
from akoflow.executors.kubernetes import KubernetesExecutor
from akoflow.manifest import Intent, Manifest
from akoflow.port import JobRef, JobState, Resources, SpecError, SubmitError, TaskLaunch, protocol
from akoflow.spec.models import ActivitySpec, WorkflowSpec
from tests.conftest import ak
from tests.executors.fake_k8s import FakeK8s, Plan


@pytest.fixture
def fake() -> Iterator[FakeK8s]:
    f = FakeK8s().start()
    yield f
    f.stop()


def _executor(fake: FakeK8s, **extra: Any) -> KubernetesExecutor:
    return KubernetesExecutor("k8s", {"host": fake.url, "create_namespace": True, **extra})


def _launch(tmp: Path, activity: str = "split", attempt: int = 1, **kw: Any) -> TaskLaunch:
    base: dict[str, Any] = dict(
        workflow_id=7, workflow="wf", activity_id=1, activity=activity, attempt=attempt,
        job_name=protocol.job_name(7, activity, attempt),
        attempt_dir=protocol.attempt_dir(tmp, activity, attempt), work_dir=tmp / "work",
        run_dir=tmp, script="echo hello\n", image="busybox:1.36",
        resources=Resources(cpu=0.5, memory=64 << 20, time_limit=90.5,
                            node_selector={"disk": "ssd"}))
    base.update(kw)
    return TaskLaunch(**base)


def _ref(job_id: str | None, ln: TaskLaunch) -> JobRef:
    return JobRef(job_id, ln.job_name, str(ln.attempt_dir), time.time())


def _poll_until_ended(ex: KubernetesExecutor, ref: JobRef, limit: int = 10) -> Any:
    for _ in range(limit):
        st = ex.poll([ref])[ref.job_name]
        if st.state not in (JobState.PENDING, JobState.RUNNING):
            return st
    raise AssertionError("job never ended")


# -- pure pieces ----------------------------------------------------------------------------
def test_names_are_dns_safe_and_distinct() -> None:
    assert km.job_object_name("akoflow.12.split.3") == "akoflow-12-split-3"
    dotted = km.job_object_name("akoflow.1.a.b.1")
    dashed = km.job_object_name("akoflow.1.a-b.1")
    assert dashed == "akoflow-1-a-b-1" and dotted != dashed  # `a.b` and `a-b` never collide
    assert km.job_object_name("akoflow.1.Upper_Case.1") != km.job_object_name(
        "akoflow.1.upper-case.1")
    long = km.job_object_name(f"akoflow.123456.{'x' * 100}.17")
    for name in (dotted, long, km.job_object_name("akoflow.1.Upper_Case.1")):
        assert len(name) <= 63 and km._DNS_OK.match(name), name
    assert long != km.job_object_name(f"akoflow.123456.{'x' * 99}y.17")
    assert km.label_value("ok.name-1") == "ok.name-1"
    bad = km.label_value("trailing-" + "z" * 80 + "-")
    assert len(bad) <= 63 and km._LABEL_OK.match(bad)
    assert km.cpu_quantity(2.0) == "2" and km.cpu_quantity(0.25) == "250m"


def test_job_state_mapping() -> None:
    def job(cond: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
        return {"status": {**status, "conditions": [cond] if cond else []}}

    oom = {"status": {"containerStatuses": [{"name": "task", "state": {"terminated": {
        "exitCode": 137, "reason": "OOMKilled"}}}]}}
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    assert km.job_state(job({"type": "Complete", "status": "True"}), None)[0] \
        is JobState.COMPLETED
    assert km.job_state(job(failed), None)[0] is JobState.FAILED
    assert km.job_state(job(failed), oom)[0] is JobState.OOM
    assert km.job_state(job({**failed, "reason": "DeadlineExceeded"}), oom)[0] \
        is JobState.TIMEOUT
    assert km.job_state(job({"type": "Failed", "status": "False"}, active=1, ready=1),
                        None)[0] is JobState.RUNNING
    assert km.job_state(job(active=1, ready=0), None)[0] is JobState.PENDING
    assert km.job_state(job(), None)[0] is JobState.PENDING


# -- submit ---------------------------------------------------------------------------------
def test_submit_job_body(fake: FakeK8s, tmp_path: Path) -> None:
    ex = _executor(fake)
    ln = _launch(tmp_path, node="node-9", env={"MY": "var"})
    assert ex.submit([ln]) == ["akoflow/akoflow-7-split-1"]
    assert [r.body["metadata"]["name"] for r in fake.calls("POST", "/namespaces$")] \
        == ["akoflow"]
    body = fake.calls("POST", "/jobs$")[0].body
    meta, spec = body["metadata"], body["spec"]
    assert meta["labels"]["akoflow.workflow"] == "7"
    assert meta["labels"]["akoflow.activity"] == "split"
    assert meta["labels"]["akoflow.attempt"] == "1"
    assert meta["annotations"]["akoflow/job-name"] == "akoflow.7.split.1"
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 91
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"]["akoflow.workflow"] == "7"
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"disk": "ssd"} and pod["nodeName"] == "node-9"
    (c,) = pod["containers"]
    assert c["image"] == "busybox:1.36" and c["command"][:2] == ["sh", "-c"]
    assert c["command"][2].endswith("echo hello")
    want = {"cpu": "500m", "memory": str(64 << 20)}
    assert c["resources"] == {"requests": want, "limits": want}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["AKOFLOW_WORKDIR"] == "/akoflow/work" == c["workingDir"]
    assert env["AKOFLOW_ACTIVITY"] == "split" and env["MY"] == "var"
    assert "AKOFLOW_ATTEMPT_DIR" not in env and str(tmp_path) not in json.dumps(env)
    # default storage: one shared ReadWriteMany PVC per workflow, in every pod
    (pvc,) = [r.body for r in fake.calls("POST", "persistentvolumeclaims")]
    assert pvc["metadata"]["name"] == "akoflow-7-shared"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pod["volumes"] == [{"name": "work",
                               "persistentVolumeClaim": {"claimName": "akoflow-7-shared"}}]
    # a second dispatcher process submits the next activity: the PVC is there (409), fine
    ex2 = _executor(fake)
    assert ex2.submit([_launch(tmp_path, "left", mount_path="/data",
                               storage={"class": "fast", "size": 2 << 30})]) \
        == ["akoflow/akoflow-7-left-1"]
    assert len(fake.pvcs) == 1 and len(fake.calls("POST", "persistentvolumeclaims")) == 2
    assert fake.calls("POST", "persistentvolumeclaims")[1].body["spec"] == {
        "accessModes": ["ReadWriteMany"], "storageClassName": "fast",
        "resources": {"requests": {"storage": str(2 << 30)}}}
    # the same Job again (crash repair resubmitting): 409 is success, not a duplicate
    assert ex2.submit([ln]) == ["akoflow/akoflow-7-split-1"]
    assert len(fake.jobs) == 2


def test_standalone_storage_pvc_per_activity(fake: FakeK8s, tmp_path: Path) -> None:
    ex = _executor(fake)
    ln = _launch(tmp_path, "join", storage={"type": "standalone", "access_modes":
                                            ["ReadWriteOnce"]}, parents=["left", "right"])
    ex.submit([ln])
    (pvc,) = [r.body for r in fake.calls("POST", "persistentvolumeclaims")]
    assert pvc["metadata"]["name"] == "akoflow-7-vol-join"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = fake.calls("POST", "/jobs$")[0].body["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]}
    assert claims["work"] == {"claimName": "akoflow-7-vol-join"}
    assert claims["input-0"] == {"claimName": "akoflow-7-vol-left", "readOnly": True}
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "input-1", "mountPath": "/akoflow/inputs/right", "readOnly": True} in mounts
    script = pod["containers"][0]["command"][2].splitlines()
    assert script[1:3] == ["cp -a /akoflow/inputs/left/. .", "cp -a /akoflow/inputs/right/. ."]
    assert script[-1] == "echo hello"


def test_namespace_and_spec_errors(fake: FakeK8s, tmp_path: Path) -> None:
    ex = KubernetesExecutor("k8s", {"host": fake.url})  # may not create namespaces
    with pytest.raises(SubmitError, match="namespace 'akoflow' does not exist") as err:
        ex.submit([_launch(tmp_path)])
    assert not err.value.transient and not fake.jobs
    fake.namespaces.add("team")
    assert ex.submit([_launch(tmp_path, namespace="team")]) == ["team/akoflow-7-split-1"]
    with pytest.raises(SpecError, match="has no image"):
        ex.submit([_launch(tmp_path, image=None)])
    with pytest.raises(SpecError, match="allow_host_path"):
        ex.submit([_launch(tmp_path, volumes=[("/scratch", "/scratch")])])
    fake.fail_with = 503
    with pytest.raises(SubmitError) as err:
        ex.submit([_launch(tmp_path, "other", namespace="team")])
    assert err.value.transient


# -- status and results ---------------------------------------------------------------------
def test_poll_lifecycle_writes_result_and_cleans_up(fake: FakeK8s, tmp_path: Path) -> None:
    fake.default_plan = Plan(pending=1, after=3, log="hello from the pod\n")
    ex = _executor(fake)
    lns = [_launch(tmp_path, a) for a in ("left", "right")]
    refs = [_ref(j, ln) for j, ln in zip(ex.submit(lns), lns)]
    states = []
    for _ in range(3):
        out = ex.poll(refs)
        states.append({out[r.job_name].state for r in refs})
    assert states == [{JobState.PENDING}, {JobState.RUNNING}, {JobState.COMPLETED}]
    assert len(fake.calls("GET", "/jobs$")) == 3  # one batched list per poll
    assert {r.query["labelSelector"] for r in fake.calls("GET", "/jobs$")} \
        == {"akoflow.workflow=7"}
    assert len(fake.calls("GET", "/pods$")) == 1  # pods listed once, when jobs ended
    assert not fake.calls("GET", "/jobs/")  # never one GET per job
    for ln in lns:
        res = json.loads((ln.attempt_dir / "result.json").read_text())
        assert res["exit_code"] == 0 and res["reason"] is None and res["node"] == "node-1"
        assert res["image_id"].startswith("docker.io/busybox:1.36@sha256:")
        assert (ln.attempt_dir / "stdout").read_text() == "hello from the pod\n"
        assert (ln.attempt_dir / "stderr").read_text() == ""
    deletes = fake.calls("DELETE", "/jobs/")
    assert {d.query["propagationPolicy"] for d in deletes} == {"Background"}
    assert not fake.jobs and not fake.pods
    # gone from the API now; the dispatcher judges the attempt by result.json
    assert ex.poll(refs[:1])[refs[0].job_name].state is JobState.GONE


@pytest.mark.parametrize(("plan", "state", "code", "reason"), [
    (Plan(outcome="failed", exit_code=3, container_reason="Error"), JobState.FAILED, 3, "EXIT"),
    (Plan(outcome="failed", exit_code=137, container_reason="OOMKilled"), JobState.OOM, 137,
     "OOM"),
    (Plan(outcome="failed", job_reason="DeadlineExceeded", pod_gone=True), JobState.TIMEOUT,
     None, "TIMEOUT"),
])
def test_failures_are_failures(fake: FakeK8s, tmp_path: Path, plan: Plan, state: JobState,
                               code: int | None, reason: str) -> None:
    fake.plans["split"] = plan
    ex = _executor(fake)
    ln = _launch(tmp_path)
    st = _poll_until_ended(ex, _ref(ex.submit([ln])[0], ln))
    assert (st.state, st.exit_code) == (state, code)
    res = protocol.read_result(ln.attempt_dir)
    assert res is not None and (res.exit_code, res.reason) == (code, reason)
    assert not res.succeeded
    if plan.pod_gone:
        assert res.message is not None and "pod log unavailable" in res.message
        assert "DeadlineExceeded" in res.message


def test_broken_api_is_unknown_never_failed(fake: FakeK8s, tmp_path: Path) -> None:
    ex = _executor(fake)
    lns = [_launch(tmp_path, a) for a in ("a", "b")]
    refs = [_ref(j, ln) for j, ln in zip(ex.submit(lns), lns)]
    fake.fail_with = 500
    for _ in range(4):
        out = ex.poll(refs)
        assert {s.state for s in out.values()} == {JobState.UNKNOWN}
    assert not any((ln.attempt_dir / "result.json").exists() for ln in lns)
    fake.fail_with = None
    assert _poll_until_ended(ex, refs[0]).state is JobState.COMPLETED


def test_missing_and_gone(fake: FakeK8s, tmp_path: Path) -> None:
    ex = _executor(fake)
    ln = _launch(tmp_path)
    assert ex.poll([_ref(None, ln)])[ln.job_name].state is JobState.MISSING
    assert ex.poll([_ref("akoflow/akoflow-7-split-1", ln)])[ln.job_name].state \
        is JobState.GONE


def test_keep_disk_keeps_the_job(fake: FakeK8s, tmp_path: Path) -> None:
    ex = _executor(fake)
    ln = _launch(tmp_path, keep_disk=True)
    assert _poll_until_ended(ex, _ref(ex.submit([ln])[0], ln)).state is JobState.COMPLETED
    assert fake.jobs and not fake.calls("DELETE", "/jobs/")


# -- cancel, lookup, nodes ------------------------------------------------------------------
def test_cancel_deletes_jobs_and_pods(fake: FakeK8s, tmp_path: Path) -> None:
    fake.default_plan = Plan(after=100)
    ex = _executor(fake)
    lns = [_launch(tmp_path, a) for a in ("a", "b")]
    refs = [_ref(j, ln) for j, ln in zip(ex.submit(lns), lns)]
    ex.poll(refs)
    ex.cancel(refs)
    ex.cancel(refs)  # idempotent: 404 is fine
    assert not fake.jobs and not fake.pods
    assert {r.query["propagationPolicy"] for r in fake.calls("DELETE", "/jobs/")} \
        == {"Background"}


@pytest.mark.parametrize("cluster_scope", [True, False])
def test_lookup_by_annotation(fake: FakeK8s, tmp_path: Path, cluster_scope: bool) -> None:
    fake.forbid_cluster_scope = not cluster_scope
    fake.namespaces.add("team")
    ex = _executor(fake)
    ex.submit([_launch(tmp_path, "a.b", namespace="team"), _launch(tmp_path, "a-b")])
    # a fresh dispatcher (after a crash) knows only the names it recorded as intents
    fresh = _executor(fake, namespaces=["team"])
    names = ["akoflow.7.a.b.1", "akoflow.7.a-b.1", "akoflow.7.never.1"]
    found = fresh.lookup(names)
    assert found == {"akoflow.7.a.b.1": f"team/{km.job_object_name('akoflow.7.a.b.1')}",
                     "akoflow.7.a-b.1": "akoflow/akoflow-7-a-b-1"}


def test_nodes_inventory(fake: FakeK8s, tmp_path: Path) -> None:
    fake.add_node("node-1", cpu="4", memory="8Gi", labels={"disk": "ssd"})
    fake.add_node("node-2", cpu="3500m", memory="4Gi", unschedulable=True)
    fake.add_node("node-3", ready=False)
    fake.default_plan = Plan(after=100)
    ex = _executor(fake)
    ln = _launch(tmp_path)
    ex.poll([_ref(ex.submit([ln])[0], ln)])  # running on node-1: 500m, 64Mi requested
    nodes = {n.name: n for n in ex.nodes()}
    n1 = nodes["node-1"]
    assert (n1.cpus, n1.memory, n1.state) == (4.0, 8 << 30, "mixed")
    assert (n1.cpus_free, n1.memory_free) == (3.5, (8 << 30) - (64 << 20))
    assert n1.labels["disk"] == "ssd"
    assert (nodes["node-2"].cpus, nodes["node-2"].state, nodes["node-2"].cpus_free) \
        == (3.5, "drain", 0.0)
    assert (nodes["node-3"].state, nodes["node-3"].memory_free) == ("down", 0)


# -- end to end through the real CLI --------------------------------------------------------
WF = """\
name: {name}
spec:
  image: busybox:1.36
  namespace: science
  activities:
    - name: prepare
      run: echo prepare
      cpuLimit: 500m
      memoryLimit: 64Mi
    - name: crunch
      run: exit 3
      dependsOn: [prepare]
    - name: report
      run: echo report
      dependsOn: [crunch]
    - name: side
      run: echo side
      dependsOn: [prepare]
"""


def _profile(tmp: Path, fake: FakeK8s) -> dict[str, str]:
    sites = tmp / "sites"
    sites.mkdir()
    (sites / "fakek8s.yaml").write_text(
        f"name: fakek8s\nexecutor: kubernetes\nhost: {fake.url}\ncreate_namespace: true\n"
        "poll_interval: 0.05\n")
    return {"AKOFLOW_SITES": str(sites)}


def test_cli_run_against_fake_cluster(fake: FakeK8s, akhome: Path, tmp_path: Path) -> None:
    env = _profile(tmp_path, fake)
    fake.plans["crunch"] = Plan(outcome="failed", exit_code=3, container_reason="Error",
                                log="crunching\nboom\n")
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF.format(name="science"))
    proc = ak("run", str(wf), "--site", "fakek8s", home=akhome, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
    assert st["counts"] == {"FINISHED": 2, "FAILED": 1, "SKIPPED": 1}
    desc = json.loads(ak("describe", "1", "--json", home=akhome, env=env, check=True).stdout)
    by_name = {a["name"]: a for a in desc["activities"]}
    assert by_name["crunch"]["status"] == "FAILED"
    assert by_name["report"]["status"] == "SKIPPED"
    run_dir = Path(st["run_dir"])
    assert (run_dir / "activities" / "prepare.1" / "stdout").read_text() \
        == "ran akoflow-1-prepare-1\n"
    assert (run_dir / "activities" / "crunch.1" / "stdout").read_text() \
        == "crunching\nboom\n"
    assert json.loads((run_dir / "activities" / "crunch.1" / "result.json")
                      .read_text())["exit_code"] == 3
    jobs = [r.body for r in fake.calls("POST", "/namespaces/science/jobs$")]
    assert sorted(j["metadata"]["labels"]["akoflow.activity"] for j in jobs) \
        == ["crunch", "prepare", "side"]  # `report` was never submitted
    prep = next(j for j in jobs if j["metadata"]["labels"]["akoflow.activity"] == "prepare")
    res = prep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "500m", "memory": str(64 << 20)}
    assert not fake.jobs  # collected and deleted


def test_cli_run_survives_a_broken_api(fake: FakeK8s, akhome: Path, tmp_path: Path) -> None:
    """500s while jobs run leave them RUNNING (UNKNOWN), never FAILED; then all finish."""
    env = _profile(tmp_path, fake)
    fake.default_plan = Plan(after=10**9)  # runs until the test lets it end
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: steady\nspec:\n  image: busybox\n  activities:\n"
                  "    - name: a\n      run: echo a\n    - name: b\n      run: echo b\n")
    full_env = {**os.environ, "AKOFLOW_HOME": str(akhome), **env}
    log = tmp_path / "run.log"
    with open(log, "w") as fh:
        run = subprocess.Popen([sys.executable, "-m", "akoflow", "run", str(wf), "--site",
                                "fakek8s"], env=full_env, stdout=fh, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while len(fake.jobs) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(fake.jobs) == 2
        fake.fail_with = 500
        failing_since = len(fake.requests)
        deadline = time.time() + 30  # it keeps polling through the 500s
        while len(fake.requests) - failing_since < 5 and time.time() < deadline:
            time.sleep(0.1)
        assert len(fake.requests) - failing_since >= 5
        st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
        assert "FAILED" not in st["counts"] and st["status"] != "FAILED", st
        assert run.poll() is None
        for p in fake.plans.values():
            p.after = 0
        fake.default_plan = Plan(after=0)
        fake.fail_with = None
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, log.read_text()
    st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
    assert st["counts"] == {"FINISHED": 2}


@pytest.mark.parametrize("created", [True, False])
def test_crash_between_intent_and_record(fake: FakeK8s, akhome: Path, tmp_path: Path,
                                         created: bool) -> None:
    """The dispatcher died after recording the intent (no job id) and, maybe, after creating
    the Job: the next run finds it by name (lookup) or resubmits; never two Jobs at once."""
    env = _profile(tmp_path, fake)
    m = Manifest(akhome / "manifest.db")
    spec = WorkflowSpec(name="crash", runtime="fakek8s", image="busybox", activities=[
        ActivitySpec(name="a", run="echo a"),
        ActivitySpec(name="b", run="echo b", depends_on=["a"])])
    wf = m.register_workflow(spec, run_root=str(akhome / "runs"))
    act = m.activity_named(wf.id, "a")
    assert act is not None
    ln = TaskLaunch(workflow_id=wf.id, workflow=wf.name, activity_id=act.id, activity="a",
                    attempt=1, job_name=protocol.job_name(wf.id, "a", 1),
                    attempt_dir=protocol.attempt_dir(wf.run_dir, "a", 1),
                    work_dir=Path(wf.work_dir), run_dir=Path(wf.run_dir), script="echo a",
                    image="busybox", resources=Resources.from_json(act.resources))
    (aid,) = m.begin_attempts(wf.id, [Intent(
        activity_id=act.id, number=1, site="fakek8s", job_name=ln.job_name,
        attempt_dir=str(ln.attempt_dir), resources=ln.resources)])
    assert aid is not None
    if created:
        _executor(fake).submit([ln])
    proc = ak("run", "--resume", "1", home=akhome, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [r.body["metadata"]["name"] for r in fake.calls("POST", "/jobs$")]
    if created:  # found by its annotation and adopted: not submitted again
        assert names == ["akoflow-1-a-1", "akoflow-1-b-1"]
        assert fake.calls("GET", "^/apis/batch/v1/jobs$")  # the cluster-wide lookup
    else:  # never reached Kubernetes: abandoned (no retry used) and submitted anew
        assert names == ["akoflow-1-a-2", "akoflow-1-b-1"]
    st = json.loads(ak("status", "1", "--json", home=akhome, env=env, check=True).stdout)
    assert st["counts"] == {"FINISHED": 2}
