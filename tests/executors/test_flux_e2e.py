"""Flux end to end against the fake `flux` CLI (tests/executors/fakes/flux/flux) first on PATH:
the real CLI, dispatcher, executor and worker; only the scheduler is simulated."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from akoflow.executors import flux
from akoflow.executors.flux import FluxExecutor
from akoflow.port import JobRef, JobState, Resources, TaskLaunch
from tests.conftest import EXAMPLES, ak

FAKE = Path(__file__).resolve().parent / "fakes" / "flux"
CHAIN = {"AKOFLOW_CHAIN_SPACING": "1"}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "fake-flux"
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "flux-fast.yaml").write_text(
        "name: flux-fast\nextends: flux\ndispatcher_wake: 1\npoll_interval: 0.3\n")
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FLUX_DIR", str(state))
    monkeypatch.setenv("AKOFLOW_SITES", str(sites))
    yield state
    active = _jobs(active_only=True)  # leave nothing running behind a failed test
    if active:
        subprocess.run(["flux", "cancel", *[j for j, _, _ in active]], check=False)


def _jobs(active_only: bool = False) -> list[tuple[str, str, str]]:
    out = subprocess.run(["flux", "jobs", "-a", "--no-header", "--format={id.f58} {state} {name}"],
                         capture_output=True, text=True, check=True).stdout
    rows = [tuple(ln.split(" ", 2)) for ln in out.splitlines() if ln.strip()]
    return [r for r in rows if not active_only or r[1] != "INACTIVE"]  # type: ignore[misc]


def _wait_idle(timeout: float) -> None:
    deadline = time.time() + timeout
    while _jobs(active_only=True) and time.time() < deadline:
        time.sleep(0.3)
    assert _jobs(active_only=True) == []


def _wait_final(home: Path, wf_id: int, timeout: float = 120) -> dict:  # type: ignore[type-arg]
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = json.loads(ak("status", str(wf_id), "--json", home=home, check=True).stdout)
        if st["status"] in ("FINISHED", "FAILED", "CANCELLED"):
            return st  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise AssertionError(f"workflow {wf_id} did not end: {st}")


def test_run_diamond_and_failure_on_flux(fake: Path, akhome: Path) -> None:
    proc = ak("run", str(EXAMPLES / "diamond.yaml"), "--site", "flux", home=akhome, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert {a["status"] for a in desc["activities"]} == {"FINISHED"}
    ids = [a["job_id"] for a in desc["activities"]]
    assert all(j.startswith("ƒ") for j in ids)  # F58 ids as flux batch printed them
    known = {jid: (state, name) for jid, state, name in _jobs()}
    assert {known[j][1] for j in ids} == {f"akoflow.1.{a}.1"
                                         for a in ("split", "left", "right", "join")}

    proc = ak("run", str(EXAMPLES / "failing.yaml"), "--site", "flux", home=akhome, timeout=180)
    assert proc.returncode == 1
    st = json.loads(ak("status", "2", "--json", home=akhome, check=True).stdout)
    assert st["counts"] == {"FINISHED": 2, "FAILED": 1, "SKIPPED": 1}
    assert "about to fail" in st["failures"][0]["stderr_tail"]
    _wait_idle(15)  # the engine reads result.json before the job shell reports its exit


def test_submit_chains_dispatchers_as_flux_jobs(fake: Path, akhome: Path) -> None:
    out = ak("submit", str(EXAMPLES / "fanout.yaml"), "--site", "flux-fast", "--json",
             home=akhome, check=True, env=CHAIN)
    assert json.loads(out.stdout)["dispatcher"].startswith("job ")
    st = _wait_final(akhome, 1)
    assert st["counts"] == {"FINISHED": 10}
    dispatchers = [r for r in _jobs() if r[2].startswith("akoflow.1.dispatcher.")]
    assert len(dispatchers) >= 3  # several dispatcher jobs, chained
    logs = list((Path(st["run_dir"]) / "dispatcher").glob("*.out"))
    assert logs and all("ƒ" in p.name for p in logs)  # {{id}} expanded by the "job shell"
    _wait_idle(15)  # the last dispatcher cancels the pending ones and ends


def test_cancel_leaves_nothing_in_the_queue(fake: Path, akhome: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    acts = "".join(f"    - name: s{i}\n      run: sleep 300\n      cpuLimit: 1\n"
                   for i in range(3))
    wf.write_text(f"name: sleepers\nspec:\n  runtime: flux-fast\n  activities:\n{acts}")
    ak("submit", str(wf), home=akhome, check=True, env=CHAIN)
    deadline = time.time() + 60
    while time.time() < deadline:
        running = [r for r in _jobs(active_only=True) if r[2].startswith("akoflow.1.s")]
        if len(running) == 3:
            break
        time.sleep(0.3)
    assert len(running) == 3
    ak("cancel", "1", home=akhome, check=True)
    _wait_idle(20)
    st = json.loads(ak("status", "1", "--json", home=akhome, check=True).stdout)
    assert st["status"] == "CANCELLED" and st["counts"] == {"CANCELLED": 3}


# -- the executor directly on the fake ----------------------------------------------------------

def _launch(tmp: Path, name: str, script: str, **over: object) -> TaskLaunch:
    adir = tmp / name
    adir.mkdir(parents=True)
    (adir / "task.sh").write_text(script)
    base: dict[str, object] = dict(
        workflow_id=1, workflow="w", activity_id=1, activity=name, attempt=1,
        job_name=f"akoflow.1.{name}.1", attempt_dir=adir, work_dir=tmp, run_dir=tmp,
        script=script, resources=Resources(cpu=1))
    base.update(over)
    return TaskLaunch(**base)  # type: ignore[arg-type]


class _Bash(FluxExecutor):
    """Runs task.sh directly instead of `akoflow worker`, to test scheduler semantics alone."""

    def worker_argv(self, launch: TaskLaunch) -> list[str]:
        return ["/bin/bash", str(launch.attempt_dir / "task.sh")]


def _until(ex: FluxExecutor, refs: list[JobRef], timeout: float = 20) -> dict[str, JobState]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = {k: v.state for k, v in ex.poll(refs).items()}
        if all(s not in (JobState.PENDING, JobState.RUNNING) for s in states.values()):
            return states
        time.sleep(0.2)
    raise AssertionError(f"jobs did not end: {states}")


def test_dependencies_time_limits_and_lookup(fake: Path, tmp_path: Path) -> None:
    ex = _Bash("flux", {"command_retries": 0})
    bad, ok = _launch(tmp_path, "bad", "exit 4\n"), _launch(tmp_path, "ok", "sleep 0.5\n")
    slow = _launch(tmp_path, "slow", "sleep 30\n", resources=Resources(cpu=1, time_limit=1))
    bad_id, ok_id, slow_id = ex.submit([bad, ok, slow])
    child = _launch(tmp_path, "child", "echo never\n", after_ok=[bad_id])
    both = _launch(tmp_path, "both", f"echo ran > {tmp_path}/ran.txt\n", after_ok=[ok_id])
    child_id, both_id = ex.submit([child, both])
    refs = [JobRef(j, ln.job_name, str(ln.attempt_dir), 0.0) for j, ln in
            zip([bad_id, ok_id, slow_id, child_id, both_id], [bad, ok, slow, child, both])]
    refs.append(JobRef("ƒ2", "akoflow.1.gone.1", "", 0.0))
    states = _until(ex, refs)
    assert states == {"akoflow.1.bad.1": JobState.FAILED, "akoflow.1.ok.1": JobState.COMPLETED,
                      "akoflow.1.slow.1": JobState.TIMEOUT,
                      "akoflow.1.child.1": JobState.CANCELLED,  # afterok parent failed
                      "akoflow.1.both.1": JobState.COMPLETED, "akoflow.1.gone.1": JobState.GONE}
    assert ex.poll(refs[:1])["akoflow.1.bad.1"].exit_code == 4
    assert (tmp_path / "ran.txt").exists() and not list(tmp_path.glob("child/*.out"))
    assert ex.lookup(["akoflow.1.ok.1", "akoflow.1.nope.1"]) == {"akoflow.1.ok.1": ok_id}


def test_failed_query_is_unknown_for_all(fake: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ex = _Bash("flux", {"command_retries": 0})
    ref = JobRef(ex.submit([_launch(tmp_path, "a", "true\n")])[0], "akoflow.1.a.1", "", 0.0)
    monkeypatch.setenv("FAKE_FLUX_FAIL", "jobs")
    st = ex.poll([ref, JobRef(None, "akoflow.1.b.1", "", 0.0)])
    assert {s.state for s in st.values()} == {JobState.UNKNOWN} and len(st) == 2
    monkeypatch.delenv("FAKE_FLUX_FAIL")
    assert ex.poll([ref])["akoflow.1.a.1"].state is not JobState.UNKNOWN


def test_ascii_ids_cancel_and_dispatcher_jobs(fake: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FLUX_ASCII", "1")  # a non-UTF-8 locale: `f…` ids
    ex = _Bash("flux", {"command_retries": 0})
    jid = ex.submit([_launch(tmp_path, "a", "sleep 60\n")])[0]
    assert jid.startswith("ƒ")
    disp = ex.submit_dispatcher("akoflow.1.dispatcher", ["/bin/sleep", "60"],
                                after_any=[jid], delay=0, log_dir=tmp_path / "d")
    ex.submit_dispatcher("akoflow.1.dispatcher", ["/bin/true"], after_any=[jid, disp],
                         delay=0, log_dir=tmp_path / "d")
    listed = ex.dispatcher_jobs("akoflow.1.dispatcher")
    assert [s for _, s in listed] == [JobState.PENDING, JobState.PENDING]
    monkeypatch.setenv("FLUX_JOB_ID", "f" + disp[1:])  # as the running dispatcher sees itself
    assert ("f" + disp[1:], JobState.PENDING) in ex.dispatcher_jobs("akoflow.1.dispatcher")
    ex.cancel([JobRef(jid, "", "", 0.0), JobRef(disp, "", "", 0.0)])
    ex.cancel([JobRef(jid, "", "", 0.0)])  # idempotent: already inactive
    remaining = [j for j, _, _ in _jobs(active_only=True)]  # the begin-time dispatcher waits
    ex.cancel([JobRef(j, "", "", 0.0) for j in remaining])  # still: cancel it too
    _wait_idle(10)


def test_cc_array_runs_every_element(fake: Path, tmp_path: Path) -> None:
    dirs = []
    for i in range(3):
        d = tmp_path / f"t{i}"
        d.mkdir()
        dirs.append(str(d))
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("\n".join(dirs) + "\n")
    ln = _launch(tmp_path, "arr", "", job_name="akoflow.1.arr")
    script = tmp_path / "arr.sh"
    script.write_text(flux.render_script(
        ln, worker_argv=["/bin/bash", "-c", 'echo "$FLUX_JOB_CC" > "$0/cc.txt"'], modules=[],
        env={}, log_dir=str(tmp_path), tasks_file=str(tasks)))
    script.chmod(0o755)  # flux submit runs a command, not a batch script
    argv = flux.array_argv(str(script), 3, flux.job_options(ln, log_dir=str(tmp_path),
                                                             array=True))
    ids = flux.parse_submit(subprocess.run(argv, capture_output=True, text=True,
                                           check=True).stdout)
    assert len(ids) == 3
    deadline = time.time() + 15
    while time.time() < deadline and not all(Path(d, "cc.txt").exists() for d in dirs):
        time.sleep(0.2)
    assert [Path(d, "cc.txt").read_text().strip() for d in dirs] == ["0", "1", "2"]
    assert len(list(tmp_path.glob("akoflow.1.arr.ƒ*.[012].out"))) == 3
