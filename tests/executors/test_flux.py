"""Pure tests of the Flux adapter pieces (executors/flux.py): golden scripts, option building,
job ids (RFC 19 vectors), the state map, and parsers on output taken from Flux's docs
(tests/executors/captured/flux_*.txt, each with its source noted in its `#` lines)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from akoflow.executors import flux, flux_ids
from akoflow.port import JobState, Resources, SpecError, SubmitError, TaskLaunch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
CAPTURED = HERE / "captured"
WORKER = ["/opt/py/bin/python", "-m", "akoflow", "worker"]


def launch(**over: object) -> TaskLaunch:
    base: dict[str, object] = dict(
        workflow_id=7, workflow="demo", activity_id=3, activity="align", attempt=2,
        job_name="akoflow.7.align.2", attempt_dir=Path("/scratch/run/align/2"),
        work_dir=Path("/scratch/run"), run_dir=Path("/scratch/run"), script="echo hi",
        resources=Resources(cpu=1.5, memory=3 * 2**30, time_limit=5400, gpus=1,
                            node_selector={"isa": "avx2"},
                            extra={"partition": "pdebug", "account": "proj1",
                                   "flux.exclusive": "true"}),
    )
    base.update(over)
    return TaskLaunch(**base)  # type: ignore[arg-type]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("AKOFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing {path}; rerun with AKOFLOW_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def captured(name: str) -> str:
    return "".join(ln for ln in (CAPTURED / name).read_text().splitlines(keepends=True)
                   if not ln.startswith("#"))


# -- rendering ----------------------------------------------------------------------------------

def test_render_single_matches_golden() -> None:
    text = flux.render_script(
        launch(node="fluke3"), worker_argv=[*WORKER, "/scratch/run/align/2"],
        modules=["gcc/12.2"], env={"GREETING": "hello world; $(rm -rf /)"},
        log_dir="/scratch/run/align/2")
    check_golden("flux_single.sh", text)
    directives = [ln[len("# flux: "):] for ln in text.splitlines() if ln.startswith("# flux:")]
    assert directives[:3] == [
        "--job-name=akoflow.7.align.2", "--output=/scratch/run/align/2/akoflow.7.align.2."
        "{{id}}.out", "--error=/scratch/run/align/2/akoflow.7.align.2.{{id}}.err"]
    assert {"-n1", "-c2", "-g1", "--time-limit=90m", "--queue=pdebug", "--bank=proj1",
            "--exclusive", "--requires=avx2&host:fluke3"} <= set(directives)
    # RFC 36: directives form one block right after the shebang
    lines = text.splitlines()
    assert all(ln.startswith("# flux: ") for ln in lines[1:1 + len(directives)])


def test_render_array_and_dispatcher_match_golden() -> None:
    array = flux.render_script(
        launch(job_name="akoflow.7.align.arr1", resources=Resources(cpu=1)), worker_argv=WORKER,
        modules=[], env={"A": "1"}, log_dir="/scratch/logs/",
        tasks_file="/scratch/run/.akoflow/batch/arr1/tasks.txt")
    check_golden("flux_array.sh", array)
    assert "# flux:" not in array and "FLUX_JOB_CC" in array  # flux submit reads no directives
    disp = flux.render_script(
        launch(job_name="akoflow.7.dispatcher", resources=Resources(cpu=1, time_limit=600)),
        worker_argv=["/opt/py/bin/python", "-m", "akoflow", "dispatch", "7"], modules=[],
        env={}, log_dir="/scratch/run/dispatcher", parent_uri=True)
    check_golden("flux_dispatcher.sh", disp)
    assert "flux getattr parent-uri" in disp and "parent-uri" not in array


def test_array_argv_puts_options_on_the_command_line() -> None:
    opts = flux.job_options(launch(job_name="akoflow.7.a.arr", resources=Resources(cpu=2)),
                            log_dir="/l", array=True)
    argv = flux.array_argv("/l/job.sh", 4, opts, flux.dependency_options(after_ok=["ƒ2"]))
    assert argv == ["flux", "submit", "--cc=0-3", "--job-name=akoflow.7.a.arr",
                    "--output=/l/akoflow.7.a.arr.{{id}}.{cc}.out",
                    "--error=/l/akoflow.7.a.arr.{{id}}.{cc}.err", "-n1", "-c2",
                    "--dependency=afterok:1", "/l/job.sh"]
    with pytest.raises(ValueError):
        flux.array_argv("/l/job.sh", 0, opts)


@pytest.mark.parametrize("kwargs", [
    {"log_dir": "/with space"}, {"env": {"BAD-NAME": "x"}}, {"modules": ["gcc; rm"]},
])
def test_render_rejects_unsafe_input(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(worker_argv=["/bin/true"], modules=[], env={},
                                   log_dir="/tmp")
    args.update(kwargs)
    with pytest.raises(SpecError):
        flux.render_script(launch(resources=Resources()), **args)  # type: ignore[arg-type,unused-ignore]


# -- resources ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "fsd"), [
    (30, "30s"), (300, "5m"), (7200, "2h"), (86400 * 3, "3d"), (129600, "36h"), (90.2, "91s"),
    (0.1, "1s"),
])
def test_durations_are_flux_standard_durations(seconds: float, fsd: str) -> None:
    assert flux.format_duration(seconds) == fsd


def test_key_aliases_and_passthrough() -> None:
    opts = flux.resource_options(Resources(extra={
        "queue": "pbatch", "bank": "b1", "features": "a|b", "constraint": "ssd",
        "flux.setattr": "user.tag=x", "flux.urgency": "8", "flux.exclusive": "no"}))
    assert opts == ["-n1", "-c1", "--queue=pbatch", "--bank=b1", "--setattr=user.tag=x",
                    "--urgency=8", "--requires=(a|b)&ssd"]


def test_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(SpecError) as err:
        flux.resource_options(Resources(extra={"qos": "high"}))
    msg = str(err.value)
    assert "'qos'" in msg and "queue" in msg and "bank" in msg and "flux.<option>" in msg


@pytest.mark.parametrize("extra", [
    {"queue": "a b"}, {"queue": "x\n# flux: --urgency=31"}, {"bank": "p#1"},
    {"constraint": "a b"}, {"flux.setattr": "k='v'"}, {"flux.job-name": "x"},
    {"flux.dependency": "afterok:1"}, {"flux.cc": "0-3"},
])
def test_values_cannot_break_out_of_a_directive(extra: dict[str, str]) -> None:
    with pytest.raises(SpecError):
        flux.resource_options(Resources(extra=extra))


def test_memory_is_ignored_or_refused_by_policy(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="akoflow.executors.flux")
    assert flux.resource_options(Resources(memory=2**30)) == ["-n1", "-c1"]
    assert "no per-job memory request" in caplog.text
    with pytest.raises(SpecError, match="memory"):
        flux.resource_options(Resources(memory=2**30), memory_policy="refuse")
    assert flux.resource_options(Resources(cpu=1), memory_policy="refuse") == ["-n1", "-c1"]


@pytest.mark.parametrize("res", [{"cpu": 0}, {"cpu": -1}, {"time_limit": -5}])
def test_bad_numbers_are_spec_errors(res: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        flux.resource_options(Resources(**res))  # type: ignore[arg-type]


# -- job ids ------------------------------------------------------------------------------------

def test_rfc19_vectors_from_the_docs() -> None:
    rows = [ln.split() for ln in captured("flux_f58_docs.txt").splitlines() if ln.strip()]
    assert len(rows) == 10
    for dec, utf, ascii_ in rows:
        assert flux_ids.f58(int(dec)) == utf
        assert flux_ids.parse_job_id(utf) == flux_ids.parse_job_id(ascii_) == int(dec)
        assert flux_ids.canonical_id(ascii_) == flux_ids.canonical_id(dec) == utf


@pytest.mark.parametrize(("text", "value"), [
    ("0x4d2", 1234), ("0000.0000.0000.04d2", 1234), (" 1234\n", 1234), ("f111", 0),
])
def test_other_id_forms(text: str, value: int) -> None:
    assert flux_ids.parse_job_id(text) == value


@pytest.mark.parametrize("text", ["", "ƒ", "ƒ0", "fl", "12a", "-1", "0x", "ƒjpXCZedGfVR",
                                  "18446744073709551616", "akoflow.1.a.1"])
def test_bad_ids(text: str) -> None:
    with pytest.raises(ValueError):
        flux_ids.parse_job_id(text)


def test_parse_submit_on_documented_output() -> None:
    assert flux.parse_submit(captured("flux_batch_docs.txt")) == ["ƒM7Zq9AKHno"]
    assert flux.parse_submit("fM7Zq9AKHno\n") == ["ƒM7Zq9AKHno"]
    assert flux.parse_submit("ƒ2\nƒ3\n") == ["ƒ2", "ƒ3"]  # flux submit --cc: one per line
    for bad in ("", "flux-batch: ERROR: unsatisfiable request\n"):
        with pytest.raises(SubmitError) as err:
            flux.parse_submit(bad)
        assert err.value.transient is False


def test_argv_builders_use_decimal_ids_one_dependency_each() -> None:
    deps = flux.dependency_options(after_ok=["ƒ2", "f211"], after_any=["57"])
    assert deps == ["--dependency=afterok:1", "--dependency=afterok:3364",
                    "--dependency=afterany:57"]
    assert flux.submit_argv("/j.sh", dependencies=deps[:1], begin_after=5) == [
        "flux", "batch", "--dependency=afterok:1", "--begin-time=+5s", "/j.sh"]
    assert flux.cancel_argv(["ƒz", "fNH"]) == ["flux", "cancel", "57", "1234"]
    assert flux.status_argv()[:3] == ["flux", "jobs", "-a"]
    with pytest.raises(ValueError):
        flux.cancel_argv([])


# -- states -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "result", "expected"), [
    ("NEW", "", JobState.PENDING), ("DEPEND", "", JobState.PENDING),
    ("PRIORITY", "", JobState.PENDING), ("SCHED", "", JobState.PENDING),
    ("RUN", "", JobState.RUNNING), ("CLEANUP", "", JobState.RUNNING),
    ("INACTIVE", "COMPLETED", JobState.COMPLETED), ("INACTIVE", "FAILED", JobState.FAILED),
    ("INACTIVE", "CANCELED", JobState.CANCELLED), ("INACTIVE", "TIMEOUT", JobState.TIMEOUT),
])
def test_every_state_and_result(state: str, result: str, expected: JobState) -> None:
    assert flux.map_state(state, result) is expected


@pytest.mark.parametrize(("state", "result"), [
    ("INACTIVE", ""), ("INACTIVE", "SUCCESS"), ("SUSPENDED", ""), ("", "")])
def test_unknown_is_unknown_never_success(state: str, result: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    assert flux.map_state(state, result) is JobState.UNKNOWN
    assert "unknown Flux job state" in caplog.text


def test_parse_queue_on_documented_values() -> None:
    entries = {e.name: (e.job_id, e.status)
               for e in flux.parse_queue(captured("flux_jobs_docs.txt"), "akoflow.")}
    assert "someone-elses-job" not in entries and len(entries) == 10
    jid, st = entries["akoflow.7.io-forward.1"]
    assert jid == "ƒ3ETxsR9H" and st.state is JobState.RUNNING
    assert st.node == "fluke[2]" and st.started_at == 1690000000.5 and st.exit_code is None
    assert entries["akoflow.7.compute.1"][1].state is JobState.PENDING
    assert entries["akoflow.7.compute.1"][1].started_at is None
    done = entries["akoflow.7.split.1"][1]
    assert (done.state, done.exit_code) == (JobState.COMPLETED, 0)
    failed = entries["akoflow.7.flaky.2"][1]
    assert (failed.state, failed.exit_code) == (JobState.FAILED, 3)
    cancelled = entries["akoflow.7.left.1"][1]  # canceled before it ran: -128 is no exit code
    assert (cancelled.state, cancelled.exit_code) == (JobState.CANCELLED, None)
    slow = entries["akoflow.7.slow.1"][1]
    assert (slow.state, slow.exit_code) == (JobState.TIMEOUT, 137)  # -SIGKILL → 128+9
    skipped_id, skipped = entries["akoflow.7.after-flaky.1"]
    assert skipped_id == "ƒuZZybuNNy"  # the ASCII `f` form, canonicalised
    assert skipped.state is JobState.CANCELLED and "dependency" in (skipped.message or "")
    assert entries["akoflow.7.join.1"][1].state is JobState.PENDING
    assert entries["akoflow.7.right.1"][1].state is JobState.RUNNING
    assert entries["akoflow.7.dispatcher"][1].state is JobState.PENDING


def test_parse_queue_skips_garbage(caplog: pytest.LogCaptureFixture) -> None:
    text = "garbage\nnot-an-id|RUN|||0.0|||akoflow.1.a.1\nƒ2|RUN|||1.0|n1||akoflow.1.b.1\n"
    assert [e.job_id for e in flux.parse_queue(text, "akoflow.")] == ["ƒ2"]
    assert "unparsable" in caplog.text
