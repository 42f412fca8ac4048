"""Pure tests of the Slurm adapter pieces (executors/slurm.py) on golden files and REAL captured
output of the test cluster (tests/executors/captured/, see its README), plus one end-to-end run
of a rendered script through the local cluster (`infra`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from akoflow.executors import slurm
from akoflow.executors.batch_script import QueueEntry
from akoflow.port import (
    ENDED_STATES,
    JobState,
    JobStatus,
    Resources,
    SpecError,
    SubmitError,
    TaskLaunch,
)

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
CAPTURED = HERE / "captured"
WORKER = ["/opt/py/bin/python", "-m", "akoflow", "worker"]


def launch(**over: object) -> TaskLaunch:
    base: dict[str, object] = dict(
        workflow_id=7, workflow="demo", activity_id=3, activity="align", attempt=2,
        job_name="akoflow.7.align.2", attempt_dir=Path("/scratch/run/align/2"),
        work_dir=Path("/scratch/run"), run_dir=Path("/scratch/run"), script="echo hi",
        resources=Resources(cpu=1.5, memory=3 * 2**30, time_limit=3600, gpus=1,
                            node_selector={"isa": "avx2"},
                            extra={"partition": "debug", "account": "proj1",
                                   "slurm.exclusive": "true"}),
    )
    base.update(over)
    return TaskLaunch(**base)  # type: ignore[arg-type]


def statuses(entries: list[QueueEntry]) -> dict[str, JobStatus]:
    """A listing as job id -> status."""
    return {e.job_id: e.status for e in entries}


def by_id(entries: list[QueueEntry]) -> dict[str, tuple[str, JobStatus]]:
    """A listing as job id -> (name, status)."""
    return {e.job_id: (e.name, e.status) for e in entries}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("AKOFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing {path}; rerun with AKOFLOW_UPDATE_GOLDEN=1"
    assert text == path.read_text()


# -- rendering ---------------------------------------------------------------------------------

def test_render_single_matches_golden() -> None:
    text = slurm.render_script(
        launch(), worker_argv=[*WORKER, "/scratch/run/align/2"], modules=["gcc/12.2", "cuda"],
        env={"OMP_NUM_THREADS": "2", "GREETING": "hello world; $(rm -rf /)"},
        log_dir="/scratch/run/.akoflow/logs", array_size=None)
    check_golden("slurm_single.sh", text)
    directives = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    assert not [d for d in directives if "--parsable" in d]  # a CLI flag, never a directive


def test_render_array_matches_golden() -> None:
    text = slurm.render_script(
        launch(job_name="akoflow.7.align.arr1", resources=Resources(cpu=1)), worker_argv=WORKER,
        modules=[], env={"A": "1"}, log_dir="/scratch/logs/", array_size=10,
        tasks_file="/scratch/run/.akoflow/batch/arr1/tasks.txt")
    check_golden("slurm_array.sh", text)
    assert "%A_%a" in text and "SLURM_ARRAY_TASK_ID" in text


@pytest.mark.parametrize("kwargs", [
    {"log_dir": "/with space"}, {"env": {"BAD-NAME": "x"}}, {"modules": ["gcc; rm"]},
    {"array_size": 3},  # no tasks file
])
def test_render_rejects_unsafe_input(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(worker_argv=["/bin/true"], modules=[], env={},
                                   log_dir="/tmp", array_size=None)
    args.update(kwargs)
    with pytest.raises(SpecError):
        slurm.render_script(launch(), **args)  # type: ignore[arg-type]


def test_render_rejects_unsafe_job_name() -> None:
    with pytest.raises(SpecError):
        slurm.render_script(launch(job_name="a b"), worker_argv=["/bin/true"], modules=[],
                            env={}, log_dir="/tmp", array_size=None)


# -- resources ---------------------------------------------------------------------------------

def test_resource_options_full_mapping() -> None:
    opts = slurm.resource_options(Resources(
        cpu=0.5, memory=1000 * 2**20 + 1, time_limit=61, gpus=2,
        node_selector={"b": "ssd", "a": "avx2"},
        extra={"queue": "bigmem", "project": "p1", "qos": "high", "features": "big|huge",
               "reservation": "maint", "slurm.nodes": "1", "slurm.exclusive": "yes",
               "slurm.oversubscribe": "false"}))
    assert opts == ["--cpus-per-task=1", "--mem=1001M", "--time=0-00:02:00", "--gres=gpu:2",
                    "--partition=bigmem", "--account=p1", "--qos=high",
                    "--reservation=maint", "--nodes=1", "--exclusive",
                    "--constraint=big|huge&avx2&ssd"]


@pytest.mark.parametrize(("seconds", "text"), [
    (1, "0-00:01:00"), (60, "0-00:01:00"), (60.5, "0-00:02:00"), (3600, "0-01:00:00"),
    (86400 + 59, "1-00:01:00"), (3 * 86400 + 5 * 3600 + 7 * 60, "3-05:07:00"),
])
def test_time_rounds_up_to_minutes(seconds: float, text: str) -> None:
    assert slurm.format_time(seconds) == text


def test_cpu_ceil_and_defaults() -> None:
    assert slurm.resource_options(Resources(cpu=2.0)) == ["--cpus-per-task=2"]
    assert slurm.resource_options(Resources(cpu=2.01)) == ["--cpus-per-task=3"]
    assert slurm.resource_options(Resources(cpu=1.0, memory=None, time_limit=None, gpus=0,
                                            node_selector={}, extra={})) == ["--cpus-per-task=1"]


def test_unknown_extra_key_lists_valid_keys() -> None:
    with pytest.raises(SpecError) as err:
        slurm.resource_options(Resources(extra={"partiton": "debug"}))
    for key in ("partition", "queue", "account", "project", "qos", "constraint", "features",
                "reservation", "slurm.<sbatch-option>"):
        assert key in str(err.value)


@pytest.mark.parametrize("res", [
    {"extra": {"partition": "debug\n#SBATCH --wrap=x"}},
    {"extra": {"account": "a b"}},
    {"extra": {"qos": "x;y"}},
    {"extra": {"slurm.job-name": "x"}},  # akoflow owns the name
    {"extra": {"slurm.output": "/tmp/x"}},
    {"extra": {"slurm.Bad_Option": "1"}},
    {"node_selector": {"k": "a&b c"}},
    {"cpu": 0}, {"memory": -1}, {"time_limit": -5},
])
def test_resource_options_rejects(res: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        slurm.resource_options(Resources(**res))  # type: ignore[arg-type]


# -- states ------------------------------------------------------------------------------------

ALL_CODES = ["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED", "FAILED", "TIMEOUT",
             "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "CANCELLED", "BOOT_FAIL", "DEADLINE",
             "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "REVOKED", "SIGNALING",
             "SPECIAL_EXIT", "STAGE_OUT", "STOPPED", "SUSPENDED", "RESV_DEL_HOLD"]


def test_every_state_code_maps() -> None:
    assert sorted(slurm.STATE_MAP) == sorted(ALL_CODES)
    assert slurm.map_state("COMPLETED") is JobState.COMPLETED
    assert slurm.map_state("OUT_OF_MEMORY") is JobState.OOM
    assert slurm.map_state("CANCELLED by 1000") is JobState.CANCELLED
    # only COMPLETED may ever read as success
    assert [c for c in ALL_CODES if slurm.map_state(c) is JobState.COMPLETED] == ["COMPLETED"]


def test_state_map_has_a_comment_per_code() -> None:
    src = Path(slurm.__file__).read_text()
    for code in ALL_CODES:
        line = next(ln for ln in src.splitlines() if ln.strip().startswith(f'"{code}":'))
        assert "#" in line, code


def test_unknown_state_is_unknown_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert slurm.map_state("WEIRD_NEW_STATE") is JobState.UNKNOWN
    assert "WEIRD_NEW_STATE" in caplog.text


# -- submit, arrays, dependencies, cancel ------------------------------------------------------

def test_submit_argv() -> None:
    assert slurm.submit_argv("/d/job.sh") == ["sbatch", "--parsable", "/d/job.sh"]
    assert slurm.submit_argv("/d/job.sh", dependency="afterok:1", array="0-9%4") == [
        "sbatch", "--parsable", "--dependency=afterok:1", "--array=0-9%4", "/d/job.sh"]


def test_parse_submit_real_and_cluster_forms() -> None:
    assert slurm.parse_submit((CAPTURED / "sbatch_parsable.txt").read_text()) == "84"
    assert slurm.parse_submit("12345;cluster\n") == "12345"
    assert slurm.parse_submit("sbatch: warning: x\n12345\n") == "12345"


@pytest.mark.parametrize("out", ["", "Submitted batch job 12", "abc", "12;", "12 13"])
def test_parse_submit_garbage_is_permanent(out: str) -> None:
    with pytest.raises(SubmitError) as err:
        slurm.parse_submit(out)
    assert err.value.transient is False


def test_array_spec() -> None:
    """One chunk's `--array`; the base splits launches into chunks (test_batch_base)."""
    assert slurm.array_spec(10, 4) == "0-9%4"
    assert slurm.array_spec(1, None) == "0-0"
    for bad in [(0, None), (5, 0)]:
        with pytest.raises(ValueError):
            slurm.array_spec(*bad)


def test_dependencies() -> None:
    assert slurm.dependency_after_ok(["1", "2", "3"]) == "afterok:1:2:3"
    assert slurm.dependency_after_ok(["123_4"]) == "afterok:123_4"
    assert slurm.dependency_first_to_end(["1", "2_0"]) == "afterany:1?afterany:2_0"
    for bad in ([], ["1;rm"], ["12_"], ["abc"]):
        with pytest.raises(ValueError):
            slurm.dependency_after_ok(bad)


def test_cancel_argv() -> None:
    assert slurm.cancel_argv(["5", "84_2"]) == ["scancel", "5", "84_2"]
    with pytest.raises(ValueError):
        slurm.cancel_argv(["--me"])


# -- status (real squeue output) ---------------------------------------------------------------

def test_status_argv() -> None:
    argv = slurm.status_argv()
    assert argv[0] == "squeue" and "--me" in argv and "--array" in argv
    assert f"--format={slurm.STATUS_FORMAT}" in argv
    assert "--user=alice" in slurm.status_argv("alice")


def test_parse_status_mixed_queue() -> None:
    st = statuses(slurm.parse_queue((CAPTURED / "squeue_mixed.txt").read_text(), "akoflow.99."))
    assert "86" not in st  # someone-else: another name prefix
    assert st["79"].state is JobState.COMPLETED and st["79"].node == "small"
    assert st["80"].state is JobState.FAILED and st["80"].message == "NonZeroExitCode"
    assert st["81"].state is JobState.RUNNING and st["81"].started_at is not None
    assert st["82"].state is JobState.PENDING and st["82"].message == "Dependency"
    assert st["82"].node is None and st["82"].started_at is None
    assert st["83"].message == "DependencyNeverSatisfied"
    assert st["84_0"].state is JobState.RUNNING and st["84_0"].node == "big"
    assert st["84_2"].state is JobState.PENDING and st["84_2"].message == "JobArrayTaskLimit"
    assert st["85"].state is JobState.PENDING  # name with `|` still parses
    assert slurm.parse_queue((CAPTURED / "squeue_mixed.txt").read_text(), "akoflow.99.odd")[
        0].name == "akoflow.99.odd|name.1"
    assert len(st) == 10


def test_parse_status_after_cancel() -> None:
    st = statuses(slurm.parse_queue((CAPTURED / "squeue_after_cancel.txt").read_text(),
                                  "akoflow."))
    assert {st[j].state for j in ("81", "84_0", "84_1", "84_2", "84_3")} == {JobState.CANCELLED}
    assert st["84_2"].started_at is None  # never ran: %S is only the cancel time
    never = [j for j, s in st.items() if s.message == "DependencyNeverSatisfied"]
    assert sorted(never) == ["82", "83", "85"]


def test_parse_status_skips_garbage_and_blank_lines() -> None:
    assert slurm.parse_queue("\nnot a squeue line\n", "") == []


def test_parse_status_unknown_state_is_unknown() -> None:
    st = statuses(slurm.parse_queue(
        "9|akoflow.1.a.1|NEW_STATE|None|n1|2024-01-01T00:00:00|0:01\n", "akoflow."))
    assert st["9"].state is JobState.UNKNOWN


# -- sacct (documented layout; accounting is off on the test cluster) --------------------------

def test_sacct_argv() -> None:
    argv = slurm.sacct_argv(["1", "2_3"])
    assert argv[:3] == ["sacct", "--noheader", "--parsable2"] and argv[-2:] == ["-j", "1,2_3"]


def test_parse_sacct_docs_sample() -> None:
    st = slurm.parse_sacct((CAPTURED / "sacct_docs_sample.txt").read_text())
    assert sorted(st) == ["1001", "1002", "1003", "1004_3", "1005", "1006"]
    assert (st["1001"].state, st["1001"].exit_code) == (JobState.COMPLETED, 0)
    assert (st["1002"].state, st["1002"].exit_code) == (JobState.FAILED, 1)
    assert (st["1003"].state, st["1003"].exit_code) == (JobState.CANCELLED, 137)
    assert st["1003"].message == "CANCELLED by 0" and st["1003"].node == "node[01-02]"
    assert st["1004_3"].state is JobState.TIMEOUT
    assert st["1005"].state is JobState.OOM
    assert st["1006"].node is None and st["1006"].started_at is None


# -- end to end on the local cluster -----------------------------------------------------------

def _wait_ended(job_id: str, prefix: str, timeout: float = 90) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(slurm.status_argv(), capture_output=True, text=True, timeout=30,
                             check=True).stdout
        status = statuses(slurm.parse_queue(out, prefix)).get(job_id)
        if status is not None and status.state in ENDED_STATES:
            return status
        assert time.monotonic() < deadline, f"job {job_id} did not end: {status}"
        time.sleep(1)


def _sbatch(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return slurm.parse_submit(proc.stdout)


@pytest.mark.infra
def test_rendered_script_runs_on_slurm(slurm_cluster: object, tmp_path: Path) -> None:
    name = f"akoflow.e2e{os.getpid()}.true.1"
    res = Resources(cpu=1, memory=64 * 2**20, time_limit=60, extra={"partition": "debug"})
    script = tmp_path / "job.sh"
    script.write_text(slurm.render_script(
        launch(job_name=name, resources=res), worker_argv=["/bin/true"], modules=[],
        env={"X": "1"}, log_dir=str(tmp_path), array_size=None))
    job_id = _sbatch(slurm.submit_argv(str(script)))
    assert _wait_ended(job_id, name).state is JobState.COMPLETED
    assert (tmp_path / f"{name}.{job_id}.out").exists()


@pytest.mark.infra
def test_rendered_array_reads_tasks_file(slurm_cluster: object, tmp_path: Path) -> None:
    name = f"akoflow.e2e{os.getpid()}.arr.1"
    dirs = [tmp_path / "a0", tmp_path / "a1", tmp_path / "missing"]
    for d in dirs[:2]:
        d.mkdir()
    (tmp_path / "tasks.txt").write_text("".join(f"{d}\n" for d in dirs))
    script = tmp_path / "job.sh"
    script.write_text(slurm.render_script(
        launch(job_name=name, resources=Resources(cpu=1, memory=64 * 2**20)),
        worker_argv=["/bin/test", "-d"], modules=[], env={}, log_dir=str(tmp_path),
        array_size=3, tasks_file=str(tmp_path / "tasks.txt")))
    job_id = _sbatch(slurm.submit_argv(str(script), array=slurm.array_spec(3, 2)))
    states = {i: _wait_ended(f"{job_id}_{i}", name).state for i in range(3)}
    # `test -d DIR` succeeds only for the two directories that exist: each element got its line
    assert states == {0: JobState.COMPLETED, 1: JobState.COMPLETED, 2: JobState.FAILED}
