"""Pure tests of the PBS adapter (executors/pbs.py): golden scripts, resources, states and
exit codes, and parsers on samples in the documented layouts (captured/pbs_SOURCES.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from akoflow.executors import pbs
from akoflow.port import JobState, Resources, SpecError, SubmitError
from tests.executors.test_slurm_pure import CAPTURED, WORKER, by_id, check_golden, launch


@pytest.mark.parametrize("flavor", pbs.FLAVORS)
def test_render_single_matches_golden(flavor: str) -> None:
    text = pbs.render_script(
        launch(resources=Resources(cpu=1.5, memory=3 * 2**30, time_limit=3601, gpus=1,
                                   node_selector={"isa": "avx2"},
                                   extra={"queue": "debug", "project": "proj1", "pbs.m": "abe"})),
        flavor=flavor, worker_argv=[*WORKER, "/scratch/run/align/2"], modules=["gcc/12.2"],
        env={"GREETING": "hello world; $(rm -rf /)"}, log_dir="/scratch/logs",
        array_size=None)
    check_golden(f"pbs_{flavor}_single.sh", text)


@pytest.mark.parametrize("flavor", pbs.FLAVORS)
def test_render_array_matches_golden(flavor: str) -> None:
    text = pbs.render_script(
        launch(job_name="akoflow.7.align.arr1", resources=Resources(cpu=1)), flavor=flavor,
        worker_argv=WORKER, modules=[], env={}, log_dir="/scratch/logs", array_size=10,
        tasks_file="/scratch/run/tasks.txt")
    check_golden(f"pbs_{flavor}_array.sh", text)
    assert ("PBS_ARRAY_INDEX" if flavor == "pro" else "PBS_ARRAYID") in text
    assert ("^array_index^" in text) == (flavor == "pro")


def test_resources_per_flavor() -> None:
    res = Resources(cpu=2, memory=2**30, time_limit=90, gpus=2, node_selector={"k": "ssd"},
                    extra={"features": "big", "account": "a1"})
    assert pbs.resource_options(res, "pro", node="n1") == [
        "-l", "select=1:ncpus=2:mem=1024mb:ngpus=2:host=n1:big=True:ssd=True",
        "-l", "walltime=00:01:30", "-A", "a1"]
    assert pbs.resource_options(replace(res, extra={"qos": "high", "partition": "q1"}),
                                "torque") == [
        "-l", "nodes=1:ppn=2:gpus=2:ssd", "-l", "mem=1024mb", "-l", "walltime=00:01:30",
        "-l", "qos=high", "-q", "q1"]


def test_unknown_key_lists_valid_ones() -> None:
    with pytest.raises(SpecError) as err:
        pbs.resource_options(Resources(extra={"partiton": "x"}), "pro")
    for key in ("partition", "queue", "account", "project", "qos", "pbs.<qsub-option-letter>"):
        assert key in str(err.value)


@pytest.mark.parametrize("res", [
    {"extra": {"queue": "q\n#PBS -W depend=afterok:1"}}, {"extra": {"account": "a b"}},
    {"extra": {"pbs.N": "x"}}, {"extra": {"pbs.W": "depend=afterok:1"}},
    {"extra": {"pbs.l": "x;rm"}}, {"extra": {"qos": "high"}},  # Pro has no QOS
    {"node_selector": {"k": "a b"}}, {"cpu": 0}, {"memory": -1}, {"time_limit": -5},
])
def test_resources_reject(res: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        pbs.resource_options(Resources(**res), "pro")  # type: ignore[arg-type]


def test_every_state_code_maps_with_a_comment() -> None:
    codes = [*"QHWRETSXBFMU", "C"]
    assert sorted(pbs.STATE_MAP) == sorted(codes)
    src = Path(pbs.__file__).read_text()
    for code in codes:
        assert "#" in next(ln for ln in src.splitlines() if ln.strip().startswith(f'"{code}":'))


def test_unknown_state_is_unknown_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert pbs.map_state("Z") is JobState.UNKNOWN
    assert "'Z'" in caplog.text


@pytest.mark.parametrize(("code", "flavor", "state", "exit_code"), [
    (0, "pro", JobState.COMPLETED, 0), (3, "pro", JobState.FAILED, 3),
    (271, "pro", JobState.FAILED, 143), (-29, "pro", JobState.TIMEOUT, None),
    (-27, "pro", JobState.OOM, None), (-11, "torque", JobState.TIMEOUT, None),
    (-10, "torque", JobState.OOM, None), (-11, "pro", JobState.NODE_FAIL, None),
    (None, "pro", JobState.CANCELLED, None),
])
def test_exit_status(code: int | None, flavor: str, state: JobState,
                     exit_code: int | None) -> None:
    assert pbs.exit_outcome(code, flavor)[:2] == (state, exit_code)


def test_parse_pro_json() -> None:
    out = by_id(pbs.parse_queue((CAPTURED / "pbs_qstat_pro.json").read_text(), "pro",
                              "akoflow."))
    states = {jid: st.state for jid, (_, st) in out.items()}
    assert states == {
        "41.head": JobState.PENDING, "42.head": JobState.RUNNING,
        "43.head": JobState.COMPLETED, "44.head": JobState.TIMEOUT,
        "45.head": JobState.FAILED, "46.head": JobState.FAILED,
        "47.head": JobState.CANCELLED, "48[].head": JobState.RUNNING,
        "48[1].head": JobState.COMPLETED, "48[2].head": JobState.PENDING}
    assert out["42.head"][1].node == "node03" and out["42.head"][1].started_at
    assert out["46.head"][1].exit_code == 3 and out["41.head"][0] == "akoflow.7.align.1"
    assert "Insufficient" in (out["41.head"][1].message or "")


def test_parse_torque_xml() -> None:
    out = by_id(pbs.parse_queue((CAPTURED / "pbs_qstat_torque.xml").read_text(), "torque",
                                "akoflow."))
    assert {jid: st.state for jid, (_, st) in out.items()} == {
        "310.head": JobState.RUNNING, "311.head": JobState.COMPLETED,
        "312.head": JobState.TIMEOUT, "313.head": JobState.OOM,
        "314[1].head": JobState.PENDING}
    assert out["310.head"][1].started_at == 1700000000 and out["310.head"][1].node == "node01"
    assert pbs.parse_queue("", "torque", "akoflow.") == []


def test_dependencies_arrays_and_submit() -> None:
    assert pbs.dependency_after_ok(["1.s", "2[].s"], "pro") == "depend=afterok:1.s:2[].s"
    assert pbs.dependency_after_ok(["1.s", "2[].s"], "torque") == \
        "depend=afterok:1.s,afterokarray:2[].s"
    assert pbs.dependency_first_to_end(["12.s", "9.s", "10.s"]) == "depend=afterany:9.s"
    assert pbs.array_spec(10, 4, "pro") == ["-J", "1-10%4"]
    assert pbs.array_spec(1, None, "torque") == ["-t", "1-1"]
    with pytest.raises(ValueError):
        pbs.array_spec(1, None, "pro")
    with pytest.raises(ValueError):
        pbs.dependency_after_ok(["1; rm"], "pro")
    assert pbs.submit_argv("/j.sh", dependency="depend=afterok:1.s") == [
        "qsub", "-W", "depend=afterok:1.s", "/j.sh"]
    assert pbs.begin_at(30, now=0)[1].endswith(".30")
    assert pbs.parse_submit("12.head\n") == "12.head"
    with pytest.raises(SubmitError):
        pbs.parse_submit("qsub: Bad UID for job execution")


@pytest.mark.parametrize("flavor", pbs.FLAVORS)
def test_array_script_runs_on_the_fake_pbs(flavor: str, tmp_path: Path) -> None:
    """The rendered array script and array_spec, submitted to the fake qsub: element N runs
    the attempt dir on line N of the tasks file, at most `throttle` at a time."""
    import os
    import subprocess
    import time

    from tests.executors.fakes.pbs.harness import FakeCluster

    fake = FakeCluster("pbs", tmp_path, {"FAKE_PBS_FLAVOR": flavor})
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("".join(f"/attempt/{i}\n" for i in range(1, 4)))
    script = tmp_path / "arr.sh"
    script.write_text(pbs.render_script(
        launch(job_name="akoflow.7.arr", resources=Resources(cpu=1)), flavor=flavor,
        worker_argv=["/bin/echo", "ran"], modules=[], env={}, log_dir=str(tmp_path / "logs"),
        array_size=3, tasks_file=str(tasks)))
    env = {**os.environ, **fake.env}
    try:
        out = subprocess.run(["qsub", *pbs.array_spec(3, 2, flavor), str(script)], env=env,
                             capture_output=True, text=True, check=True).stdout
        assert pbs.parse_submit(out).endswith("[].fakeserver")
        fake.wait_for(lambda: len([j for j in fake.jobs() if j["state"] == "done"]) == 3)
        time.sleep(0.2)
        logs = sorted((tmp_path / "logs").glob("*.out*"))
        assert sorted(p.read_text() for p in logs) == [f"ran /attempt/{i}\n" for i in (1, 2, 3)]
        qstat = subprocess.run(pbs.status_argv(flavor), env=env, capture_output=True,
                               text=True, check=True).stdout
        states = {e.job_id: e.status.state for e in pbs.parse_queue(qstat, flavor, "akoflow.")}
        assert [states[f"{out.strip()[:-len('[].fakeserver')]}[{i}].fakeserver"]
                for i in (1, 2, 3)] == [JobState.COMPLETED] * 3
    finally:
        fake.shutdown()
